"""Client-to-node TLS end to end (the ``tls`` Molecule scenario).

Origin requires TLS; Target requires TLS and a client certificate signed by the scenario's CA.
The tests connect with the real cassandra-driver, run the migration engine as a process, call
the demo app (which reaches Target with its own client certificate) and run broken TLS inputs
through the converge playbook, which must refuse them before anything changes.

    ZDMKIT_TEST_ORIGIN=addr ZDMKIT_TEST_TARGET=addr ZDMKIT_TEST_APP=http://addr:8000 \\
    ZDMKIT_TEST_TLS_DIR=dir ZDMKIT_TEST_INVENTORY=path pytest tests/integration/test_tls.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from integration_env import need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = os.environ.get("ZDMKIT_TEST_ORIGIN", "")
TARGET = os.environ.get("ZDMKIT_TEST_TARGET", "")
APP = os.environ.get("ZDMKIT_TEST_APP", "")
TLS_DIR = Path(os.environ.get("ZDMKIT_TEST_TLS_DIR", "/nonexistent"))
INVENTORY = os.environ.get("ZDMKIT_TEST_INVENTORY", "")
USER = PASSWORD = "cassandra"  # the scenario keeps the default superuser
ORIGIN_HOST, TARGET_HOST, CLIENT_HOST = "tls-origin-1", "tls-target-1", "tls-client-1"


@pytest.fixture(scope="module", autouse=True)
def scenario() -> None:
    need(bool(ORIGIN and TARGET and APP and INVENTORY), "set the ZDMKIT_TEST_* variables of the tls scenario")
    need((TLS_DIR / "ca.pem").is_file(), f"no CA in {TLS_DIR}")


def context(ca: Path | None = None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca:
        ctx.load_verify_locations(cafile=str(ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key) if key else None)
    return ctx


def session(address: str, ssl_context: ssl.SSLContext | None) -> Any:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    cluster = Cluster(
        [address],
        auth_provider=PlainTextAuthProvider(USER, PASSWORD),
        ssl_context=ssl_context,
        connect_timeout=10,
        control_connection_timeout=10,
    )
    try:
        return cluster, cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


@pytest.fixture(scope="module")
def origin() -> Iterator[Any]:
    cluster, sess = session(ORIGIN, context(TLS_DIR / "ca.pem"))
    yield sess
    cluster.shutdown()


@pytest.fixture(scope="module")
def target() -> Iterator[Any]:
    cluster, sess = session(TARGET, context(TLS_DIR / "ca.pem", TLS_DIR / "client.pem", TLS_DIR / "client.key"))
    yield sess
    cluster.shutdown()


def docker_exec(host: str, *command: str) -> str:
    return subprocess.run(["docker", "exec", host, *command], capture_output=True, text=True, check=True).stdout


def my_connections_use_tls(sess: Any) -> list[bool]:
    """ssl_enabled of the connections the node lists for this client's driver."""
    rows = sess.execute("SELECT address, ssl_enabled, driver_name FROM system_views.clients")
    return [r.ssl_enabled for r in rows if r.driver_name and "Python" in r.driver_name]


@pytest.mark.parametrize("address", [ORIGIN, TARGET], ids=["origin", "target"])
def test_plaintext_is_refused(address):
    from cassandra.cluster import NoHostAvailable

    with pytest.raises(NoHostAvailable):
        session(address, None)


def test_origin_takes_tls_with_the_ca(origin):
    assert origin.execute("SELECT release_version FROM system.local").one().release_version.startswith("5.")
    flags = my_connections_use_tls(origin)
    assert flags and all(flags), flags


def test_a_certificate_from_another_ca_is_not_trusted(tmp_path):
    from cassandra.cluster import NoHostAvailable

    other = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=another CA",
         "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other)],
        check=True, capture_output=True,
    )  # fmt: skip
    with pytest.raises(NoHostAvailable):
        session(ORIGIN, context(other))


def test_target_refuses_a_client_without_certificate():
    from cassandra.cluster import NoHostAvailable

    with pytest.raises(NoHostAvailable):
        session(TARGET, context(TLS_DIR / "ca.pem"))


def test_target_takes_the_client_certificate(target):
    flags = my_connections_use_tls(target)
    assert flags and all(flags), flags


def test_target_schema_was_copied_from_origin_over_tls(target):
    rows = target.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'zdmapp'")
    names = {r.table_name for r in rows}
    assert "user_status" in names


def test_cqlsh_on_the_nodes_uses_tls():
    for host in (ORIGIN_HOST, TARGET_HOST):
        query = "SELECT ssl_enabled FROM system_views.clients"
        out = docker_exec(host, "cqlsh", "-u", USER, "-p", PASSWORD, "-e", query)
        assert "True" in out and "False" not in out, (host, out)


def test_key_material_is_private_to_the_service_user():
    def mode_and_owner(host: str, path: str) -> list[str]:
        return docker_exec(host, "stat", "-c", "%a %U", path).split()

    assert mode_and_owner(TARGET_HOST, "/etc/cassandra/tls/node.pem") == ["600", "cassandra"]
    assert mode_and_owner(CLIENT_HOST, "/etc/zdmkit/tls/target-key.pem") == ["600", "zdmkit-app"]
    assert mode_and_owner(CLIENT_HOST, "/etc/zdmkit/tls/proxy-key.pem") == ["600", "zdmkit-app"]


