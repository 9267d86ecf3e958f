"""`playbooks/site.yml` on a deployed phase 0 (the ``site`` Molecule scenario): the status report,
a table of broken inputs that must each be refused in preflight, naming the variable, with no
change and no service restarted anywhere; and secrets that never show, even with -vvvv, nor sit
in world-readable files on the hosts.

    ZDMKIT_TEST_INVENTORY=path pytest tests/integration/test_site.py

The hosts are containers reached with ``docker exec`` by their inventory names.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from integration_env import need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = os.environ.get("ZDMKIT_TEST_INVENTORY", "")
UNITS = (
    "cassandra.service",
    "prometheus.service",
    "prometheus-node-exporter.service",
    "prometheus-blackbox-exporter.service",
    "zdmkit-demo-app.service",
)
SECRET = "Site-Secret-4b7d0e93c1"  # a password given to the playbooks, looked for in what they leave


def playbook(name: str, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    for var in ("ANSIBLE_ROLES_PATH", "ANSIBLE_FILTER_PLUGINS", "ANSIBLE_LIBRARY"):
        env.pop(var, None)  # the project's own configuration
    command = ["ansible-playbook", "-i", INVENTORY, str(ROOT / "playbooks" / name), *args]
    if extra:
        command += ["-e", json.dumps(extra)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)


@pytest.fixture(scope="module")
def hosts() -> dict[str, list[str]]:
    need(bool(INVENTORY), "ZDMKIT_TEST_INVENTORY")
    listing = subprocess.run(
        ["ansible-inventory", "-i", INVENTORY, "--list"], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(listing)
    groups = {g: data.get(g, {}).get("hosts", []) for g in ("origin", "target", "monitoring", "clients")}
    assert all(groups.values()), groups
    for group in ("origin", "monitoring", "clients"):
        groups[f"_{group}_address"] = [data["_meta"]["hostvars"][groups[group][0]]["service_address"]]
    groups["_addresses"] = [data["_meta"]["hostvars"][h]["service_address"] for h in all_hosts(groups)]
    return groups


def all_hosts(hosts: dict[str, list[str]]) -> list[str]:
    return sorted({h for name, group in hosts.items() if not name.startswith("_") for h in group})


def docker_exec(host: str, *command: str) -> str:
    return subprocess.run(["docker", "exec", host, *command], capture_output=True, text=True, check=True).stdout


def service_starts(hosts: dict[str, list[str]]) -> dict[str, str]:
    """Each running unit's start time and main PID, per host."""
    starts = {}
    for host in all_hosts(hosts):
        out = docker_exec(host, "systemctl", "show", "-p", "Id,ActiveEnterTimestampMonotonic,MainPID", *UNITS)
        for block in out.strip().split("\n\n"):
            fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if fields.get("MainPID", "0") != "0":
                starts[f"{host}/{fields['Id']}"] = f"{fields['ActiveEnterTimestampMonotonic']}/{fields['MainPID']}"
    return starts


def recap(output: str) -> dict[str, dict[str, int]]:
    counts = {}
    for host, rest in re.findall(r"^(\S+)\s+: (ok=.*)$", output, flags=re.M):
        counts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
    return counts


