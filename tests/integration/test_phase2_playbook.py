"""`playbooks/phase2.yml` against two real clusters: the phase guard, check mode, copy and
validation, the record the phase-4 guard reads, differences reported and repaired, bad input,
and a secret that never shows up, even at the highest verbosity.

Needs the inventory the clusters were deployed with (groups ``origin`` and ``target`` with
``service_address``) and both endpoints:

    ZDMKIT_TEST_INVENTORY=path ZDMKIT_TEST_ORIGIN=host:port ZDMKIT_TEST_TARGET=host:port \
        pytest tests/integration/test_phase2_playbook.py

The tests run in file order and share one keyspace; each leaves the state the next expects.
"""

# ruff: noqa: S608 -- the CQL here is built from a fixed keyspace name and literals only
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from integration_env import need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "filter_plugins"))
from ansible.errors import AnsibleFilterError  # noqa: E402
from zdm_phases import zdm_phase_transition  # noqa: E402

INVENTORY = os.environ.get("ZDMKIT_TEST_INVENTORY", "")
ORIGIN = os.environ.get("ZDMKIT_TEST_ORIGIN", "")
TARGET = os.environ.get("ZDMKIT_TEST_TARGET", "")
KS = "phase2_play"
ROWS = 3000  # 100 partitions of 30 rows
SECRET_USER = "phase2_reader"
SECRET_PASSWORD = "Phase2-Secret-7c1e9a40d2"


def _session(endpoint: str):
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    host, _, port = endpoint.rpartition(":")
    cluster = Cluster(
        [host], port=int(port), auth_provider=PlainTextAuthProvider("cassandra", "cassandra"), connect_timeout=30
    )
    return cluster, cluster.connect()


