"""Phase-2 data migration against real Cassandra: copy, validate, autocorrect, resume, Spark, DSBulk.

Needs two Cassandra endpoints (credentials cassandra/cassandra):

    ZDMKIT_TEST_ORIGIN=host:port ZDMKIT_TEST_TARGET=host:port pytest -m integration tests/integration

With ``ZDMKIT_REQUIRE_INTEGRATION=1`` a missing endpoint fails the tests instead of skipping them.
When both variables name the same node, Target tables live in a keyspace of another name
(``--keyspace-map``), which is enough for a quick check on one node. The DSBulk test uses
``ZDMKIT_TEST_DSBULK`` or the ``dsbulk-*.tar.gz`` of the artifact cache.

CQL types covered (table ``types`` below; every one copied with writetime and TTL and compared):

=====================================  ==============================================================
column type                            how each cell keeps its writetime and TTL
=====================================  ==============================================================
ascii bigint blob boolean date         one cell: written in the group of cells sharing its
decimal double duration float inet     (writetime, TTL)
int smallint text time timestamp
timeuuid tinyint uuid varint
vector<float, 3>, tuple<int, text>     one cell (frozen)
frozen<list|set|map>, frozen<udt>      one cell (frozen)
set<timeuuid> (non-frozen)             one cell per element, added per (writetime, TTL) group
map<text, bigint> (non-frozen)         one cell per entry, added per (writetime, TTL) group
udt (non-frozen)                       one cell per field, set field by field
list<text> (non-frozen)                written whole at the newest element's writetime
static columns (simple and set)        once per partition, keyed by the partition key
composite partition key, clustering    key columns (DESC and ASC clustering order)
primary-key-only rows                  key-only INSERT (row marker)
counter                                refused before copying, with the reason
=====================================  ==============================================================
"""

# ruff: noqa: S608 -- the CQL here is built from generated keyspace names and literals only
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from integration_env import need

pytestmark = pytest.mark.integration

ORIGIN = os.environ.get("ZDMKIT_TEST_ORIGIN", "")
TARGET = os.environ.get("ZDMKIT_TEST_TARGET", "")
USER = PASSWORD = "cassandra"


@dataclass
class Side:
    session: Any
    keyspace: str

    def execute(self, cql: str, params: Any = None) -> Any:
        return self.session.execute(cql.replace("{ks}", self.keyspace), params)


@dataclass
class Env:
    origin: Side
    target: Side
    tmp: Path

    def args(self, command: str, *extra: str) -> list[str]:
        argv = [
            command,
            "--origin-contact-points", ORIGIN, "--origin-username", USER,
            "--target-contact-points", TARGET, "--target-username", USER,
            "--keyspaces", self.origin.keyspace, "--splits", "16", "--progress", "log",
        ]  # fmt: skip
        if self.target.keyspace != self.origin.keyspace:
            argv += ["--keyspace-map", f"{self.origin.keyspace}={self.target.keyspace}"]
        return argv + list(extra)

    def run(self, command: str, *extra: str) -> tuple[int, dict[str, Any], str]:
        """Run the CLI in this process; returns (exit code, JSON report, printed text)."""
        from zdmkit.migrate.cli import main

        report = self.tmp / f"report-{uuid.uuid4().hex}.json"
        code = main(self.args(command, "--report", str(report), *extra))
        data = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
        return code, data, ""

    def table(self, name: str) -> str:
        return f"{self.origin.keyspace}.{name}"


@pytest.fixture(scope="module")
def sessions() -> Iterator[tuple[Any, Any]]:
    need(
        bool(ORIGIN and TARGET), "set ZDMKIT_TEST_ORIGIN and ZDMKIT_TEST_TARGET to host:port of two Cassandra clusters"
    )
    from zdmkit.migrate.connection import Endpoint, connect

    o_cluster, o_session = connect(Endpoint("Origin", (ORIGIN,), username=USER, password=PASSWORD))
    t_cluster, t_session = connect(Endpoint("Target", (TARGET,), username=USER, password=PASSWORD))
    yield o_session, t_session
    o_cluster.shutdown()
    t_cluster.shutdown()


