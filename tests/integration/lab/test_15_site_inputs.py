"""site.yml on the deployed phase 0: a table of broken inputs, each refused in preflight naming
the variable, with no change and no service restarted anywhere; secrets that never show, even
with -vvvv, nor sit in world-readable files; every listener on a service address or loopback."""

from __future__ import annotations

import ipaddress
import json

import pytest
from labkit import (
    attempts_between,
    changed_hosts,
    docker_exec,
    failures,
    journal,
    lab_units,
    playbook,
    playbooks_side_by_side,
    report,
    unit_starts,
    utc_now,
    world_readable_files_holding,
)

SECRET = "Site-Secret-4b7d0e93c1"  # a password given to the playbooks, looked for in what they leave

# (id, playbook, extra variables, text the refusal must contain: the variable to change)
BAD_INPUTS = [
    ("no-seeds", "site.yml", {"cassandra_seeds": []}, "cassandra_seeds"),
    ("heap-above-memory", "site.yml", {"cassandra_heap_size": "64G"}, "lower cassandra_heap_size"),
    ("heap-unreadable", "site.yml", {"cassandra_heap_size": "lots"}, "cassandra_heap_size is 'lots'"),
    ("address-not-an-ip", "site.yml", {"service_address": "db-one.example"}, "set service_address"),
    ("empty-admin-password-outside-the-lab", "site.yml", {"cassandra_allow_default_credentials": False},
     "cassandra_admin_password is empty or the public default"),
    ("default-admin-password-outside-the-lab", "site.yml",
     {"cassandra_allow_default_credentials": False, "cassandra_admin_password": "cassandra"},
     "cassandra_admin_password is empty or the public default"),
    ("replication-above-node-count", "site.yml",
     {"cassandra_keyspaces": [{"name": "zdmapp", "replication": {"class": "NetworkTopologyStrategy", "dc1": 3}}]},
     "cassandra_keyspaces: keyspace zdmapp asks for more replicas than there are nodes"),
    ("replication-unknown-dc", "site.yml",
     {"cassandra_keyspaces": [{"name": "zdmapp", "replication": {"class": "NetworkTopologyStrategy", "dc9": 1}}]},
     "unknown data centre(s) dc9"),
    ("missing-secure-connect-bundle", "site.yml",
     {"cassandra_kind": "astra", "cassandra_astra_secure_connect_bundle": "/nonexistent/scb.zip"},
     "cassandra_astra_secure_connect_bundle"),
    ("app-mode-typo", "site.yml", {"demo_app_mode": "TARGTE"}, "demo_app_mode"),
    ("no-app-contact-points", "site.yml", {"demo_app_origin_contact_points": []}, "demo_app_origin_contact_points"),
    ("app-user-without-password", "site.yml", {"demo_app_origin_password": ""}, "demo_app_origin_password"),
    ("port-clash", "site.yml", {"node_exporter_port": 9090}, "node_exporter_port 9090 is already in use"),
    ("retention-typo", "site.yml", {"prometheus_retention_time": "forever"}, "prometheus_retention_time is 'forever'"),
    ("exporter-port-out-of-range", "site.yml", {"cassandra_exporter_port": 0}, "cassandra_exporter_port (0)"),
    ("cassandra-checksum-wrong", "site.yml", {"cassandra_checksum": "0" * 64}, "pin its sha256"),
    ("tls-without-files", "site.yml", {"cassandra_client_tls": True}, "cassandra_client_tls is true: set"),
    ("phase-order", "phase2.yml", {}, "phase 2 cannot follow phase 0: run phase 1 first"),
    ("phase-skipped", "phase3.yml", {}, "phase 3 cannot follow phase 0: run phase 1, 2 first"),
    ("rollback-from-phase-0", "rollback.yml", {"to_phase": 1}, "to_phase 1 is not behind the recorded phase 0"),
]


@pytest.fixture(scope="module")
def module_started() -> str:
    return utc_now()


@pytest.fixture(scope="module")
def starts_before(lab, module_started) -> dict[str, str]:
    starts = unit_starts(lab, lab_units(lab))
    assert len(starts) >= 12, starts
    return starts


@pytest.fixture(scope="module")
def refused(lab, starts_before):
    return playbooks_side_by_side(lab, {case[0]: (case[1], case[2]) for case in BAD_INPUTS})


@pytest.mark.parametrize(("case", "expected"), [(c[0], c[3]) for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_before_any_change(refused, case, expected):
    run = refused[case]
    assert run.returncode != 0, run.stdout[-2000:]
    assert expected in run.text, run.stdout[-4000:]
    assert changed_hosts(run.stdout) == {}, f"changes were made before the refusal: {changed_hosts(run.stdout)}"


def test_no_service_restarted_by_the_refused_runs(lab, starts_before, refused):
    assert unit_starts(lab, lab_units(lab)) == starts_before


def test_secret_never_shows_at_highest_verbosity(lab, tmp_path):
    # An application role with a known password, given the way an operator's vault gives it.
    secrets = tmp_path / "vault.json"
    secrets.touch(mode=0o600)
    role = {"name": "site_reader", "password": SECRET, "login": True,
            "permissions": [{"permission": "SELECT", "resource": "KEYSPACE zdmapp"}]}
    secrets.write_text(json.dumps({"cassandra_roles": [role]}))
    run = playbook(lab, "site.yml", "-vvvv", "-e", f"@{secrets}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert SECRET not in run.stdout + run.stderr
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    cluster = Cluster([lab.address[lab.origin]], auth_provider=PlainTextAuthProvider("site_reader", SECRET))
    try:
        assert cluster.connect().execute("SELECT count(*) FROM zdmapp.user_status").one()[0] >= 1
    finally:
        cluster.shutdown()
    for host in lab.hosts():
        found = world_readable_files_holding(host, SECRET)
        assert not found, f"{host}: world-readable files hold the secret: {found}"


def test_services_listen_on_the_service_address_only(lab):
    for host in lab.hosts():
        listeners = docker_exec(host, "ss", "-Hltn").splitlines()
        assert listeners, host
        for line in listeners:
            local = line.split()[3]
            bound = local.rsplit(":", 1)[0].strip("[]").split("%", 1)[0]
            # loopback includes 127.0.0.11, Docker's resolver inside every container
            assert bound == lab.address[host] or ipaddress.ip_address(bound).is_loopback, (
                f"{host}: {local} is not on {lab.address[host]} or loopback")


def test_the_writer_saw_no_failure_meanwhile(lab, module_started):
    # The refused runs (three at a time) and the -vvvv run load the machine; the writer's
    # traffic to Origin goes on under them.
    window = attempts_between(journal(lab), module_started)
    failed = failures(window)
    report("site.yml's inputs, writer meanwhile", writer_attempts=len(window), writer_failed=len(failed))
    assert window, "the writer wrote nothing meanwhile"
    assert failed == [], [(e["ts"], e["code"], e["error"]) for e in failed[:5]]
