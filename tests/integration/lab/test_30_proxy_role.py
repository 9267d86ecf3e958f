"""The zdm_proxy role on the lab's three proxies, in phase 1: read routing proven with rows
that exist on one side only, rolling changes under a continuous client load (the routing,
and Target's contact points, which a rolling playbook of the official automation cannot
change), and bad input refused before any instance restarts."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import httpx
import pytest
from labkit import ClientLoad, changed_hosts, cql, docker_exec, playbook, report, unit_starts, wait_until

ROLL = "molecule/shared/proxies.yml"


@pytest.fixture(scope="module")
def one_sided(lab):
    """A partition whose row differs per cluster: written to each cluster directly."""
    user = f"route{uuid.uuid4().hex[:6]}"
    for host, status in ((lab.origin, "origin-only"), (lab.target, "target-only")):
        with cql(lab.address[host]) as session:
            session.execute("INSERT INTO zdmapp.user_status (user, when, status) VALUES (%s, '2031-01-01', %s)",
                            (user, status))
    yield user
    # The two clusters disagree on this row on purpose: it goes before phase 2 validates.
    for host in (lab.origin, lab.target):
        with cql(lab.address[host]) as session:
            session.execute("DELETE FROM zdmapp.user_status WHERE user = %s", (user,))


def read_through_each_proxy(lab, user) -> set[str]:
    seen = set()
    for proxy in lab.proxies:
        with cql(lab.address[proxy], pin=True) as session:
            seen |= {r.status for r in session.execute("SELECT status FROM zdmapp.user_status WHERE user = %s",
                                                        (user,))}
    return seen


def proxy_starts(lab):
    return unit_starts(lab, {p: ["zdm-proxy.service"] for p in lab.proxies})


def rolled_seconds(output: str) -> list[str]:
    return re.findall(r"(\S+) restarted on its new configuration in ([0-9.]+) s", output)


def roll_under_load(lab, extra: dict, name: str = ROLL):
    with ClientLoad([lab.address[p] for p in lab.proxies], rate=50) as load:
        time.sleep(3)
        run = playbook(lab, name, extra=extra)
        time.sleep(3)
    assert run.returncode == 0, run.stdout[-4000:]
    steps = rolled_seconds(run.text)
    report(f"roll {extra}", ops=load.ops, errors=load.errors, kinds=load.error_kinds,
           per_instance=";".join(f"{h} {s}s" for h, s in steps))
    return run, load, steps


def logged_configuration(proxy: str, since: str) -> str:
    """The proxy's log since then, its quotes unescaped (the log's msg="..." escapes them)."""
    log = docker_exec(proxy, "journalctl", "-u", "zdm-proxy", "--since", since, "--no-pager", "-o", "cat")
    return log.replace('\\"', '"')


def test_primary_origin_serves_origins_row(lab, one_sided):
    assert read_through_each_proxy(lab, one_sided) == {"origin-only"}


def test_a_rolling_change_of_primary_cluster_and_read_mode_under_load(lab, one_sided):
    since = docker_exec(lab.proxies[0], "date", "+%Y-%m-%d %H:%M:%S").strip()
    _, load, steps = roll_under_load(
        lab, {"zdm_proxy_primary_cluster": "TARGET", "zdm_proxy_read_mode": "DUAL_ASYNC_ON_SECONDARY"})
    assert load.ops > 100 and load.errors == 0, load.error_kinds
    assert [h for h, _ in steps] == lab.proxies, "one instance at a time, in the group's order"
    for proxy in lab.proxies:
        log = logged_configuration(proxy, since)
        assert '"PrimaryCluster":"TARGET"' in log and '"ReadMode":"DUAL_ASYNC_ON_SECONDARY"' in log, proxy
    assert read_through_each_proxy(lab, one_sided) == {"target-only"}


def test_dual_async_reads_reach_the_secondary(lab, one_sided):
    def async_reads() -> float:
        total = 0.0
        for proxy in lab.proxies:
            text = httpx.get(f"http://{lab.address[proxy]}:14001/metrics", timeout=5).text
            total += sum(float(v) for v in re.findall(r"^zdm_async_request_duration_seconds_count\{[^}]*\} (\S+)$",
                                                      text, flags=re.M))
        return total

    # A client connection's asynchronous connector opens with its first read: warm up each
    # session, then count ten reads through each proxy.
    sessions = [cql(lab.address[p], pin=True) for p in lab.proxies]
    opened = [s.__enter__() for s in sessions]
    try:
        read = "SELECT status FROM zdmapp.user_status WHERE user = %s"
        for session in opened:
            list(session.execute(read, (one_sided,)))
        time.sleep(2)
        before = async_reads()
        for session in opened:
            for _ in range(10):
                assert [r.status for r in session.execute(read, (one_sided,))] == ["target-only"]
        wait_until(lambda: async_reads() >= before + 30, 30, 1, "30 reads also sent to Origin")
    finally:
        for s in sessions:
            s.__exit__(None, None, None)


def test_a_rolling_change_of_targets_contact_points_under_load(lab):
    # A host name instead of the address: the proxies reconnect to Target through the new contact point.
    _, load, steps = roll_under_load(lab, {"zdm_proxy_target_contact_points": [lab.target]})
    assert load.errors == 0, load.error_kinds
    assert len(steps) == 3
    for proxy in lab.proxies:
        active = docker_exec(proxy, "grep", "^target_contact_points", "/etc/zdm-proxy/active/zdm-proxy.yml")
        assert lab.target in active, (proxy, active)


def test_back_to_phase_1_under_load_and_then_nothing_restarts(lab, one_sided):
    _, load, _ = roll_under_load(lab, {}, name="phase1.yml")
    assert load.errors == 0, load.error_kinds
    assert read_through_each_proxy(lab, one_sided) == {"origin-only"}
    before = proxy_starts(lab)
    again = playbook(lab, ROLL)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_hosts(again.stdout) == {} and rolled_seconds(again.text) == []
    assert proxy_starts(lab) == before


def _pair(tmp_path, name: str, ip: str):
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=IP:{ip}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


BAD = [
    ("read-mode-typo", {"zdm_proxy_read_mode": "PRIMARY_ONY"}, "zdm_proxy_read_mode"),
    ("primary-unknown", {"zdm_proxy_primary_cluster": "BOTH"}, "zdm_proxy_primary_cluster"),
    ("address-resolves-to-nothing", {"service_address": "no-such-proxy.invalid"}, "no-such-proxy.invalid"),
    ("origin-unreachable", {"zdm_proxy_origin_contact_points": ["172.30.91.250"]}, "Origin is unreachable"),
    ("target-name-resolves-to-nothing", {"zdm_proxy_target_contact_points": ["no-such-target.invalid"]},
     "no-such-target.invalid"),
    ("target-wrong-credentials", {"zdm_proxy_target_password": "not-the-password"},
     "Check zdm_proxy_target_username and zdm_proxy_target_password"),
    ("negative-timeout", {"zdm_proxy_request_timeout_ms": -5}, "zdm_proxy_request_timeout_ms is -5"),
    ("metrics-port-is-the-listen-port", {"zdm_proxy_metrics_port": 9042},
     "zdm_proxy_metrics_port and zdm_proxy_listen_port"),
    ("port-out-of-range", {"zdm_proxy_listen_port": 70000}, "zdm_proxy_listen_port is 70000"),
    ("unknown-setting", {"zdm_proxy_config": {"read_mod": "PRIMARY_ONLY"}}, "zdm_proxy_config names read_mod"),
    ("blocked-version-unknown", {"zdm_proxy_blocked_protocol_versions": ["v9"]}, "zdm_proxy_blocked_protocol_versions"),
    ("control-version-unknown", {"zdm_proxy_control_conn_max_protocol_version": "6"},
     "zdm_proxy_control_conn_max_protocol_version"),
    ("missing-secure-connect-bundle",
     {"zdm_proxy_target_secure_connect_bundle": "/nonexistent/scb.zip", "zdm_proxy_target_contact_points": []},
     "zdm_proxy_target_secure_connect_bundle"),
    ("bundle-and-contact-points", {"zdm_proxy_origin_secure_connect_bundle": "/etc/hostname"},
     "set exactly one of them"),
    ("client-auth-without-certificate", {"zdm_proxy_tls_require_client_auth": True}, "zdm_proxy_tls_cert_file"),
]


@pytest.fixture(scope="module")
def starts_before(lab):
    return proxy_starts(lab)


@pytest.mark.parametrize(("extra", "expected"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_refused_before_any_instance_restarts(lab, starts_before, extra, expected):
    run = playbook(lab, "phase1.yml", extra=extra)
    assert run.returncode != 0, run.stdout[-2000:]
    assert expected in run.text, run.stdout[-4000:]
    assert changed_hosts(run.stdout) == {}, run.stdout[-3000:]


def test_a_tls_key_that_is_not_the_certificates_is_refused(lab, starts_before, tmp_path):
    cert, _ = _pair(tmp_path, "proxy", lab.address[lab.proxies[0]])
    ca, other_key = _pair(tmp_path, "other", "127.0.0.1")
    tls = {"zdm_proxy_tls_cert_file": str(cert), "zdm_proxy_tls_key_file": str(other_key),
           "zdm_proxy_tls_ca_file": str(ca)}
    run = playbook(lab, "phase1.yml", extra=tls)
    assert run.returncode != 0
    assert "zdm_proxy_tls_cert_file" in run.text and "for another key" in run.text, run.stdout[-3000:]
    assert changed_hosts(run.stdout) == {}


def test_the_refused_runs_restarted_nothing_and_the_proxies_still_serve(lab, starts_before, one_sided):
    assert proxy_starts(lab) == starts_before
    assert read_through_each_proxy(lab, one_sided) == {"origin-only"}
