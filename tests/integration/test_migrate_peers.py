"""The public lab's tools beside zdmkit's engine, against real clusters: Cassandra Data Migrator
(its Migrate and DiffData jobs) and DSBulk Migrator (migrate-live), and both Spark engines on a
standalone cluster.

Needs the two clusters of the migrate scenario, and for the cluster test a Spark master with two
workers (role spark):

    ZDMKIT_TEST_ORIGIN=host:port ZDMKIT_TEST_TARGET=host:port \\
    ZDMKIT_TEST_SPARK_MASTER=spark://host:7077 ZDMKIT_TEST_SPARK_MASTER_UI=http://127.0.0.1:18080 \\
        pytest tests/integration/test_migrate_peers.py

The jars come from the artifact cache (``ZDMKIT_TEST_CDM_JAR`` / ``ZDMKIT_TEST_DSBULK_MIGRATOR_JAR``
to use others). The tests of the ``events`` table run in file order and share its state: a CDM
copy, injected breaks, their repair, then the cluster runs.
"""

# ruff: noqa: S608 -- the CQL here is built from generated keyspace names and literals only
from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ORIGIN = os.environ.get("ZDMKIT_TEST_ORIGIN", "")
TARGET = os.environ.get("ZDMKIT_TEST_TARGET", "")
MASTER = os.environ.get("ZDMKIT_TEST_SPARK_MASTER", "")
MASTER_UI = os.environ.get("ZDMKIT_TEST_SPARK_MASTER_UI", "")
WORKER_PYTHON = os.environ.get("ZDMKIT_TEST_SPARK_PYTHON", "/opt/spark/venv/bin/python")
REQUIRED = os.environ.get("ZDMKIT_REQUIRE_INTEGRATION") == "1"
USER = PASSWORD = "cassandra"
CACHE = Path(os.environ.get("ZDMKIT_ARTIFACTS", os.path.expanduser("~/.cache/zdmkit/artifacts")))
CDM_JAR = os.environ.get("ZDMKIT_TEST_CDM_JAR") or str(CACHE / "cassandra-data-migrator-6.0.1.jar")
MIGRATOR_JAR = os.environ.get("ZDMKIT_TEST_DSBULK_MIGRATOR_JAR") or str(
    CACHE / "dsbulk-migrator-9b8a375-embedded-dsbulk.jar"
)
BASE = 1_700_000_000_000_000
ROWS = 200  # 40 partitions of 5 rows
SPLITS = "16"
# executors of 1 core and 512 MB: one on each worker of the scenario's cluster
CLUSTER_CONF = ["--spark-conf", "spark.executor.memory=512m", "--spark-conf", "spark.executor.cores=1"]


def _need(condition: bool, message: str) -> None:
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"{message} (ZDMKIT_REQUIRE_INTEGRATION=1)", pytrace=False)
    pytest.skip(message)


def _session(endpoint: str) -> tuple[Any, Any]:
    from zdmkit.migrate.connection import Endpoint, connect

    return connect(Endpoint("x", (endpoint,), username=USER, password=PASSWORD))


class Clusters:
    def __init__(self, keyspace: str, tmp: Path):
        self.ks = keyspace
        self.tmp = tmp
        self.o_cluster, self.origin = _session(ORIGIN)
        self.t_cluster, self.target = _session(TARGET)
        for session in (self.origin, self.target):
            session.execute(
                f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            )

    def both(self, cql: str) -> None:
        self.origin.execute(cql.replace("{ks}", self.ks))
        self.target.execute(cql.replace("{ks}", self.ks))

    def close(self) -> None:
        for session in (self.origin, self.target):
            session.execute(f"DROP KEYSPACE IF EXISTS {self.ks}")
        self.o_cluster.shutdown()
        self.t_cluster.shutdown()

    def run(self, command: str, *extra: str) -> tuple[int, dict[str, Any], str]:
        """The zdmkit-migrate CLI in this process: (exit code, JSON report, standard error)."""
        import contextlib
        import io

        from zdmkit.migrate.cli import main

        report = self.tmp / f"report-{uuid.uuid4().hex}.json"
        argv = [command, "--origin-contact-points", ORIGIN, "--origin-username", USER,
                "--target-contact-points", TARGET, "--target-username", USER, "--keyspaces", self.ks,
                "--splits", SPLITS, "--progress", "none", "--report", str(report), *extra]  # fmt: skip
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
        data = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
        return code, data, err.getvalue()