def test_status_reports_phase_0(hosts):
    run = playbook("status.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "phase: 0 - before the migration" in run.stdout
    assert re.search(r"origin nodes: [0-9.]+ UN", run.stdout), run.stdout[-2000:]
    assert re.search(r"target nodes: [0-9.]+ UN", run.stdout), run.stdout[-2000:]
    assert "demo app: ok, mode CASSANDRA" in run.stdout
    assert "prometheus targets down: none" in run.stdout, run.stdout[-2000:]


# (id, playbook, extra variables, text the refusal must contain: the variable to change)
BAD_INPUTS = [
    ("no-seeds", "site.yml", {"cassandra_seeds": []}, "cassandra_seeds"),
    ("heap-above-memory", "site.yml", {"cassandra_heap_size": "64G"}, "lower cassandra_heap_size"),
    ("heap-unreadable", "site.yml", {"cassandra_heap_size": "lots"}, "cassandra_heap_size is 'lots'"),
    ("address-not-an-ip", "site.yml", {"service_address": "db-one.example"}, "set service_address"),
    (
        "empty-admin-password-outside-the-lab",
        "site.yml",
        {"cassandra_allow_default_credentials": False},
        "cassandra_admin_password is empty or the public default",
    ),
    (
        "default-admin-password-outside-the-lab",
        "site.yml",
        {"cassandra_allow_default_credentials": False, "cassandra_admin_password": "cassandra"},
        "cassandra_admin_password is empty or the public default",
    ),
    (
        "replication-above-node-count",
        "site.yml",
        {"cassandra_keyspaces": [{"name": "zdmapp", "replication": {"class": "NetworkTopologyStrategy", "dc1": 3}}]},
        "cassandra_keyspaces: keyspace zdmapp asks for more replicas than there are nodes",
    ),
    (
        "replication-unknown-dc",
        "site.yml",
        {"cassandra_keyspaces": [{"name": "zdmapp", "replication": {"class": "NetworkTopologyStrategy", "dc9": 1}}]},
        "unknown data centre(s) dc9",
    ),
    (
        "missing-secure-connect-bundle",
        "site.yml",
        {"cassandra_kind": "astra", "cassandra_astra_secure_connect_bundle": "/nonexistent/scb.zip"},
        "cassandra_astra_secure_connect_bundle",
    ),
    ("app-mode-typo", "site.yml", {"demo_app_mode": "TARGTE"}, "demo_app_mode"),
    ("no-app-contact-points", "site.yml", {"demo_app_origin_contact_points": []}, "demo_app_origin_contact_points"),
    ("app-user-without-password", "site.yml", {"demo_app_origin_password": ""}, "demo_app_origin_password"),
    ("port-clash", "site.yml", {"node_exporter_port": 9090}, "node_exporter_port 9090 is already in use"),
    ("retention-typo", "site.yml", {"prometheus_retention_time": "forever"}, "prometheus_retention_time is 'forever'"),
    ("exporter-port-out-of-range", "site.yml", {"cassandra_exporter_port": 0}, "cassandra_exporter_port (0)"),
    ("cassandra-checksum-wrong", "site.yml", {"cassandra_checksum": "0" * 64}, "pin its sha256"),
    ("tls-without-files", "site.yml", {"cassandra_client_tls": True}, "cassandra_client_tls is true: set"),
    ("phase-order", "phase2.yml", {}, "phase 2 cannot follow phase 0: run phase 1 first"),
]


@pytest.fixture(scope="module")
def starts_before(hosts) -> dict[str, str]:
    starts = service_starts(hosts)
    assert len(starts) >= 6, starts  # cassandra x2, node exporter x4, prometheus, demo app at least
    return starts


@pytest.mark.parametrize(
    ("playbook_name", "extra", "expected"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_refused_before_any_change(hosts, starts_before, playbook_name, extra, expected):
    run = playbook(playbook_name, extra=extra)
    assert run.returncode != 0, run.stdout[-2000:]
    assert expected in run.stdout, run.stdout[-4000:]
    changed = {host: c["changed"] for host, c in recap(run.stdout).items() if c.get("changed")}
    assert not changed, f"changes were made before the refusal: {changed}"


def test_no_service_restarted_by_the_refused_runs(hosts, starts_before):
    assert service_starts(hosts) == starts_before


def test_secret_never_shows_at_highest_verbosity(hosts, tmp_path):
    # An application role with a known password: it passes through the cassandra role's CQL tasks.
    # It comes the way an operator's vault gives it: from a vars file, not the command line.
    secrets = tmp_path / "vault.json"
    secrets.touch(mode=0o600)
    role = {
        "name": "site_reader",
        "password": SECRET,
        "login": True,
        "permissions": [{"permission": "SELECT", "resource": "KEYSPACE zdmapp"}],
    }
    secrets.write_text(json.dumps({"cassandra_roles": [role]}))
    run = playbook("site.yml", "-vvvv", "-e", f"@{secrets}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert SECRET not in run.stdout + run.stderr
    # the run did create the role with that password: it logs in
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    cluster = Cluster(hosts["_origin_address"], auth_provider=PlainTextAuthProvider("site_reader", SECRET))
    try:
        assert cluster.connect().execute("SELECT count(*) FROM zdmapp.user_status").one()[0] >= 1
    finally:
        cluster.shutdown()
    for host in all_hosts(hosts):
        found = docker_exec(
            host,
            "sh",
            "-c",
            "find /etc /opt /var /srv /home /root /tmp /usr/local -xdev -type f -perm -o=r -size -20M "
            f"-exec grep -l -F '{SECRET}' {{}} + 2>/dev/null || true",
        )
        assert not found.strip(), f"{host}: world-readable files hold the secret: {found}"


def test_services_listen_on_the_service_address_only(hosts):
    """Every TCP listener on every host is bound to that host's service address or loopback."""
    for host, address in zip(all_hosts(hosts), hosts["_addresses"], strict=True):
        listeners = docker_exec(host, "ss", "-Hltn").splitlines()
        assert listeners, host
        for line in listeners:
            local = line.split()[3]
            bound = local.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
            # loopback includes 127.0.0.11, Docker's resolver inside every container
            assert bound == address or ipaddress.ip_address(bound).is_loopback, (
                f"{host}: {local} is not on {address} or loopback"
            )


def journal_codes(host: str) -> list[int]:
    """The HTTP codes of the writer's finished attempts, in order."""
    from zdmkit.writer.journal import parse_journal

    text = docker_exec(host, "sh", "-c", "cat /var/lib/zdmkit-writer/journal.jsonl 2>/dev/null || true")
    return [attempt.code for attempt in parse_journal(text, in_flight=False)]


def test_restarting_the_monitoring_host_leaves_traffic_alone(hosts):
    """Traffic goes on while the monitoring host restarts; Prometheus comes back with its data."""
    import threading
    import time
    import uuid

    import httpx

    client, monitoring = hosts["clients"][0], hosts["monitoring"][0]
    app = f"http://{hosts['_clients_address'][0]}:8000"
    prometheus = f"http://{hosts['_monitoring_address'][0]}:9090"
    writer_before = len(journal_codes(client))
    user, codes = f"chaos{uuid.uuid4().hex[:8]}", []

    def post_statuses() -> None:  # bounded: 60 requests, about 15 s
        with httpx.Client(base_url=app, timeout=5) as api:
            for i in range(60):
                try:
                    codes.append(api.post(f"/status/{user}/s{i:02d}").status_code)
                except httpx.HTTPError as exc:
                    codes.append(type(exc).__name__)
                time.sleep(0.25)

    load = threading.Thread(target=post_statuses)
    load.start()
    subprocess.run(["docker", "restart", "--time", "20", monitoring], check=True, capture_output=True)
    load.join(timeout=120)
    assert codes == [200] * 60, codes
    # Counted on Origin itself: a read through the app would start a new series in the report.
    origin = hosts["origin"][0]
    count = docker_exec(origin, "cqlsh", "-u", "cassandra", "-p", "cassandra", "-e",
                        f"SELECT count(*) FROM zdmapp.user_status WHERE user = '{user}'")  # noqa: S608  # fmt: skip
    assert re.search(r"^\s*60\s*$", count, flags=re.M), count
    deadline = time.monotonic() + 180
    while True:
        try:
            ready = httpx.get(f"{prometheus}/-/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert ready, "Prometheus did not come back after the monitoring host restarted"
    # The writer kept writing to Origin all along, with no failure.
    time.sleep(25)  # at least one more write (every 20 s)
    after = journal_codes(client)[writer_before:]
    assert after and all(code == 200 for code in after), after


def test_report_draws_every_chart_with_data(hosts):
    run = playbook("report.yml", extra={"report_window": 900})
    assert run.returncode == 0, run.stdout[-3000:]
    out = ROOT / "reports" / "migration"
    record = json.loads((out / "report.json").read_text())
    for slug in ("client-ops", "ops-by-cluster", "failed-writes", "latency-p99"):
        chart = record["charts"][slug]
        assert chart["image"], f"{slug}: no data at all"
        assert (out / chart["image"]).stat().st_size > 10_000, slug
        assert chart["series"] and min(chart["series"].values()) >= 2, (slug, chart["series"])
    assert any(name.startswith("cassandra origin Write") for name in record["charts"]["ops-by-cluster"]["series"])
    # the phase markers are the recorded phase changes (none yet in phase 0)
    phase_file = Path(record.get("state_dir", "")) / "phase.json"
    history = json.loads(phase_file.read_text())["history"] if phase_file.is_file() else []
    assert record["markers"] == [{"phase": h["to"], "at": h["at"]} for h in history]
    assert record["journal"]["attempts"] >= 1
    assert record["journal"]["failed"] == 0
    assert "Migration report" in (out / "index.html").read_text()
