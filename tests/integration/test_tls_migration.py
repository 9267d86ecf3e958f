"""The whole migration over TLS (the ``tls`` Molecule scenario, after test_tls.py): the demo app
and its writer reach Origin, then the three proxies, then Target, always on TLS; the proxies
take TLS from clients and speak it to both clusters (mutual TLS to Target); client certificates
become required on the proxies under traffic; a plaintext client and a foreign CA's certificate
are refused; the loss check finds nothing missing.

    ZDMKIT_TEST_INVENTORY=path ZDMKIT_TEST_TLS_DIR=dir pytest tests/integration/test_tls_migration.py
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from integration_env import need
from labkit import (
    CONNECT_OPTIONS,
    INVENTORY,
    ClientLoad,
    attempts_between,
    changed_hosts,
    cql,
    docker_exec,
    failures,
    journal,
    load_lab,
    playbook,
    readiness,
    report,
    task_outcomes,
    unit_starts,
    utc_now,
)
from test_tls import context

pytestmark = pytest.mark.integration

TLS_DIR = Path(os.environ.get("ZDMKIT_TEST_TLS_DIR", "/nonexistent"))
ROLL = "molecule/shared/proxies.yml"


@pytest.fixture(scope="module")
def lab():
    need((TLS_DIR / "ca.pem").is_file(), f"no CA in {TLS_DIR} (ZDMKIT_TEST_TLS_DIR)")
    lab = load_lab(INVENTORY, optional=("monitoring",))
    ca, cert, key = TLS_DIR / "ca.pem", TLS_DIR / "client.pem", TLS_DIR / "client.key"
    CONNECT_OPTIONS[lab.address[lab.origin]] = {"ssl_context": context(ca)}
    for host in [lab.target, *lab.proxies]:
        CONNECT_OPTIONS[lab.address[host]] = {"ssl_context": context(ca, cert, key)}
    return lab


def switch(lab, name: str, extra: dict | None = None) -> list[dict]:
    start = utc_now()
    run = playbook(lab, name, extra=extra)
    assert run.returncode == 0, run.stdout[-4000:]
    time.sleep(2)
    window = attempts_between(journal(lab), start)
    report(f"{name} over TLS", writer_attempts=len(window), writer_failed=len(failures(window)))
    assert window, "the writer kept writing"
    assert failures(window) == [], failures(window)[:5]
    return window


def connections_over_tls(lab, cluster: str) -> dict[str, list[bool]]:
    """ssl_enabled of the cluster's client connections, by the proxy they come from."""
    proxies = {lab.address[p]: p for p in lab.proxies}
    with cql(lab.address[cluster]) as session:
        rows = session.execute("SELECT address, ssl_enabled FROM system_views.clients")
        found: dict[str, list[bool]] = {}
        for row in rows:
            if str(row.address) in proxies:
                found.setdefault(proxies[str(row.address)], []).append(row.ssl_enabled)
    return found


def connect_plain_or_foreign(address: str, ssl_context: ssl.SSLContext | None) -> None:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    cluster = Cluster([address], auth_provider=PlainTextAuthProvider("cassandra", "cassandra"),
                      ssl_context=ssl_context, connect_timeout=10, control_connection_timeout=10)
    try:
        cluster.connect()
    finally:
        cluster.shutdown()


def foreign_client_context(tmp_path: Path) -> ssl.SSLContext:
    key, cert = tmp_path / "foreign.key", tmp_path / "foreign.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=foreign client", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return context(TLS_DIR / "ca.pem", cert, key)


def test_phase_1_puts_the_proxies_between_the_app_and_the_clusters_on_tls(lab):
    switch(lab, "phase1.yml")
    for proxy in lab.proxies:
        assert readiness(lab, proxy)[1].get("Status") == "UP", proxy
    assert httpx.get(f"{lab.app_url}/healthz", timeout=10).json()["mode"] == "ZDM_PROXY"


@pytest.mark.parametrize("cluster", ["origin", "target"])
def test_the_proxies_speak_tls_to_both_clusters(lab, cluster):
    found = connections_over_tls(lab, getattr(lab, cluster))
    assert set(found) == set(lab.proxies), found
    assert all(all(flags) for flags in found.values()), found


def test_a_plaintext_client_is_refused_by_the_proxies(lab):
    from cassandra.cluster import NoHostAvailable

    with pytest.raises(NoHostAvailable):
        connect_plain_or_foreign(lab.address[lab.proxies[0]], None)


def test_a_client_through_the_proxies_writes_to_both_clusters_over_tls(lab):
    user = f"tlsproxy{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{lab.app_url}/status/{user}/OverTls", timeout=30).status_code == 200
    for host in (lab.origin, lab.target):
        with cql(lab.address[host]) as session:
            assert session.execute("SELECT count(*) FROM zdmapp.user_status WHERE user = %s", (user,)).one()[0] == 1