@pytest.fixture(scope="module")
def clusters():
    need(bool(INVENTORY and ORIGIN and TARGET), "ZDMKIT_TEST_INVENTORY, ZDMKIT_TEST_ORIGIN and ZDMKIT_TEST_TARGET")
    origin_cluster, origin = _session(ORIGIN)
    target_cluster, target = _session(TARGET)
    for session in (origin, target):
        session.default_timeout = 60
        session.execute(f"DROP KEYSPACE IF EXISTS {KS}")
        session.execute(
            f"CREATE KEYSPACE {KS} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {KS}.events (id int, seq int, payload text, PRIMARY KEY (id, seq))")
    insert = origin.prepare(f"INSERT INTO {KS}.events (id, seq, payload) VALUES (?, ?, ?) USING TIMESTAMP ?")
    for i in range(ROWS):
        origin.execute(insert, (i // 30, i % 30, f"payload {i}", 1_700_000_000_000_000 + i))
    # A reader that can only read Origin: its password is the secret the last test looks for.
    origin.execute(f"DROP ROLE IF EXISTS {SECRET_USER}")
    origin.execute(f"CREATE ROLE {SECRET_USER} WITH PASSWORD = '{SECRET_PASSWORD}' AND LOGIN = true")
    origin.execute(f"GRANT SELECT ON ALL KEYSPACES TO {SECRET_USER}")
    yield origin, target
    for session in (origin, target):
        session.execute(f"DROP KEYSPACE IF EXISTS {KS}")
    origin.execute(f"DROP ROLE IF EXISTS {SECRET_USER}")
    origin_cluster.shutdown()
    target_cluster.shutdown()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("phase2-state")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("phase2-work")


def phase2(state_dir: Path, work_dir: Path, *extra: str, **variables) -> subprocess.CompletedProcess:
    extra_vars = {
        "migration_state_dir": str(state_dir),
        "data_migration_work_dir": str(work_dir),
        "data_migration_keyspaces": [KS],
        "data_migration_splits": 16,
        "data_migration_origin_contact_points": [ORIGIN.rpartition(":")[0]],
        "data_migration_origin_port": int(ORIGIN.rpartition(":")[2]),
        "data_migration_target_contact_points": [TARGET.rpartition(":")[0]],
        "data_migration_target_port": int(TARGET.rpartition(":")[2]),
        "data_migration_origin_username": "cassandra",
        "data_migration_origin_password": "cassandra",
        "data_migration_target_username": "cassandra",
        "data_migration_target_password": "cassandra",
        **variables,
    }
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    for name in ("ANSIBLE_ROLES_PATH", "ANSIBLE_FILTER_PLUGINS", "ANSIBLE_LIBRARY"):
        env.pop(name, None)  # the project's own configuration, not the scenario's
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            INVENTORY,
            str(ROOT / "playbooks/phase2.yml"),
            "-e",
            json.dumps(extra_vars),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def count(session) -> int:
    return session.execute(f"SELECT count(*) FROM {KS}.events").one()[0]


def record(state_dir: Path, name: str) -> dict:
    return json.loads((state_dir / name).read_text())


def set_phase(state_dir: Path, phase: int) -> None:
    (state_dir / "phase.json").write_text(json.dumps({"phase": phase, "history": []}))


def test_refused_in_phase_0(clusters, state_dir, work_dir):
    _, target = clusters
    run = phase2(state_dir, work_dir)
    assert run.returncode != 0
    assert "phase 2 cannot follow phase 0: run phase 1 first" in run.stdout
    assert count(target) == 0
    assert not (state_dir / "phase.json").exists()


def test_check_mode_copies_nothing(clusters, state_dir, work_dir):
    _, target = clusters
    # Phase 1 (dual writes through the proxy) is where phase 2 starts from.
    set_phase(state_dir, 1)
    run = phase2(state_dir, work_dir, "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "preflight passed" in run.stdout
    assert count(target) == 0
    assert record(state_dir, "phase.json")["phase"] == 1
    assert not (state_dir / "validation.json").exists()


def test_copy_validate_and_record(clusters, state_dir, work_dir):
    origin, target = clusters
    run = phase2(state_dir, work_dir)
    assert run.returncode == 0, run.stdout[-3000:]
    assert count(target) == count(origin) == ROWS
    stamp = f"SELECT writetime(payload) FROM {KS}.events WHERE id = 7 AND seq = 3"
    assert target.execute(stamp).one()[0] == origin.execute(stamp).one()[0] == 1_700_000_000_000_000 + 213
    validation = record(state_dir, "validation.json")
    assert validation["status"] == "passed"
    assert (validation["read"], validation["missing"], validation["mismatch"]) == (ROWS, 0, 0)
    phase = record(state_dir, "phase.json")
    assert phase["phase"] == 2
    assert [(h["from"], h["to"]) for h in phase["history"]] == [(1, 2)]
    # what phase 4's guard will say
    assert zdm_phase_transition(2, 4, validation=validation)["kind"] == "forward"


def test_rerun_keeps_the_finished_copy(clusters, state_dir, work_dir):
    run = phase2(state_dir, work_dir)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "a finished copy is recorded" in run.stdout
    assert record(state_dir, "phase.json")["history"] == [
        h for h in record(state_dir, "phase.json")["history"] if (h["from"], h["to"]) == (1, 2)
    ]


def test_differences_block_phase_4_until_repaired(clusters, state_dir, work_dir):
    _, target = clusters
    for seq in range(7):
        target.execute(f"DELETE FROM {KS}.events WHERE id = 11 AND seq = {seq}")
    for seq in range(4):
        target.execute(f"UPDATE {KS}.events SET payload = 'changed on Target' WHERE id = 12 AND seq = {seq}")
    run = phase2(state_dir, work_dir)
    assert run.returncode != 0
    assert "Target differs from Origin" in run.stdout
    validation = record(state_dir, "validation.json")
    assert (validation["status"], validation["missing"], validation["mismatch"]) == ("failed", 7, 4)
    with pytest.raises(AnsibleFilterError, match="zdm_force_reason"):
        zdm_phase_transition(2, 4, validation=validation)

    run = phase2(state_dir, work_dir, data_migration_autocorrect=["missing", "mismatch"])
    assert run.returncode == 0, run.stdout[-3000:]
    validation = record(state_dir, "validation.json")
    assert validation["status"] == "passed"
    assert (validation["corrected_missing"], validation["corrected_mismatch"]) == (7, 4)
    assert (validation["missing"], validation["mismatch"]) == (0, 0)
    assert count(target) == ROWS


@pytest.mark.parametrize("engine", ["cdm", "dsbulk-migrator", "sstables"])
def test_every_engine_records_the_same_validation(clusters, state_dir, work_dir, engine):
    _, target = clusters
    target.execute(f"TRUNCATE {KS}.events")
    run = phase2(state_dir, work_dir, data_migration_engine=engine, data_migration_recopy=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert count(target) == ROWS
    validation = record(state_dir, "validation.json")
    assert (validation["status"], validation["copied_by"]) == ("passed", engine)
    assert validation["engine"] == ("cdm" if engine == "cdm" else "builtin")
    assert (validation["read"], validation["missing"], validation["mismatch"], validation["skipped"]) == (ROWS, 0, 0, 0)
    assert (validation["complete"], validation["tables"], validation["token_coverage_percent"]) == (True, "all", 100)
    assert zdm_phase_transition(2, 4, validation=validation)["kind"] == "forward"


def test_a_partial_validation_does_not_open_phase_4(clusters, state_dir, work_dir):
    run = phase2(state_dir, work_dir, data_migration_tables=[f"{KS}.events"])
    assert run.returncode == 0, run.stdout[-3000:]
    validation = record(state_dir, "validation.json")
    assert validation["status"] == "passed" and validation["tables"] == [f"{KS}.events"]
    with pytest.raises(AnsibleFilterError, match=r"covered only the tables"):
        zdm_phase_transition(2, 4, validation=validation)


def on_origin_nodes(*command: str) -> str:
    """What a command prints on the scenario's Origin node (through Ansible, as the role reaches it)."""
    run = subprocess.run(
        ["ansible", "-i", INVENTORY, "origin", "-m", "ansible.builtin.shell", "-a", " ".join(command)],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return run.stdout


def test_sstables_engine_keeps_each_cells_writetime_ttl_and_the_deletions(clusters, state_dir, work_dir):
    origin, target = clusters
    table = f"{KS}.expiring"
    for session in (origin, target):
        session.execute(f"CREATE TABLE {table} (id int, seq int, a text, b int, PRIMARY KEY (id, seq))")
    base = 1_700_000_000_000_000
    for i in range(600):
        # a: the row's writetime; b: written later, and on every third row with a TTL of its own
        key = f"id = {i // 20} AND seq = {i % 20}"
        values = f"({i // 20}, {i % 20}, 'a{i}')"
        origin.execute(f"INSERT INTO {table} (id, seq, a) VALUES {values} USING TIMESTAMP {base + i}")
        ttl = " AND TTL 86400" if i % 3 == 0 else ""
        origin.execute(f"UPDATE {table} USING TIMESTAMP {base + 10_000 + i}{ttl} SET b = {i} WHERE {key}")
    # A row Target holds from before, deleted on Origin since: the tombstone travels with the SSTables.
    target.execute(f"INSERT INTO {table} (id, seq, a) VALUES (999, 0, 'gone') USING TIMESTAMP {base}")
    origin.execute(f"DELETE FROM {table} USING TIMESTAMP {base + 1} WHERE id = 999 AND seq = 0")

    run = phase2(state_dir, work_dir, data_migration_engine="sstables", data_migration_recopy=True,
                 data_migration_tables=[table])  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"loaded {table}: " in run.stdout
    query = f"SELECT id, seq, a, writetime(a), b, writetime(b), ttl(b) FROM {table}"
    on_origin = {(r.id, r.seq): r for r in origin.execute(query)}
    on_target = {(r.id, r.seq): r for r in target.execute(query)}
    assert len(on_origin) == 600 and on_target.keys() == on_origin.keys()  # (999, 0) is gone from Target
    for key, row in on_origin.items():
        copy = on_target[key]
        assert (copy.a, copy.writetime_a, copy.b, copy.writetime_b) == (row.a, row.writetime_a, row.b, row.writetime_b)
        assert (copy.ttl_b is None) == (row.ttl_b is None), key
        if row.ttl_b is not None:
            assert abs(copy.ttl_b - row.ttl_b) <= 60, key
    validation = record(state_dir, "validation.json")
    assert (validation["status"], validation["copied_by"], validation["missing"], validation["mismatch"]) == (
        "passed", "sstables", 0, 0)  # fmt: skip
    # The snapshot and the private directory are gone from the Origin node.
    left = on_origin_nodes("nodetool listsnapshots; ls -d /tmp/zdmkit-sstables.* 2>/dev/null; true")
    assert "zdmkit-phase2" not in left and "/tmp/zdmkit-sstables." not in left, left
    for session in (origin, target):
        session.execute(f"DROP TABLE {table}")


def test_sstables_engine_in_check_mode_snapshots_and_streams_nothing(clusters, tmp_path):
    _, target = clusters
    state = tmp_path / "state"
    state.mkdir()
    set_phase(state, 1)
    target.execute(f"TRUNCATE {KS}.events")
    run = phase2(state, tmp_path / "work", "--check", data_migration_engine="sstables")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "preflight passed" in run.stdout and "check mode: nothing copied" in run.stdout
    assert count(target) == 0
    assert "zdmkit-phase2" not in on_origin_nodes("nodetool listsnapshots")
    assert record(state, "phase.json")["phase"] == 1 and not (state / "validation.json").exists()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"data_migration_keyspaces": [KS, "no_such_keyspace"]}, "no_such_keyspace"),
        ({"data_migration_engine": "cdm", "data_migration_keyspaces": ["no_such_keyspace"]},
         "keyspace no_such_keyspace does not exist on Origin"),
        ({"data_migration_engine": "cdm", "data_migration_spark_master": "spark://172.30.90.254:7077"},
         "Spark master spark://172.30.90.254:7077 cannot be reached"),
        ({"data_migration_engine": "dsbulk-migrator", "data_migration_target_password": "wrong"},
         "authentication failed for user 'cassandra'"),
        ({"data_migration_target_password": "wrong"}, "Target"),
        ({"data_migration_keyspaces": []}, "data_migration_keyspaces"),
        ({"data_migration_engine": "sparkle"}, "data_migration_engine"),
        ({"data_migration_autocorrect": ["everything"]}, "data_migration_autocorrect"),
        ({"data_migration_origin_contact_points": []}, "data_migration_origin_contact_points"),
        # an address on the scenario's network where nothing answers
        ({"data_migration_target_contact_points": ["172.30.90.254"]}, "172.30.90.254"),
        ({"data_migration_engine": "sstables", "data_migration_sstables_target_storage_port": 7999},
         "did not answer within 5 s"),
        ({"data_migration_engine": "sstables", "data_migration_sstables_loader": "/opt/nowhere/sstableloader"},
         "Not an executable: migrate-origin-1:/opt/nowhere/sstableloader"),
    ],
    ids=[
        "keyspace-missing",
        "cdm-keyspace-missing",
        "cdm-spark-master-unreachable",
        "dsbulk-migrator-wrong-password",
        "wrong-password",
        "no-keyspaces",
        "engine-typo",
        "autocorrect-typo",
        "no-origin",
        "target-unreachable",
        "sstables-storage-port-closed",
        "sstables-no-loader",
    ],
)
def test_bad_input_is_refused_before_copying(clusters, tmp_path, variables, expected):
    state = tmp_path / "state"
    state.mkdir()
    set_phase(state, 1)
    run = phase2(state, tmp_path / "work", **variables)
    assert run.returncode != 0
    assert expected in run.stdout
    assert not (tmp_path / "work" / "copy-state.json").exists()
    assert record(state, "phase.json")["phase"] == 1
    # no validation recorded as passed
    assert not (state / "validation.json").exists() or record(state, "validation.json")["status"] != "passed"


def test_secret_never_shows_at_highest_verbosity(clusters, tmp_path, tmp_path_factory):
    state = tmp_path / "state"
    state.mkdir()
    set_phase(state, 1)
    # The secret comes the way an operator's vault gives it: from a vars file, not the command line.
    secrets = tmp_path_factory.mktemp("secrets") / "vault.json"
    secrets.touch(mode=0o600)
    secrets.write_text(
        json.dumps({"data_migration_origin_username": SECRET_USER, "data_migration_origin_password": SECRET_PASSWORD})
    )
    run = phase2(state, tmp_path / "work", "-vvvv", "-e", f"@{secrets}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert SECRET_PASSWORD not in run.stdout + run.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET_PASSWORD not in path.read_text(errors="replace"), path