@pytest.fixture
def env(sessions: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("ZDMKIT_ORIGIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("ZDMKIT_TARGET_PASSWORD", PASSWORD)
    name = f"zdmkit_it_{uuid.uuid4().hex[:10]}"
    o_ks, t_ks = name, (name if ORIGIN != TARGET else f"{name}_target")
    sides = []
    for session, ks in zip(sessions, (o_ks, t_ks), strict=True):
        session.execute(
            f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        sides.append(Side(session, ks))
    yield Env(sides[0], sides[1], tmp_path)
    for side in sides:
        side.session.execute(f"DROP KEYSPACE IF EXISTS {side.keyspace}")


def both(env: Env, cql: str) -> None:
    env.origin.execute(cql)
    env.target.execute(cql)


# -- data ------------------------------------------------------------------------------------

TYPES_DDL = [
    "CREATE TYPE {ks}.addr (street text, num int, tags frozen<set<text>>)",
    """CREATE TABLE {ks}.types (
        pk1 int, pk2 text, ck1 timestamp, ck2 uuid,
        s_text text STATIC, s_set set<int> STATIC,
        c_ascii ascii, c_bigint bigint, c_blob blob, c_boolean boolean, c_date date, c_decimal decimal,
        c_double double, c_duration duration, c_float float, c_inet inet, c_int int, c_smallint smallint,
        c_text text, c_time time, c_timestamp timestamp, c_timeuuid timeuuid, c_tinyint tinyint,
        c_uuid uuid, c_varint varint, c_vector vector<float, 3>, c_tuple tuple<int, text>,
        c_flist frozen<list<int>>, c_fset frozen<set<text>>, c_fmap frozen<map<text, int>>,
        c_fudt frozen<addr>, c_list list<text>, c_set set<timeuuid>, c_map map<text, bigint>, c_udt addr,
        PRIMARY KEY ((pk1, pk2), ck1, ck2)
    ) WITH CLUSTERING ORDER BY (ck1 DESC, ck2 ASC)""",
    "CREATE TABLE {ks}.keys_only (a int, b text, PRIMARY KEY (a, b))",
]
SIMPLE_COLS = [
    "c_ascii", "c_bigint", "c_blob", "c_boolean", "c_date", "c_decimal", "c_double", "c_duration", "c_float",
    "c_inet", "c_int", "c_smallint", "c_text", "c_time", "c_timestamp", "c_timeuuid", "c_tinyint", "c_uuid",
    "c_varint", "c_vector", "c_tuple", "c_flist", "c_fset", "c_fmap", "c_fudt",
]  # fmt: skip
TYPES_ROWS = 30


def fill_types(env: Env) -> None:
    from cassandra.util import Duration, Time

    o = env.origin
    insert = o.session.prepare(
        f"INSERT INTO {o.keyspace}.types (pk1, pk2, ck1, ck2, {', '.join(SIMPLE_COLS)}) "
        f"VALUES ({', '.join('?' for _ in range(4 + len(SIMPLE_COLS)))}) USING TIMESTAMP ? AND TTL ?"
    )
    base = 1_600_000_000_000_000
    for i in range(TYPES_ROWS):
        part = (i % 7, f"p{i % 7}")
        key = (*part, datetime(2024, 1, 1 + i % 28, tzinfo=UTC), uuid.uuid4())
        values = [
            "ascii", i * 10**12, bytes([i, 255]), i % 2 == 0, date(2020, 1, 1 + i % 28), Decimal(f"{i}.50"),
            i / 3, Duration(1, 2, 3_000_000_000), 1.5, "10.0.0.1", i, i % 30000, f"text {i} é", Time(3_600_000_000_000),
            datetime(2023, 5, 1, tzinfo=UTC), uuid.uuid1(), i % 100, uuid.uuid4(), 10**30 + i,
            [0.5, 1.5, float(i)], (i, "t"), [3, 1, 2], {"b", "a"}, {"k": i}, ("street", i, {"x"}),
        ]  # fmt: skip
        ttl = 86_400 if i % 3 == 0 else 0
        o.session.execute(insert, (*key, *values, base + i, ttl))
        where = f"pk1 = {key[0]} AND pk2 = '{key[1]}' AND ck1 = '{key[2].isoformat()}' AND ck2 = {key[3]}"
        # later writes: other writetimes and TTLs for some cells of the same row
        o.execute(f"UPDATE {{ks}}.types USING TIMESTAMP {base + 10_000 + i} AND TTL 7200 "
                  f"SET c_text = 'updated {i}', c_list = ['a', 'b'], c_set = c_set + {{{uuid.uuid1()}}}, "
                  f"c_map = c_map + {{'one': 1}}, c_udt.street = 'main' WHERE {where}")  # fmt: skip
        o.execute(f"UPDATE {{ks}}.types USING TIMESTAMP {base + 20_000 + i} "
                  f"SET c_set = c_set + {{{uuid.uuid1()}}}, c_map = c_map + {{'two': 2}}, c_udt.num = {i} "
                  f"WHERE {where}")  # fmt: skip
        o.execute(
            f"UPDATE {{ks}}.types USING TIMESTAMP {base + 30_000 + i} "
            f"SET s_text = 'static {key[0]}', s_set = s_set + {{{i}}} WHERE pk1 = {key[0]} AND pk2 = '{key[1]}'"
        )
    o.execute("INSERT INTO {ks}.types (pk1, pk2, s_text) VALUES (100, 'static only', 'lonely')")
    for a in range(10):
        o.execute(f"INSERT INTO {{ks}}.keys_only (a, b) VALUES ({a}, 'b{a}')")


def cells(side: Side, table: str, key_cols: list[str], cols: list[str]) -> dict[tuple, dict[str, tuple]]:
    """{primary key: {column: (value, writetime, ttl)}} of a whole (small) table."""
    exprs = []
    for c in cols:
        exprs += [c, f"WRITETIME({c})", f"TTL({c})"]
    rows = side.execute(f"SELECT {', '.join(key_cols + exprs)} FROM {{ks}}.{table}")
    out = {}
    for row in rows:
        key, rest = tuple(row[: len(key_cols)]), row[len(key_cols) :]
        out[key] = {c: tuple(rest[3 * i : 3 * i + 3]) for i, c in enumerate(cols)}
    return out


def fill_kv(env: Env, rows: int, table: str = "kv") -> None:
    both(env, f"CREATE TABLE {{ks}}.{table} (k int PRIMARY KEY, v text, n int)")
    insert = env.origin.session.prepare(
        f"INSERT INTO {env.origin.keyspace}.{table} (k, v, n) VALUES (?, ?, ?) USING TIMESTAMP ?"
    )
    from cassandra.concurrent import execute_concurrent_with_args

    execute_concurrent_with_args(
        env.origin.session, insert, [(k, f"value {k}", k, 1_000_000 + k) for k in range(rows)], concurrency=100
    )


# -- tests -----------------------------------------------------------------------------------


def test_copy_keeps_writetime_and_ttl_of_every_cell_for_every_type(env: Env) -> None:
    for ddl in TYPES_DDL:
        both(env, ddl)
    fill_types(env)
    code, report, _ = env.run("copy")
    assert code == 0, report
    assert report["tables"][env.table("types")]["rows"] == TYPES_ROWS + 1

    keys = ["pk1", "pk2", "ck1", "ck2"]
    value_cols = ["s_text", "s_set", *SIMPLE_COLS, "c_list", "c_set", "c_map", "c_udt"]
    origin = cells(env.origin, "types", keys, value_cols)
    target = cells(env.target, "types", keys, value_cols)
    assert origin.keys() == target.keys()
    for key, o_cells in origin.items():
        for col, (o_value, o_wt, o_ttl) in o_cells.items():
            t_value, t_wt, t_ttl = target[key][col]
            assert t_value == o_value, (key, col)
            if o_value is None:
                assert t_wt is None, (key, col)
                continue
            if col == "c_list":  # written whole at the newest element's writetime
                assert set(t_wt) == {max(o_wt)}, (key, col)
                continue
            assert t_wt == o_wt, (key, col)
            o_ttls = o_ttl if isinstance(o_ttl, list) else [o_ttl]
            t_ttls = t_ttl if isinstance(t_ttl, list) else [t_ttl]
            for a, b in zip(o_ttls, t_ttls, strict=True):
                assert (a is None) == (b is None), (key, col)
                if a is not None:
                    assert abs(a - b) <= 5, (key, col, a, b)
    assert env.target.execute("SELECT count(*) FROM {ks}.keys_only").one()[0] == 10

    code, report, _ = env.run("validate", "--compare-writetimes")
    assert code == 0, report
    assert report["totals"]["read"] == TYPES_ROWS + 1 + 10
    assert report["totals"]["valid"] == report["totals"]["read"]


def test_newer_value_on_target_survives_the_copy(env: Env) -> None:
    fill_kv(env, 50)
    newer = int(time.time() * 1_000_000)
    for k in range(5):  # a dual write that reached Target while the copy was reading Origin
        env.target.execute(f"INSERT INTO {{ks}}.kv (k, v) VALUES ({k}, 'newer') USING TIMESTAMP {newer}")
    code, _, _ = env.run("copy")
    assert code == 0
    rows = dict(env.target.execute("SELECT k, v FROM {ks}.kv"))
    assert all(rows[k] == "newer" for k in range(5))
    assert all(rows[k] == f"value {k}" for k in range(5, 50))
    written = dict(env.target.execute("SELECT k, WRITETIME(n) FROM {ks}.kv WHERE k = 1"))
    assert written[1] == 1_000_001  # the untouched cell still got Origin's writetime
    for k in range(5):  # the same dual write, applied to Origin too
        env.origin.execute(f"INSERT INTO {{ks}}.kv (k, v) VALUES ({k}, 'newer') USING TIMESTAMP {newer}")
    code, report, _ = env.run("validate", "--compare-writetimes")
    assert code == 0, report["totals"]


def test_injected_breaks_are_counted_exactly_then_autocorrected(env: Env) -> None:
    fill_kv(env, 300)
    assert env.run("copy")[0] == 0
    deleted, changed, uncopied = [3, 17, 42, 99, 150, 200, 299], [5, 6, 77, 180, 250], [1000, 1001, 1002]
    for k in deleted:
        env.target.execute(f"DELETE FROM {{ks}}.kv WHERE k = {k}")
    for k in changed:
        env.target.execute(f"UPDATE {{ks}}.kv SET v = 'broken' WHERE k = {k}")
    for k in uncopied:  # written to Origin only, with an old writetime
        env.origin.execute(f"INSERT INTO {{ks}}.kv (k, v, n) VALUES ({k}, 'late', 1) USING TIMESTAMP 2000000")

    code, report, _ = env.run("validate")
    totals = report["totals"]
    assert code == 1
    assert totals["missing"] == len(deleted) + len(uncopied)
    assert totals["mismatch"] == len(changed)
    assert totals["valid"] == 300 - len(deleted) - len(changed)
    samples = report["tables"][env.table("kv")]["samples"]
    assert sorted(s["key"]["k"] for s in samples["missing"]) == sorted(deleted + uncopied)
    assert sorted(s["key"]["k"] for s in samples["mismatch"]) == sorted(changed)
    assert all(s["columns"] == ["v"] for s in samples["mismatch"])

    # Origin's writetime alone cannot beat Target's newer delete/update: kept when asked to
    code, report, _ = env.run("validate", "--autocorrect", "missing,mismatch", "--keep-newer-on-target")
    assert code == 1
    assert report["totals"]["corrected_missing"] == len(uncopied)
    assert report["totals"]["corrected_mismatch"] == 0
    uncopied_wt = dict(env.target.execute("SELECT k, WRITETIME(v) FROM {ks}.kv WHERE k IN (1000, 1001, 1002)"))
    assert set(uncopied_wt.values()) == {2_000_000}

    code, report, _ = env.run("validate", "--autocorrect", "missing,mismatch")
    assert code == 0, report["totals"]
    assert report["totals"]["corrected_missing"] == len(deleted)
    assert report["totals"]["corrected_mismatch"] == len(changed)

    code, report, _ = env.run("validate")
    assert code == 0
    assert report["totals"]["valid"] == report["totals"]["read"] == 303
    assert report["differences"] == 0


def test_killed_copy_resumes_without_redoing_finished_ranges(env: Env) -> None:
    rows = 20_000
    fill_kv(env, rows)
    state = env.tmp / "copy-state.json"
    argv = env.args("copy", "--state-file", str(state), "--splits", "64", "--parallel", "1", "--rate", "1500")
    proc = subprocess.Popen([sys.executable, "-m", "zdmkit.migrate", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ})  # fmt: skip
    done: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            done = json.loads(state.read_text(encoding="utf-8"))["tables"].get(env.table("kv"), {}).get("completed", {})
            if len(done) >= 10:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the copy finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text(encoding="utf-8"))["tables"][env.table("kv")]["completed"]
    assert 10 <= len(done) < 64
    rows_done = sum(stats["rows"] for stats in done.values())

    code, report, _ = env.run("copy", "--state-file", str(state), "--splits", "64")
    assert code == 0
    entry = report["tables"][env.table("kv")]
    assert entry["ranges_resumed"] == len(done)
    assert entry["ranges_done"] == 64
    assert entry["rows"] == rows - rows_done  # finished ranges were not read again
    assert env.run("validate", "--splits", "64")[0] == 0


def test_spark_engine_copies_and_validates(env: Env) -> None:
    pytest.importorskip("pyspark")
    fill_kv(env, 500)
    spark = ("--engine", "spark", "--spark-master", "local[2]")
    code, report, _ = env.run("copy", *spark)
    assert code == 0, report.get("failed_ranges")
    assert report["tables"][env.table("kv")]["rows"] == 500
    code, report, _ = env.run("validate", *spark, "--compare-writetimes")
    assert code == 0
    assert report["totals"]["valid"] == 500


def _dsbulk() -> str:
    given = os.environ.get("ZDMKIT_TEST_DSBULK")
    if given:
        return given
    cache = os.environ.get("ZDMKIT_ARTIFACTS", os.path.expanduser("~/.cache/zdmkit/artifacts"))
    found = sorted(glob.glob(os.path.join(cache, "dsbulk-*.tar.gz")))
    return found[-1] if found else ""


def test_dsbulk_engine_copies_with_writetimes(env: Env) -> None:
    dsbulk = _dsbulk()
    need(bool(dsbulk), "no DSBulk: set ZDMKIT_TEST_DSBULK or fetch dsbulk into the artifact cache")
    both(env, "CREATE TABLE {ks}.events (p int, c int, s text STATIC, v text, n bigint, PRIMARY KEY (p, c))")
    for p in range(20):
        env.origin.execute(f"INSERT INTO {{ks}}.events (p, s) VALUES ({p}, 'st{p}') USING TIMESTAMP {500 + p}")
        for c in range(5):
            env.origin.execute(f"INSERT INTO {{ks}}.events (p, c, v) VALUES ({p}, {c}, 'v') USING TIMESTAMP {1000 + c}")
            env.origin.execute(
                f"UPDATE {{ks}}.events USING TIMESTAMP {2000 + c} AND TTL 3600 SET n = {c} WHERE p = {p} AND c = {c}"
            )
    code, report, _ = env.run("copy", "--engine", "dsbulk", "--dsbulk", dsbulk,
                              "--dsbulk-workdir", str(env.tmp / "dsbulk"))  # fmt: skip
    assert code == 0, report.get("failed_ranges")
    assert report["tables"][env.table("events")]["rows"] == 100
    code, report, _ = env.run("validate", "--compare-writetimes")
    assert code == 0, report["tables"]
    ttl = env.target.execute("SELECT TTL(n) FROM {ks}.events WHERE p = 1 AND c = 1").one()[0]
    assert 3000 < ttl <= 3600


def test_bad_input_is_refused_before_copying(env: Env, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    env.origin.execute("CREATE TABLE {ks}.a (k int PRIMARY KEY, v text, n int)")
    env.origin.execute("INSERT INTO {ks}.a (k, v, n) VALUES (1, 'x', 1)")

    def refused(*extra: str) -> str:
        capsys.readouterr()
        code, _, _ = env.run("copy", *extra)
        text = capsys.readouterr().err
        assert code == 2, text
        assert "refused before copying" in text
        return text

    assert f"table {env.target.keyspace}.a does not exist on Target" in refused()
    env.target.execute("CREATE TABLE {ks}.a (k int PRIMARY KEY, v int)")
    text = refused()
    assert f"table {env.table('a')}: column v is text on Origin but int on Target" in text
    assert f"table {env.table('a')}: column n (int) is missing on Target" in text
    assert env.target.execute("SELECT count(*) FROM {ks}.a").one()[0] == 0

    env.target.execute("DROP TABLE {ks}.a")
    env.target.execute("CREATE TABLE {ks}.a (k int PRIMARY KEY, v text, n int)")
    both(env, "CREATE TABLE {ks}.hits (page text PRIMARY KEY, n counter)")
    assert "counter column(s) n" in refused()
    assert env.run("copy", "--tables", "a")[0] == 0

    monkeypatch.setenv("ZDMKIT_TARGET_PASSWORD", "Not-The-Password-42")
    text = refused("--tables", "a")
    assert "authentication failed for user 'cassandra'" in text
    assert "Not-The-Password-42" not in text

    monkeypatch.setenv("ZDMKIT_TARGET_PASSWORD", PASSWORD)
    capsys.readouterr()
    from zdmkit.migrate.cli import main

    code = main(["copy", "--origin-contact-points", ORIGIN, "--origin-username", USER, "--target-contact-points",
                 TARGET, "--target-username", USER, "--keyspaces", "no_such_keyspace"])  # fmt: skip
    assert code == 2
    assert "keyspace no_such_keyspace does not exist on Origin" in capsys.readouterr().err