def test_phase_2_copies_and_validates_over_tls(lab):
    switch(lab, "phase2.yml")


def test_client_certificates_become_required_under_traffic(lab, tmp_path):
    from cassandra.cluster import NoHostAvailable

    # optional so far: a client with no certificate of its own gets in
    connect_plain_or_foreign(lab.address[lab.proxies[0]], context(TLS_DIR / "ca.pem"))
    start = utc_now()
    with ClientLoad([lab.address[p] for p in lab.proxies], rate=50) as load:
        time.sleep(3)
        run = playbook(lab, ROLL, extra={"zdm_proxy_tls_require_client_auth": True})
        time.sleep(3)
    assert run.returncode == 0, run.stdout[-4000:]
    window = attempts_between(journal(lab), start)
    report("client certificates made required", client_ops=load.ops, client_errors=load.errors,
           writer_attempts=len(window), writer_failed=len(failures(window)))
    assert load.errors == 0, load.error_kinds
    assert failures(window) == []
    with pytest.raises(NoHostAvailable):
        connect_plain_or_foreign(lab.address[lab.proxies[0]], context(TLS_DIR / "ca.pem"))
    with pytest.raises(NoHostAvailable):
        connect_plain_or_foreign(lab.address[lab.proxies[0]], foreign_client_context(tmp_path))


def test_staged_files_changed_by_hand_are_written_back_without_a_restart(lab):
    # The role reads the proxies' binary, user and staged files (TLS files included) in one
    # command, and writes only when something differs from what it would write.
    extra = {"zdm_proxy_tls_require_client_auth": True}
    staged_config = "/etc/zdm-proxy/staged/zdm-proxy.yml"
    staged_key = "/etc/zdm-proxy/staged/tls/proxy-key.pem"
    stage_task = "zdm_proxy : Stage the proxy's configuration file"

    def roll():
        run = playbook(lab, ROLL, extra=extra)
        assert run.returncode == 0, run.stdout[-4000:]
        return run

    run = roll()
    assert changed_hosts(run.stdout) == {}, run.stdout[-4000:]
    assert task_outcomes(run.stdout, stage_task) == {p: {"skipping"} for p in lab.proxies}
    edited, loosened = lab.proxies[1], lab.proxies[2]
    docker_exec(edited, "sh", "-c", f"echo '# changed by hand' >> {staged_config}")
    docker_exec(loosened, "chmod", "0644", staged_key)
    units = {p: ["zdm-proxy.service"] for p in lab.proxies}
    before = unit_starts(lab, units)
    run = roll()
    assert set(changed_hosts(run.stdout)) == {edited, loosened}, run.stdout[-4000:]
    assert task_outcomes(run.stdout, stage_task) == {
        lab.proxies[0]: {"skipping"}, edited: {"changed"}, loosened: {"ok"}}
    assert "changed by hand" not in docker_exec(edited, "cat", staged_config)
    docker_exec(edited, "diff", "-q", staged_config, "/etc/zdm-proxy/active/zdm-proxy.yml")
    assert docker_exec(loosened, "stat", "-c", "%a", staged_key).strip() == "600"
    # what is staged is what the instances run already: none restarted
    assert unit_starts(lab, units) == before
    run = roll()
    assert changed_hosts(run.stdout) == {}, run.stdout[-4000:]
    assert task_outcomes(run.stdout, stage_task) == {p: {"skipping"} for p in lab.proxies}


def test_phase_4_and_5_over_tls(lab):
    # the proxies keep requiring client certificates: the phases roll them with it
    extra = {"zdm_proxy_tls_require_client_auth": True}
    switch(lab, "phase4.yml", extra)
    window = switch(lab, "phase5.yml", extra)
    assert any(e["status"].startswith("ModeTarget_") for e in window)
    assert httpx.get(f"{lab.app_url}/healthz", timeout=10).json()["mode"] == "TARGET"
    user = f"tlstarget{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{lab.app_url}/status/{user}/Direct", timeout=30).status_code == 200
    with cql(lab.address[lab.target]) as session:
        assert session.execute("SELECT count(*) FROM zdmapp.user_status WHERE user = %s", (user,)).one()[0] == 1
    with cql(lab.address[lab.origin]) as session:
        assert session.execute("SELECT count(*) FROM zdmapp.user_status WHERE user = %s", (user,)).one()[0] == 0


def test_the_loss_check_over_tls_finds_nothing_missing(lab):
    run = playbook(lab, "loss_check.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert " 0 missing" in run.text and "target (all writes)" in run.text, run.text[-2000:]
    assert changed_hosts(run.stdout) == {}