def cdm(*extra: str) -> tuple[str, ...]:
    return ("--engine", "cdm", "--cdm-jar", CDM_JAR, *extra)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Any:
    _need(bool(ORIGIN and TARGET), "set ZDMKIT_TEST_ORIGIN and ZDMKIT_TEST_TARGET to host:port of two clusters")
    _need(Path(CDM_JAR).is_file() and Path(MIGRATOR_JAR).is_file(), f"{CDM_JAR} and {MIGRATOR_JAR} (make artifacts)")
    os.environ["ZDMKIT_ORIGIN_PASSWORD"] = os.environ["ZDMKIT_TARGET_PASSWORD"] = PASSWORD
    clusters = Clusters(f"zdmkit_peers_{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("peers"))
    clusters.both(
        "CREATE TABLE {ks}.events (id int, seq int, name text, score bigint, ratio double, flag boolean, "
        "tags frozen<set<text>>, at timestamp, uid uuid, PRIMARY KEY (id, seq))"
    )
    insert = clusters.origin.prepare(
        f"INSERT INTO {clusters.ks}.events (id, seq, name, score, ratio, flag, tags, at, uid) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
    for i in range(ROWS):
        ttl = 86_400 if i % 3 == 0 else 0  # a third of the rows expire
        clusters.origin.execute(insert, (i // 5, i % 5, f"event {i}", i * 1000, i / 7, i % 2 == 0, {"a", f"t{i % 4}"},
                                         1_600_000_000_000 + i, uuid.uuid4(), BASE + i, ttl))  # fmt: skip
    yield clusters
    clusters.close()


CELLS = ["name", "score", "ratio", "flag", "tags", "at", "uid"]


def cells(session: Any, ks: str, table: str, keys: list[str], cols: list[str]) -> dict[tuple, dict[str, tuple]]:
    """{primary key: {column: (value, writetime, ttl)}} of a whole (small) table."""
    exprs = [e for c in cols for e in (c, f"WRITETIME({c})", f"TTL({c})")]
    out = {}
    for row in session.execute(f"SELECT {', '.join(keys + exprs)} FROM {ks}.{table}"):
        key, rest = tuple(row[: len(keys)]), row[len(keys) :]
        out[key] = {c: tuple(rest[3 * i : 3 * i + 3]) for i, c in enumerate(cols)}
    return out


def assert_same_cells(env: Any, table: str, keys: list[str], cols: list[str]) -> int:
    """Every cell on Target has Origin's value and writetime, and its TTL (within the seconds
    the copy took); returns how many cells carry a TTL."""
    origin = cells(env.origin, env.ks, table, keys, cols)
    target = cells(env.target, env.ks, table, keys, cols)
    assert origin.keys() == target.keys()
    with_ttl = 0
    for key, row in origin.items():
        for col, (value, wt, ttl) in row.items():
            t_value, t_wt, t_ttl = target[key][col]
            assert (t_value, t_wt) == (value, wt), (key, col)
            assert (ttl is None) == (t_ttl is None), (key, col, ttl, t_ttl)
            if ttl is not None:
                with_ttl += 1
                assert abs(ttl - t_ttl) <= 120, (key, col, ttl, t_ttl)
    return with_ttl


def test_cdm_copies_a_table_with_writetimes_and_ttls(env):
    code, report, err = env.run("copy", *cdm("--cdm-workdir", str(env.tmp / "cdm")))
    assert code == 0, err[-2000:]
    entry = report["tables"][f"{env.ks}.events"]
    assert (entry["rows"], entry["writes"], entry["ranges_done"]) == (ROWS, ROWS, int(SPLITS))
    assert assert_same_cells(env, "events", ["id", "seq"], CELLS) == len(CELLS) * len(range(0, ROWS, 3))
    code, report, _ = env.run("validate", "--compare-writetimes")
    assert code == 0, report["totals"]
    assert report["totals"]["valid"] == report["totals"]["read"] == ROWS


MISSING = [(100 + k, 0) for k in range(10)]  # written to Origin only, with old writetimes
CHANGED = [(3, 1), (7, 4), (12, 0), (25, 2), (39, 3)]  # changed on Origin only


def _keys(samples: list[dict]) -> list[tuple[int, int]]:
    return sorted((int(s["key"]["id"]), int(s["key"]["seq"])) for s in samples)


REPORTS: dict[str, dict[str, Any]] = {}  # the local validations of the breaks, for the cluster runs


def test_breaks_are_reported_exactly_by_cdm_and_zdmkit(env):
    for pk, ck in MISSING:
        env.origin.execute(f"INSERT INTO {env.ks}.events (id, seq, name) VALUES ({pk}, {ck}, 'late') "
                           f"USING TIMESTAMP {BASE + 5000}")  # fmt: skip
    for pk, ck in CHANGED:
        env.origin.execute(f"UPDATE {env.ks}.events SET name = 'changed' WHERE id = {pk} AND seq = {ck}")

    code, zdmkit_report, _ = env.run("validate")
    assert code == 1
    t = zdmkit_report["totals"]
    assert (t["missing"], t["mismatch"], t["valid"]) == (10, 5, ROWS - 5)
    samples = zdmkit_report["tables"][f"{env.ks}.events"]["samples"]
    assert (_keys(samples["missing"]), _keys(samples["mismatch"])) == (sorted(MISSING), sorted(CHANGED))

    code, cdm_report, err = env.run("validate", *cdm("--cdm-workdir", str(env.tmp / "cdm")))
    assert code == 1, err[-2000:]
    t = cdm_report["totals"]
    assert (t["missing"], t["mismatch"], t["valid"], t["read"]) == (10, 5, ROWS - 5, ROWS + 10)
    samples = cdm_report["tables"][f"{env.ks}.events"]["samples"]
    assert (_keys(samples["missing"]), _keys(samples["mismatch"])) == (sorted(MISSING), sorted(CHANGED))
    assert all(s["columns"] == ["name"] for s in samples["mismatch"])
    assert cdm_report["complete"] and not cdm_report["ok"]
    REPORTS.update(zdmkit=zdmkit_report, cdm=cdm_report)


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the scenario's Spark web UIs
        return json.loads(response.read().decode("utf-8"))


def executor_hosts(since_ms: int) -> dict[str, set[str]]:
    """{application id: worker hosts that ran one of its executors}, for applications the master
    (its JSON status, reached through the port published on this machine's loopback) saw start
    since ``since_ms``; the workers' own JSON status lists their executors."""
    master = _json(f"{MASTER_UI}/json/")
    apps = {a["id"] for a in master.get("completedapps", []) + master.get("activeapps", [])
            if a.get("starttime", 0) >= since_ms}  # fmt: skip
    hosts: dict[str, set[str]] = {app: set() for app in apps}
    for worker in master["workers"]:
        status = _json(f"{worker['webuiaddress']}/json/")
        for executor in status.get("executors", []) + status.get("finishedexecutors", []):
            if executor.get("appid") in hosts:
                hosts[executor["appid"]].add(worker["host"])
    return hosts


def _comparable(report: dict[str, Any]) -> tuple:
    t = report["totals"]
    samples = next(iter(report["tables"].values()))["samples"]
    return (t["read"], t["valid"], t["missing"], t["mismatch"],
            _keys(samples.get("missing", [])), _keys(samples.get("mismatch", [])))  # fmt: skip


def test_spark_engine_and_cdm_run_on_two_workers_with_the_local_results(env):
    _need(bool(MASTER and MASTER_UI), "set ZDMKIT_TEST_SPARK_MASTER and ZDMKIT_TEST_SPARK_MASTER_UI")
    assert REPORTS, "runs after test_breaks_are_reported_exactly_by_cdm_and_zdmkit, on the same breaks"
    cluster = ("--spark-master", MASTER, "--spark-master-ui", MASTER_UI, *CLUSTER_CONF)
    spark_local = env.run("validate", "--engine", "spark", "--spark-master", "local[2]")
    since = int(time.time() * 1000) - 5000
    spark_cluster = env.run("validate", "--engine", "spark", "--spark-python", WORKER_PYTHON, *cluster)
    spark_hosts = executor_hosts(since)
    since = int(time.time() * 1000) - 5000
    cdm_cluster = env.run("validate", *cdm(), *cluster)
    cdm_hosts = executor_hosts(since)

    for (code, report, err), label in ((spark_local, "spark local"), (spark_cluster, "spark cluster"),
                                       (cdm_cluster, "cdm cluster")):  # fmt: skip
        assert code == 1, (label, err[-2000:])
        assert report["complete"], label
    # the same counts and the same keys as the local runs (zdmkit's engine and CDM in local[*])
    assert _comparable(spark_local[1]) == _comparable(REPORTS["zdmkit"])
    assert _comparable(spark_cluster[1]) == _comparable(spark_local[1])
    assert _comparable(cdm_cluster[1]) == _comparable(REPORTS["cdm"])
    # one application each, with executors on both workers
    assert [len(h) for h in spark_hosts.values()] == [2], spark_hosts
    assert [len(h) for h in cdm_hosts.values()] == [2], cdm_hosts


def test_cdm_autocorrect_leaves_zero_differences(env):
    workdir = ("--cdm-workdir", str(env.tmp / "cdm"))
    code, fixed, _ = env.run("validate", *cdm(*workdir), "--autocorrect", "missing,mismatch")
    assert code == 0, fixed["totals"]
    assert (fixed["totals"]["corrected_missing"], fixed["totals"]["corrected_mismatch"]) == (10, 5)

    code, again, _ = env.run("validate", *cdm(*workdir))
    assert code == 0 and (again["totals"]["missing"], again["totals"]["mismatch"]) == (0, 0), again["totals"]
    code, report, _ = env.run("validate")
    assert code == 0 and report["differences"] == 0, report["totals"]
    assert report["totals"]["read"] == ROWS + 10
    # CDM writes a row's cells at the row's newest writetime: the repaired rows, whose cells had two
    # writetimes on Origin, now differ in the writetimes of their older cells (and only there)
    code, report, _ = env.run("validate", "--compare-writetimes")
    samples = report["tables"][f"{env.ks}.events"]["samples"]
    assert (code, report["totals"]["mismatch"], _keys(samples["mismatch"])) == (1, 5, sorted(CHANGED))
    assert all(all(c.startswith("writetime(") for c in s["columns"]) for s in samples["mismatch"])


def test_dsbulk_migrator_copies_tables_with_writetimes_and_ttls(env):
    # a second table whose cells have writetimes and TTLs of their own within a row
    env.both("CREATE TABLE {ks}.cells (k int PRIMARY KEY, a text, b bigint, c timestamp)")
    for k in range(60):
        env.origin.execute(f"INSERT INTO {env.ks}.cells (k, a, b, c) VALUES ({k}, 'a{k}', {k}, {k * 1000}) "
                           f"USING TIMESTAMP {BASE + k}{' AND TTL 7200' if k % 4 == 0 else ''}")  # fmt: skip
        if k % 2:
            env.origin.execute(f"UPDATE {env.ks}.cells USING TIMESTAMP {BASE + 10_000 + k} AND TTL 3600 "
                               f"SET b = {-k} WHERE k = {k}")  # fmt: skip
    env.target.execute(f"TRUNCATE {env.ks}.events")
    started = int(time.time() * 1_000_000)
    code, report, err = env.run("copy", "--engine", "dsbulk-migrator", "--dsbulk-migrator-jar", MIGRATOR_JAR,
                                "--dsbulk-migrator-workdir", str(env.tmp / "migrator"))  # fmt: skip
    assert code == 0, err[-2000:]
    assert report["tables"][f"{env.ks}.cells"]["rows"] == 60
    assert report["tables"][f"{env.ks}.events"]["rows"] == ROWS + 10
    assert assert_same_cells(env, "cells", ["k"], ["a", "b", "c"]) == 3 * 15 + 30
    code, report, _ = env.run("validate", "--compare-writetimes", "--tables", "cells")
    assert code == 0 and report["differences"] == 0, report["totals"]
    assert report["totals"]["read"] == 60

    # What DSBulk Migrator does with a null frozen collection: it writes an empty one, at the time
    # of its load (its INSERT binds the null writetime as unset) - newer than a value written to
    # Target meanwhile. zdmkit's validation names exactly those rows, the ten without tags.
    code, report, _ = env.run("validate", "--tables", "events")
    samples = report["tables"][f"{env.ks}.events"]["samples"]
    assert (code, report["totals"]["mismatch"], report["totals"]["missing"]) == (1, 10, 0), report["totals"]
    assert _keys(samples["mismatch"]) == sorted(MISSING)
    assert all(s["columns"] == ["tags"] for s in samples["mismatch"])
    for pk, ck in MISSING:
        tags, written = env.target.execute(f"SELECT tags, WRITETIME(tags) FROM {env.ks}.events "
                                           f"WHERE id = {pk} AND seq = {ck}").one()  # fmt: skip
        assert (list(tags), written > started) == ([], True)
    others = [c for c in CELLS if c != "tags"]
    assert assert_same_cells(env, "events", ["id", "seq"], others) > 0


def test_bad_input_is_named_and_nothing_passes(env):
    code, report, err = env.run("validate", *cdm(), "--keyspaces", "no_such_keyspace")
    assert code == 2 and "keyspace no_such_keyspace does not exist on Origin" in err and not report
    code, report, err = env.run("copy", *cdm(), "--spark-master", "spark://172.30.90.254:7077")
    assert code == 2 and "Spark master spark://172.30.90.254:7077 cannot be reached" in err and not report
    code, report, err = env.run("copy", "--engine", "spark", "--spark-master", "spark://172.30.90.254:7077")
    assert code == 2 and "cannot be reached" in err

    # wrong credentials: zdmkit's preflight refuses first; DSBulk Migrator's own failure (it exits 0
    # after migrating nothing) is named too when it runs
    from zdmkit.migrate.cli import build_parser, job_config, peer_options
    from zdmkit.migrate.dsbulk_migrator import run_migrator
    from zdmkit.migrate.engine import preflight

    argv = ["copy", "--origin-contact-points", ORIGIN, "--origin-username", USER, "--target-contact-points", TARGET,
            "--target-username", USER, "--keyspaces", env.ks, "--tables", "cells", "--engine", "dsbulk-migrator",
            "--dsbulk-migrator-jar", MIGRATOR_JAR, "--dsbulk-migrator-workdir", str(env.tmp / "wrong")]  # fmt: skip
    specs = preflight(job_config(build_parser().parse_args(argv)), "copy").specs
    os.environ["ZDMKIT_TARGET_PASSWORD"] = "Not-The-Password-9"
    try:
        code, report, err = env.run("copy", *argv[9:])
        assert code == 2 and "Target" in err and "authentication failed for user 'cassandra'" in err
        args = build_parser().parse_args(argv)
        result = run_migrator(job_config(args), specs, peer_options(args)[1])
    finally:
        os.environ["ZDMKIT_TARGET_PASSWORD"] = PASSWORD
    (failure,) = result["failed"]
    assert failure["error"].startswith("DSBulk Migrator: authentication failed on Target"), failure
    assert "Provided username cassandra and/or password are incorrect" in failure["error"]
    assert "Not-The-Password-9" not in json.dumps(result) + Path(result["log"]).read_text()