def migrate(command: str, *extra: str, report: Path) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).with_name("zdmkit-migrate")
    argv = [
        str(cli if cli.exists() else shutil.which("zdmkit-migrate")), command,
        "--origin-contact-points", ORIGIN, "--origin-username", USER, "--origin-ssl-ca", str(TLS_DIR / "ca.pem"),
        "--target-contact-points", TARGET, "--target-username", USER, "--target-ssl-ca", str(TLS_DIR / "ca.pem"),
        "--keyspaces", "zdmapp", "--splits", "8", "--progress", "log", "--report", str(report), *extra,
    ]  # fmt: skip
    env = {**os.environ, "ZDMKIT_ORIGIN_PASSWORD": PASSWORD, "ZDMKIT_TARGET_PASSWORD": PASSWORD}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_engine_needs_the_client_certificate_for_target(tmp_path):
    run = migrate("preflight", report=tmp_path / "r.json")
    assert run.returncode != 0
    assert "Target" in run.stdout + run.stderr


def test_engine_copies_and_validates_over_tls(origin, target, tmp_path):
    client = ["--target-ssl-cert", str(TLS_DIR / "client.pem"), "--target-ssl-key", str(TLS_DIR / "client.key")]
    user = f"tls-{uuid.uuid4().hex[:8]}"
    insert = "INSERT INTO zdmapp.user_status (user, when, status) VALUES (%s, %s, %s) USING TIMESTAMP %s"
    for i in range(20):
        origin.execute(insert, (user, 1_700_000_000_000 + i, f"s{i}", 1_700_000_000_000_000 + i))
    # Phase 0: the writer writes to Origin only; it pauses so that the validation compares a
    # table that holds still (dual writes, which would keep Target in step, start in phase 1).
    docker_exec(CLIENT_HOST, "systemctl", "stop", "zdmkit-writer.service")
    try:
        copy = migrate("copy", *client, report=tmp_path / "copy.json")
        assert copy.returncode == 0, copy.stdout[-3000:] + copy.stderr[-3000:]
        validate = migrate("validate", *client, report=tmp_path / "validate.json")
    finally:
        docker_exec(CLIENT_HOST, "systemctl", "start", "zdmkit-writer.service")
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]
    counts = json.loads((tmp_path / "validate.json").read_text())["totals"]
    assert counts["missing"] == 0 and counts["mismatch"] == 0 and counts["valid"] >= 23, counts
    rows = target.execute("SELECT status, writetime(status) AS wt FROM zdmapp.user_status WHERE user = %s", (user,))
    assert sorted(r.wt for r in rows) == [1_700_000_000_000_000 + i for i in range(20)]


def test_app_reaches_origin_over_tls(origin):
    """Phase 0: the app on Origin, TLS verified with the CA (Target comes after phase 5)."""
    user = f"tlsapp{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=APP, timeout=30) as api:
        assert api.post(f"/status/{user}/Online").status_code == 200
        assert api.get(f"/status/{user}", params={"entries": 1}).json()[0]["status"] == "Online"
    assert origin.execute("SELECT status FROM zdmapp.user_status WHERE user = %s", (user,)).one().status == "Online"
    clients = origin.execute("SELECT address, ssl_enabled FROM system_views.clients")
    app_host = APP.split("//", 1)[1].split(":", 1)[0]
    from_app = [r.ssl_enabled for r in clients if str(r.address) == app_host]
    assert from_app and all(from_app), list(clients)


def converge(extra: dict) -> subprocess.CompletedProcess:
    playbook = ROOT / "molecule" / "tls" / "converge.yml"
    command = ["ansible-playbook", "-i", INVENTORY, str(playbook), "-e", json.dumps(extra)]
    # Molecule's environment (its ansible.cfg, roles path) but plain text: no colours to parse.
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)


def cassandra_starts() -> dict[str, str]:
    return {
        host: docker_exec(host, "systemctl", "show", "-p", "ActiveEnterTimestampMonotonic,MainPID", "cassandra.service")
        for host in (ORIGIN_HOST, TARGET_HOST)
    }


BAD_TLS = [
    (
        "certificate-of-another-node",
        {"cassandra_tls_cert_file": str(TLS_DIR / f"{TARGET_HOST}.pem")},
        "cassandra_tls_cert_file",
    ),
    ("key-of-another-certificate", {"cassandra_tls_key_file": str(TLS_DIR / "client.key")}, "cassandra_tls_key_file"),
    ("missing-ca-file", {"cassandra_tls_ca_file": str(TLS_DIR / "no-such-ca.pem")}, "cassandra_tls_ca_file"),
    (
        "client-auth-without-tls",
        {"cassandra_client_tls": False, "cassandra_client_tls_require_client_auth": True},
        "cassandra_client_tls_require_client_auth",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), [c[1:] for c in BAD_TLS], ids=[c[0] for c in BAD_TLS])
def test_bad_tls_input_is_refused_before_any_change(extra, expected):
    before = cassandra_starts()
    run = converge(extra)
    output = run.stdout + run.stderr  # the failed task's message goes to stderr
    assert run.returncode != 0, output[-2000:]
    assert expected in output, output[-4000:]
    recaps = [line for line in run.stdout.splitlines() if re.search(r"\s: ok=\d+", line)]
    assert recaps and all("changed=0" in line for line in recaps), run.stdout[-2000:]
    assert cassandra_starts() == before
