"""Phase-2 tools side by side, in one run on the same generated data: zdmkit's copy and validation,
its SSTable streaming (phase 2's engine sstables, through the data_migration role), Cassandra Data
Migrator's Migrate and DiffData, DSBulk (plain unload + load, and with writetimes), DSBulk Migrator
and cqlsh COPY.

    .venv/bin/python bench/migration_bench.py --origin 172.30.89.11:9042 --target 172.30.89.21:9042 \
        --where "the local lab's containers (make lab), 768 MB heap each"

The SSTable streaming runs on Origin's nodes: ``--inventory`` (the lab's by default) must have
the cluster of ``--origin`` as its ``origin`` group.

Generates ``--rows`` rows on Origin once (several column types; a fifth of the rows with a TTL; a
tenth with one cell written later than the others, with a TTL of its own; ``--wide`` partitions
of ``--wide-rows`` rows each), then for each copier empties the Target table, copies and checks a
sample of the copied cells; the validations run on a complete copy. Per tool: rows/s, wall time,
peak memory (resident set of the tool's process tree, sampled every 0.2 s) and whether each
sampled cell kept its writetime and TTL. Every peer is set up as its own documentation
recommends; the table prints the settings. Writes its section of ``docs/benchmarks.md`` and
``docs/benchmarks-migration.json`` (``--out`` to write elsewhere). Credentials: --username
(cassandra) and ZDMKIT_ORIGIN_PASSWORD / ZDMKIT_TARGET_PASSWORD (default cassandra).

The goal the table shows (nothing here asserts a time): zdmkit's copy at least twice as fast as
CDM Migrate, zdmkit's validation at least twice as fast as CDM DiffData, writetimes kept.
"""

# ruff: noqa: S608 -- the CQL here is built from the bench keyspace name and literals only
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType
from docsection import SECTIONS, machine, relative_args, replace_section

from zdmkit.artifacts.jars import spark_env, spark_submit
from zdmkit.migrate import cdm as cdm_tool
from zdmkit.migrate import dsbulk_migrator
from zdmkit.migrate.connection import Endpoint, connect
from zdmkit.migrate.dsbulk import LOGBACK_XML, find_launcher
from zdmkit.migrate.schema import discover_tables
from zdmkit.migrate.tasks import JobConfig

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("ZDMKIT_ARTIFACTS", os.path.expanduser("~/.cache/zdmkit/artifacts")))
TABLE = "rows"
DDL = (
    "CREATE TABLE IF NOT EXISTS {ks}.rows (pk bigint, ck int, name text, score int, amount decimal, ratio double, "
    "flag boolean, uid uuid, updated timestamp, tags frozen<set<text>>, payload blob, PRIMARY KEY (pk, ck))"
)
VALUE_COLS = ["name", "score", "amount", "ratio", "flag", "uid", "updated", "tags", "payload"]
BASE_WT = 1_700_000_000_000_000
TTL_ROW = 30 * 86_400
TTL_CELL = 7 * 86_400


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--origin", required=True, help="host:port of Origin")
    p.add_argument("--target", required=True, help="host:port of Target")
    p.add_argument("--username", default="cassandra")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows in all (wide partitions included)")
    p.add_argument("--wide", type=int, default=5, help="wide partitions")
    p.add_argument("--wide-rows", type=int, default=20_000, help="rows per wide partition")
    p.add_argument("--keyspace", default="zdmkit_bench")
    p.add_argument("--inventory", default=str(ROOT / "inventories" / "lab"),
                   help="inventory whose origin group runs the cluster of --origin (tool sstables)")  # fmt: skip
    p.add_argument("--tools", default="zdmkit,sstables,cdm,dsbulk-plain,dsbulk-writetime,dsbulk-migrator,cqlsh",
                   help="comma-separated subset, in this order")  # fmt: skip
    p.add_argument("--sample", type=int, default=2000, help="rows whose cells are checked after each copy")
    p.add_argument("--splits", type=int, default=128, help="token ranges of zdmkit's engine")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="zdmkit's worker processes")
    p.add_argument("--concurrency", type=int, default=256, help="zdmkit's requests in flight")
    p.add_argument("--cdm-parts", type=int, default=0, help="CDM numParts (default: table size / 10 MB, >= cores)")
    p.add_argument("--driver-memory", default="2g", help="CDM's Spark driver (local[*]: its executors too)")
    p.add_argument("--cdm-rate", type=int, default=40_000,
                   help="CDM's ratelimit.origin/.target: above what this machine reaches")  # fmt: skip
    p.add_argument("--java-heap", default="2g", help="heap of DSBulk and DSBulk Migrator")
    p.add_argument(
        "--where",
        default="on this machine",
        help="where the clusters run, for the table's header (their version and size are asked)",
    )
    p.add_argument("--workdir", default=None, help="scratch space for CSV files (default: a temporary dir)")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    return p.parse_args()


def _password(role: str) -> str:
    return os.environ.get(f"ZDMKIT_{role.upper()}_PASSWORD", "cassandra")


# -- measuring --------------------------------------------------------------------------------


def _tree_rss(root: int) -> int:
    """Resident set size (bytes) of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss[int(entry.name)] = int(match.group(1)) * 1024 if match else 0
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakMemory:
    """Samples the process tree of a running command every 0.2 s; ``peak`` in bytes."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(self.pid))
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Run:
    seconds: float
    peak: int
    returncode: int
    output: str


Feed = Callable[[subprocess.Popen, Any], None]


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    feed: Feed | None = None,
    log: Path | None = None,
) -> Run:
    """Run a command, its output to ``log``; wall time and the peak memory of its process tree."""
    log = log or Path(tempfile.mkstemp(prefix="zdmkit-bench-", suffix=".log")[1])
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        if feed:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=env, cwd=cwd)  # fmt: skip
        else:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=cwd)  # fmt: skip
        meter = PeakMemory(proc.pid)
        if feed:
            reader = threading.Thread(target=feed, args=(proc, out), daemon=True)
            reader.start()
        code = proc.wait()
        if feed:
            reader.join(timeout=30)
        peak = meter.stop()
    return Run(time.monotonic() - started, peak, code, log.read_text(encoding="utf-8", errors="replace"))


# -- the bench --------------------------------------------------------------------------------


@dataclass
class Result:
    tool: str
    what: str
    settings: str
    rows: int = 0
    seconds: float = 0.0
    peak_mb: int = 0
    writetimes: str = "-"
    ttls: str = "-"
    note: str = ""
    failed: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.ks = args.keyspace
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zdmkit-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.origin_ep = Endpoint("Origin", (args.origin,), username=args.username, password=_password("origin"))
        self.target_ep = Endpoint("Target", (args.target,), username=args.username, password=_password("target"))
        self.o_cluster, self.origin = connect(self.origin_ep)
        self.t_cluster, self.target = connect(self.target_ep)
        self.results: list[Result] = []
        self.sample_keys: list[tuple[int, int]] = []
        self.env = {**os.environ, "ZDMKIT_ORIGIN_PASSWORD": _password("origin"),
                    "ZDMKIT_TARGET_PASSWORD": _password("target")}  # fmt: skip

    def describe(self, session: Any) -> str:
        """A cluster as the table names it: its version and how many nodes it has."""
        version = session.execute("SELECT release_version FROM system.local").one()[0]
        nodes = 1 + len(list(session.execute("SELECT peer FROM system.peers")))
        return f"Cassandra {version}, {nodes} node{'s' if nodes > 1 else ''}"

    def close(self) -> None:
        self.o_cluster.shutdown()
        self.t_cluster.shutdown()

    # -- data ---------------------------------------------------------------------------------

    def schema(self) -> None:
        for session in (self.origin, self.target):
            session.execute(f"CREATE KEYSPACE IF NOT EXISTS {self.ks} WITH replication = "
                            "{'class': 'SimpleStrategy', 'replication_factor': 1}")  # fmt: skip
            session.execute(DDL.format(ks=self.ks), timeout=60)
            session.execute(f"CREATE TABLE IF NOT EXISTS {self.ks}.bench_meta (k text PRIMARY KEY, v text)")

    @property
    def spec(self) -> dict[str, int]:
        a = self.args
        return {"rows": a.rows, "wide": a.wide, "wide_rows": a.wide_rows, "format": 1}

    def keys(self) -> list[tuple[int, int]]:
        a = self.args
        narrow = a.rows - a.wide * a.wide_rows
        keys = [(i, 0) for i in range(narrow)]
        keys += [(-1 - w, c) for w in range(a.wide) for c in range(a.wide_rows)]
        return keys

    def generate(self) -> None:
        done = self.origin.execute(f"SELECT v FROM {self.ks}.bench_meta WHERE k = 'spec'").one()
        if done and json.loads(done[0]) == self.spec:
            print(f"origin: the {self.args.rows:,} rows are there already", flush=True)
            return
        print(f"origin: writing {self.args.rows:,} rows", flush=True)
        insert = self.origin.prepare(
            f"INSERT INTO {self.ks}.rows (pk, ck, name, score, amount, ratio, flag, uid, updated, tags, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
        )
        later = self.origin.prepare(f"UPDATE {self.ks}.rows USING TIMESTAMP ? AND TTL ? SET score = ? "
                                    "WHERE pk = ? AND ck = ?")  # fmt: skip
        import decimal
        import uuid

        rnd = random.Random(7)
        started = time.monotonic()
        keys = self.keys()
        for first in range(0, len(keys), 20_000):
            batches = []
            chunk = keys[first : first + 20_000]
            for i in range(0, len(chunk), 10):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for n, (pk, ck) in enumerate(chunk[i : i + 10], start=first + i):
                    ttl = TTL_ROW if n % 5 == 0 else 0
                    values = (pk, ck, f"name-{n}", n % 100_000, decimal.Decimal(n) / 100, n / 7, n % 2 == 0,
                              uuid.UUID(int=rnd.getrandbits(128)), 1_600_000_000_000 + n,
                              frozenset({f"t{n % 8}", "all"}), rnd.randbytes(40))  # fmt: skip
                    batch.add(insert, (*values, BASE_WT + n, ttl))
                    if n % 10 == 3:  # one cell written later, with a TTL of its own
                        batch.add(later, (BASE_WT + 500_000_000 + n, TTL_CELL, -n, pk, ck))
                batches.append((batch, ()))
            for ok, result in execute_concurrent(self.origin, batches, concurrency=64, raise_on_first_error=False):
                if not ok:
                    raise RuntimeError(f"generating rows failed: {result}")
            print(f"  {first + len(chunk):,} rows", flush=True)
        self.origin.execute(f"INSERT INTO {self.ks}.bench_meta (k, v) VALUES ('spec', %s)", (json.dumps(self.spec),))
        print(f"origin: {len(keys):,} rows in {time.monotonic() - started:.0f} s", flush=True)

    def choose_sample(self) -> None:
        keys = self.keys()
        rnd = random.Random(11)
        chosen = rnd.sample(keys, min(self.args.sample, len(keys)))
        # some of each kind: a TTL row, a row with a later cell, a wide partition's row
        chosen += [k for n, k in enumerate(keys[:200]) if n % 5 == 0 or n % 10 == 3][:50]
        if self.args.wide:
            chosen += [(-1, c) for c in range(0, self.args.wide_rows, max(1, self.args.wide_rows // 20))]
        self.sample_keys = sorted(set(chosen))

    def truncate_target(self) -> None:
        self.target.execute(f"TRUNCATE {self.ks}.rows", timeout=300)

    def cells(self, session: Any) -> dict[tuple, dict[str, tuple]]:
        exprs = [e for c in VALUE_COLS for e in (c, f"WRITETIME({c})", f"TTL({c})")]
        stmt = session.prepare(f"SELECT {', '.join(exprs)} FROM {self.ks}.rows WHERE pk = ? AND ck = ?")
        out = {}
        for key, (ok, rows) in zip(self.sample_keys, execute_concurrent(
                session, [(stmt, k) for k in self.sample_keys], concurrency=64, raise_on_first_error=True),
                strict=True):  # fmt: skip
            row = rows.one() if ok else None
            if row is not None:
                out[key] = {c: tuple(row[3 * i : 3 * i + 3]) for i, c in enumerate(VALUE_COLS)}
        return out

    def check_sample(self, result: Result, copy_seconds: float) -> None:
        """Compare the sampled rows' cells on both sides: value, writetime, TTL."""
        origin, target = self.cells(self.origin), self.cells(self.target)
        missing = [k for k in origin if k not in target]
        wt_exact = wt_rowmax = wt_other = ttl_exact = ttl_rowmax = ttl_other = values_wrong = 0
        slack = copy_seconds + 60  # a TTL may have run on by the time of the copy and of this check
        for key, o_row in origin.items():
            t_row = target.get(key)
            if t_row is None:
                continue
            row_wt = max(wt for _, wt, _ in o_row.values() if wt is not None)
            ttls = [ttl for _, _, ttl in o_row.values() if ttl is not None]
            row_ttl = max(ttls) if ttls else None
            for col, (value, wt, ttl) in o_row.items():
                t_value, t_wt, t_ttl = t_row[col]
                values_wrong += t_value != value
                if t_wt == wt:
                    wt_exact += 1
                elif t_wt == row_wt:
                    wt_rowmax += 1
                else:
                    wt_other += 1
                if (ttl is None and t_ttl is None) or (ttl is not None and t_ttl is not None
                                                       and abs(ttl - t_ttl) <= slack):  # fmt: skip
                    ttl_exact += 1
                elif row_ttl is not None and t_ttl is not None and abs(row_ttl - t_ttl) <= slack:
                    ttl_rowmax += 1
                else:
                    ttl_other += 1
        result.writetimes = _verdict(wt_exact, wt_rowmax, wt_other)
        result.ttls = _verdict(ttl_exact, ttl_rowmax, ttl_other)
        result.extra["sample"] = {
            "rows": len(origin),
            "missing_on_target": len(missing),
            "values_wrong": values_wrong,
            "writetime": [wt_exact, wt_rowmax, wt_other],
            "ttl": [ttl_exact, ttl_rowmax, ttl_other],
        }
        if missing or values_wrong:
            problem = f"{len(missing)} sampled rows missing, {values_wrong} values wrong"
            result.note = f"{result.note}; {problem}" if result.note else problem

    # -- the tools ------------------------------------------------------------------------------

    def zdmkit(self, command: str, *extra: str) -> tuple[Run, dict[str, Any]]:
        report = self.workdir / f"zdmkit-{command}.json"
        a = self.args
        argv = [sys.executable, "-m", "zdmkit.migrate", command,
                "--origin-contact-points", a.origin, "--origin-username", a.username,
                "--target-contact-points", a.target, "--target-username", a.username,
                "--keyspaces", self.ks, "--tables", TABLE, "--splits", str(a.splits),
                "--processes", str(a.processes), "--concurrency", str(a.concurrency),
                "--progress", "log", "--log-interval", "60", "--report", str(report), *extra]  # fmt: skip
        run = run_measured(argv, env=self.env, log=self.workdir / f"zdmkit-{command}.log")
        return run, json.loads(report.read_text()) if report.exists() else {}

    def tool_zdmkit(self) -> None:
        settings = (f"{self.args.processes} processes, {self.args.splits} token ranges, "
                    f"{self.args.concurrency} requests in flight, batches by replica set")  # fmt: skip
        self.truncate_target()
        run, report = self.zdmkit("copy")
        copy = Result("zdmkit copy", "token-range scans, writes grouped by cell writetime/TTL", settings)
        self.finish(copy, run, report.get("totals", {}).get("rows", 0), report.get("ok"))
        self.check_sample(copy, copy.seconds)
        run, report = self.zdmkit("validate")
        check = Result("zdmkit validate", "merge scan of both sides, every difference read again", settings)
        self.finish(check, run, report.get("totals", {}).get("read", 0), report.get("ok"))
        check.note = f"differences {report.get('differences')}" if report else check.note

    def tool_sstables(self) -> None:
        """phase2.yml's engine sstables: the role's preflight and copy, as an operator runs them."""
        self.truncate_target()
        origin, target = self.args.origin.rpartition(":"), self.args.target.rpartition(":")
        private = Path(tempfile.mkdtemp(prefix="zdmkit-bench-sstables-"))
        variables = {
            "data_migration_keyspaces": [self.ks], "data_migration_tables": [f"{self.ks}.{TABLE}"],
            "data_migration_origin_contact_points": [origin[0]], "data_migration_origin_port": int(origin[2]),
            "data_migration_target_contact_points": [target[0]], "data_migration_target_port": int(target[2]),
            "data_migration_origin_username": self.args.username, "data_migration_origin_password": _password("origin"),
            "data_migration_target_username": self.args.username, "data_migration_target_password": _password("target"),
            "data_migration_work_dir": str(private / "work"), "data_migration_result_dir": "",
        }  # fmt: skip
        extra = private / "vars.json"
        fd = os.open(extra, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(variables, fh)
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
        cmd = ["ansible-playbook", "-i", self.args.inventory, str(ROOT / "bench" / "sstables_copy.yml"),
               "-e", f"@{extra}"]  # fmt: skip
        try:
            run = run_measured(cmd, env=env, cwd=ROOT, log=self.workdir / "sstables.log")
            report = private / "work" / "copy-report.json"
            hosts = json.loads(report.read_text())["hosts"] if report.exists() else {}
        finally:
            shutil.rmtree(private, ignore_errors=True)
        lines = "\n".join(line for out in hosts.values() for line in out)
        streamed = re.findall(r"streamed \S+ from \S+: (\S+) in (\d+) ms, loader peak memory (\d+) MiB", lines)
        result = Result("zdmkit sstables copy", "phase 2's engine sstables: a snapshot on each Origin node, "
                        "sstableloader streams its SSTables to Target",
                        "1 loader per Origin node at once, 256 MB heap, no throttle; wall time: the playbook "
                        "(its preflight, Ansible's start, the snapshot and its removal)")  # fmt: skip
        # the loader runs on the Origin node: its own peak, as the role's script reads it
        loader_peak = max((int(peak) for _, _, peak in streamed), default=0) * 2**20
        run = Run(run.seconds, max(run.peak, loader_peak), run.returncode, run.output)
        rows = self.args.rows if run.returncode == 0 and streamed else 0
        self.finish(result, run, rows, run.returncode == 0 and streamed)
        result.note = ", ".join(f"{size} streamed in {int(ms) / 1000:.1f} s" for size, ms, _ in streamed)
        result.note += "; peak: the controller's Ansible or the node's loader, whichever is larger"
        self.check_sample(result, result.seconds)

    def cdm_job(self, kind: str, parts: int) -> tuple[Run, dict[str, Any]]:
        config = JobConfig(origin=self.origin_ep, target=self.target_ep, keyspaces=(self.ks,), splits=parts)
        spec = self.table_spec()
        props = cdm_tool.table_properties(config, spec, kind)
        # CDM's guidance: batchSize 1 where batches would mostly span partitions (most partitions here hold one row),
        # the rate limit as high as the clusters take (it is CDM's only flow control)
        props["spark.cdm.perfops.batchSize"] = "1"
        for side in ("origin", "target"):
            props[f"spark.cdm.perfops.ratelimit.{side}"] = str(self.args.cdm_rate)
        private = Path(tempfile.mkdtemp(prefix="zdmkit-bench-cdm-"))
        props_file = private / "cdm.properties"
        cdm_tool.write_properties(props_file, props)
        cmd = [str(spark_submit()), "--master", "local[*]", "--driver-memory", self.args.driver_memory,
               "--properties-file", str(props_file), "--conf", f"spark.local.dir={private}",
               "--conf", f"spark.driver.extraJavaOptions={cdm_tool.DRIVER_OPTIONS}",
               "--class", cdm_tool.JOBS[kind], str(CACHE / "cassandra-data-migrator-6.0.1.jar")]  # fmt: skip
        try:
            run = run_measured(cmd, env=spark_env(), cwd=private, log=self.workdir / f"cdm-{kind}.log")
        finally:
            shutil.rmtree(private, ignore_errors=True)
        parsed = cdm_tool.parse_output(run.output.splitlines(), ["pk", "ck"])
        return run, parsed

    def table_spec(self) -> Any:
        (spec,) = discover_tables(self.o_cluster.metadata, (self.ks,), [TABLE], {})
        return spec

    def tool_cdm(self) -> None:
        parts = self.args.cdm_parts or max(os.cpu_count() or 2, self.table_mb() // 10)
        settings = (f"local[*], driver {self.args.driver_memory}, numParts {parts} (table size / 10 MB), "
                    f"batchSize 1, fetchSizeInRows 1000, ratelimit {self.args.cdm_rate}, "
                    "32768 requests per connection")  # fmt: skip
        self.truncate_target()
        run, parsed = self.cdm_job("copy", parts)
        copy = Result("CDM Migrate", "Spark job: token-range scans, row upserts", settings)
        c = parsed["counters"]
        self.finish(copy, run, c.get("write", 0), run.returncode == 0 and not c.get("error"))
        self.check_sample(copy, copy.seconds)
        run, parsed = self.cdm_job("validate", parts)
        check = Result("CDM DiffData", "Spark job: Origin scan, one Target read per row", settings)
        c = parsed["counters"]
        self.finish(check, run, c.get("read", 0), run.returncode == 0)
        check.note = f"missing {c.get('missing')}, mismatch {c.get('mismatch')}"

    def table_mb(self) -> int:
        rows = self.origin.execute("SELECT mean_partition_size, partitions_count FROM system.size_estimates "
                                   "WHERE keyspace_name = %s AND table_name = %s", (self.ks, TABLE))  # fmt: skip
        total = sum(r[0] * r[1] for r in rows)
        return int(total / 1_000_000) if total else 250

    def dsbulk(self) -> Path:
        tarball = sorted(CACHE.glob("dsbulk-*.tar.gz"))[-1]
        return find_launcher(str(tarball), self.workdir)

    def dsbulk_conf(self, ep: Endpoint, name: str) -> Path:
        from zdmkit.migrate.dsbulk import config_text

        path = self.workdir / f"{name}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(config_text(ep, log_dir=self.workdir / "dsbulk-logs", rate=None))
        return path

    def dsbulk_env(self) -> dict[str, str]:
        logback = self.workdir / "logback.xml"
        logback.write_text(LOGBACK_XML, encoding="utf-8")
        return {**self.env, "DSBULK_JAVA_OPTS": f"-Xmx{self.args.java_heap} -Dlogback.configurationFile={logback}"}

    def tool_dsbulk_plain(self) -> None:
        launcher = self.dsbulk()
        data = self.workdir / "dsbulk-plain"
        shutil.rmtree(data, ignore_errors=True)
        # DSBulk's tuning guide: unbounded rate, its default concurrency (AUTO), the console off
        common = ["-k", self.ks, "-t", TABLE, "-url", str(data), "--dsbulk.monitoring.console", "false",
                  "-maxConcurrentFiles", "AUTO", "-maxConcurrentQueries", "AUTO"]  # fmt: skip
        self.truncate_target()
        unload = run_measured([str(launcher), "unload", "-f", str(self.dsbulk_conf(self.origin_ep, "o")), *common],
                              env=self.dsbulk_env(), log=self.workdir / "dsbulk-plain-unload.log")  # fmt: skip
        load = run_measured([str(launcher), "load", "-f", str(self.dsbulk_conf(self.target_ep, "t")), *common,
                             "--batch.mode", "PARTITION_KEY"], env=self.dsbulk_env(),
                            log=self.workdir / "dsbulk-plain-load.log")  # fmt: skip
        rows = _dsbulk_records(load.output)
        result = Result("DSBulk unload + load", "values only (no writetime): the fastest DSBulk goes",
                        f"heap {self.args.java_heap}, AUTO files and queries, no rate limit, "
                        "batches by partition key")  # fmt: skip
        run = Run(unload.seconds + load.seconds, max(unload.peak, load.peak), unload.returncode or load.returncode,
                  unload.output + load.output)  # fmt: skip
        self.finish(result, run, rows, run.returncode == 0)
        result.note = f"unload {unload.seconds:.0f} s, load {load.seconds:.0f} s"
        self.check_sample(result, result.seconds)

    def tool_dsbulk_writetime(self) -> None:
        self.truncate_target()
        shutil.rmtree(self.workdir / "dsbulk-wt", ignore_errors=True)
        env = {**self.env, "DSBULK_JAVA_OPTS": f"-Xmx{self.args.java_heap}"}
        a = self.args
        argv = [sys.executable, "-m", "zdmkit.migrate", "copy", "--engine", "dsbulk",
                "--dsbulk", str(sorted(CACHE.glob("dsbulk-*.tar.gz"))[-1]),
                "--dsbulk-workdir", str(self.workdir / "dsbulk-wt"),
                "--origin-contact-points", a.origin, "--origin-username", a.username,
                "--target-contact-points", a.target, "--target-username", a.username,
                "--keyspaces", self.ks, "--tables", TABLE,
                "--report", str(self.workdir / "dsbulk-wt.json")]  # fmt: skip
        run = run_measured(argv, env=env, log=self.workdir / "dsbulk-wt.log")
        report = json.loads((self.workdir / "dsbulk-wt.json").read_text()) if run.returncode in (0, 1) else {}
        result = Result("DSBulk, writetimes kept", "unload with WRITETIME/TTL, one load per column",
                        f"heap {self.args.java_heap}, DSBulk defaults, {len(VALUE_COLS) + 1} loads")  # fmt: skip
        self.finish(result, run, report.get("totals", {}).get("rows", 0), report.get("ok"))
        self.check_sample(result, result.seconds)

    def tool_dsbulk_migrator(self) -> None:
        self.truncate_target()
        workdir = self.workdir / "migrator"
        shutil.rmtree(workdir, ignore_errors=True)
        (workdir / "logs").mkdir(parents=True)
        config = JobConfig(origin=self.origin_ep, target=self.target_ep, keyspaces=(self.ks,))
        jar = str(CACHE / "dsbulk-migrator-9b8a375-embedded-dsbulk.jar")
        heap = (f"-Xmx{self.args.java_heap}",)
        options = dsbulk_migrator.MigratorOptions(jar=jar, workdir=str(workdir), java_opts=heap)
        cmd = dsbulk_migrator.command(config, [self.table_spec()], options)
        passwords = {"origin": _password("origin"), "target": _password("target")}
        run = run_measured(cmd, cwd=workdir, log=self.workdir / "dsbulk-migrator.log",
                           feed=lambda proc, out: dsbulk_migrator._answer_prompts(proc, passwords, out))  # fmt: skip
        records = dsbulk_migrator.operation_records(workdir / "logs", "IMPORT", self.table_spec())
        result = Result("DSBulk Migrator", "migrate-live -e: unload with WRITETIME/TTL, batches of per-column INSERTs",
                        f"heap {self.args.java_heap}, the lab's command line and its defaults "
                        "(8C splits, AUTO)")  # fmt: skip
        ok = "1 successfully migrated tables, 0 failed" in run.output
        self.finish(result, run, records[0] if records else 0, ok)
        self.check_sample(result, result.seconds)

    def tool_cqlsh(self) -> None:
        cqlsh = shutil.which("cqlsh") or str(Path(sys.executable).with_name("cqlsh"))
        self.truncate_target()
        csv = self.workdir / "cqlsh.csv"
        procs = max(1, (os.cpu_count() or 2))
        # cqlsh's COPY options: a worker process per core, no ingest rate cap, its batch size
        # DOUBLEPRECISION 17: the default (12 digits) would round the doubles on the way
        opts_to = f"HEADER = true AND NUMPROCESSES = {procs} AND PAGESIZE = 1000 AND DOUBLEPRECISION = 17"
        opts_from = (
            f"HEADER = true AND NUMPROCESSES = {procs} AND INGESTRATE = 1000000 AND MAXBATCHSIZE = 20 "
            "AND MAXATTEMPTS = 20"
        )
        out = self._cqlsh(cqlsh, self.args.origin, "origin", f"COPY {self.ks}.rows TO '{csv}' WITH {opts_to}", "to")
        into = self._cqlsh(cqlsh, self.args.target, "target", f"COPY {self.ks}.rows FROM '{csv}' WITH {opts_from}",
                           "from")  # fmt: skip
        match = re.search(r"(\d+) rows imported", into.output)
        result = Result("cqlsh COPY TO + FROM", "CSV export and import: values only",
                        f"NUMPROCESSES {procs}, INGESTRATE 1000000, MAXBATCHSIZE 20, DOUBLEPRECISION 17")  # fmt: skip
        run = Run(out.seconds + into.seconds, max(out.peak, into.peak), out.returncode or into.returncode,
                  out.output + into.output)  # fmt: skip
        self.finish(result, run, int(match.group(1)) if match else 0, run.returncode == 0)
        result.note = f"to {out.seconds:.0f} s, from {into.seconds:.0f} s"
        self.check_sample(result, result.seconds)

    def _cqlsh(self, cqlsh: str, endpoint: str, role: str, statement: str, name: str) -> Run:
        host, _, port = endpoint.rpartition(":")
        creds = self.workdir / f"credentials-{role}"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"[PlainTextAuthProvider]\nusername = {self.args.username}\npassword = {_password(role)}\n")
        try:
            cmd = [cqlsh, host, port, "--credentials", str(creds), "-u", self.args.username,
                   "--request-timeout", "600", "-e", statement]  # fmt: skip
            return run_measured(cmd, log=self.workdir / f"cqlsh-{name}.log")
        finally:
            creds.unlink(missing_ok=True)

    def finish(self, result: Result, run: Run, rows: int, ok: Any) -> None:
        result.rows, result.seconds, result.peak_mb = rows, round(run.seconds, 1), round(run.peak / 2**20)
        if not ok:
            tail = [ln for ln in run.output.splitlines() if ln.strip()][-3:]
            result.failed = f"exit {run.returncode}: {' | '.join(tail)[:300]}"
        self.results.append(result)
        print(f"== {result.tool}: {rows:,} rows in {run.seconds:.1f} s = {result.rate:,.0f} rows/s, "
              f"peak {result.peak_mb} MB{' FAILED ' + result.failed if result.failed else ''}", flush=True)  # fmt: skip


def _dsbulk_records(output: str) -> int:
    """Records written by the last DSBulk operation in ``output``, from its operation log."""
    dirs = re.findall(r"Operation directory: (\S+)", output)
    text = Path(dirs[-1], "operation.log").read_text(errors="replace") if dirs else output
    found = re.findall(r"Records: total: ([\d,]+), successful: ([\d,]+)", text)
    return int(found[-1][1].replace(",", "")) if found else 0


def _verdict(exact: int, rowmax: int, other: int) -> str:
    if not (exact or rowmax or other):
        return "-"
    if rowmax == 0 and other == 0:
        return "yes, every cell"
    if other == 0:
        return f"row's newest for all cells ({rowmax} of {exact + rowmax} cells differ)"
    return f"no ({other} of {exact + rowmax + other} cells differ)"


def render(results: list[Result], m: dict[str, Any], args: argparse.Namespace, total_s: float) -> str:
    by = {r.tool: r for r in results}
    lines = [
        "## Phase-2 tools side by side",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"Java {m['java']}; Origin: {m['origin']}, Target: {m['target']}, {args.where}; the tools ran on the "
        f"same machine (load average {m['load_average'][0]} at the start, {m.get('load_end', ['?'])[0]} at the "
        "end). One run of "
        f"{total_s / 60:.0f} minutes, written by `bench/migration_bench.py` "
        f"(`python bench/migration_bench.py --origin ... --target ...`); the numbers are in "
        f"`benchmarks-migration.json`.",
        "",
        f"Data: {args.rows:,} rows of 11 columns (bigint, int, text, decimal, double, boolean, uuid, timestamp, "
        f"frozen set, blob); {args.wide} partitions of {args.wide_rows:,} rows, the others of one row; a fifth of "
        f"the rows with a 30-day TTL; a tenth with one cell written later than the others, with a 7-day TTL of its "
        f"own. Before each copy the Target table is emptied; afterwards {args.sample:,}+ sampled rows are compared "
        "cell by cell (value, writetime, TTL). Peak memory is the resident set of the tool's whole process tree.",
        "",
        "| tool | what it does | settings | rows | wall s | rows/s | peak MB | writetimes kept | TTLs kept | notes |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        note = r.note if not r.failed else f"FAILED: {r.failed}"
        lines.append(f"| {r.tool} | {r.what} | {r.settings} | {r.rows:,} | {r.seconds} | {r.rate:,.0f} | {r.peak_mb} "
                     f"| {r.writetimes} | {r.ttls} | {note} |")  # fmt: skip
    lines.append("")
    for ours, theirs, label in (("zdmkit copy", "CDM Migrate", "copy"),
                                ("zdmkit validate", "CDM DiffData", "validation")):  # fmt: skip
        if ours in by and theirs in by and by[theirs].rate and not by[ours].failed and not by[theirs].failed:
            ratio = by[ours].rate / by[theirs].rate
            lines.append(f"- Goal, {label}: {ours} at least twice as fast as {theirs}: {ratio:.1f}x, "
                         f"{'met' if ratio >= 2 else 'not met'}.")  # fmt: skip
    ours, theirs = "zdmkit sstables copy", "CDM Migrate"
    if ours in by and theirs in by and by[theirs].rate and not by[ours].failed and not by[theirs].failed:
        ratio = by[ours].rate / by[theirs].rate
        lines.append(f"- Goal, copy, with phase 2's engine sstables (a self-managed Target of Origin's release "
                     f"series): {ratio:.1f}x CDM Migrate, {'met' if ratio >= 2 else 'not met'}.")  # fmt: skip
    for name, label in (("zdmkit copy", "zdmkit's copy"), ("zdmkit sstables copy", "the engine sstables")):
        if name in by:
            lines.append(f"- Goal, writetimes kept by {label}: {by[name].writetimes}.")
    lines += [
        "",
        "CDM writes each row's cells with the row's newest writetime and largest TTL (its documented design), so "
        "in rows whose cells were written at different times the older cells get a newer writetime and cells "
        "without a TTL get one. DSBulk without writetimes and cqlsh COPY write every cell at the time of the "
        "load, without TTL.",
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    m = machine()
    bench = Bench(args)
    tools = {"zdmkit": bench.tool_zdmkit, "sstables": bench.tool_sstables, "cdm": bench.tool_cdm,
             "dsbulk-plain": bench.tool_dsbulk_plain,
             "dsbulk-writetime": bench.tool_dsbulk_writetime, "dsbulk-migrator": bench.tool_dsbulk_migrator,
             "cqlsh": bench.tool_cqlsh}  # fmt: skip
    chosen = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in tools]
    if unknown:
        raise SystemExit(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(tools)}")
    m["origin"], m["target"] = bench.describe(bench.origin), bench.describe(bench.target)
    try:
        bench.schema()
        bench.generate()
        bench.choose_sample()
        for tool in chosen:
            # one tool failing must not lose the others' numbers
            try:
                tools[tool]()
            except (subprocess.CalledProcessError, RuntimeError, OSError, ValueError) as exc:
                print(f"== {tool}: FAILED: {exc}", flush=True)
                bench.results.append(Result(tool, "-", "-", failed=str(exc)[:300]))
    finally:
        bench.close()
    total = time.monotonic() - started
    m["load_end"] = [round(x, 1) for x in os.getloadavg()]
    out = Path(args.out)
    text = render(bench.results, m, args, total)
    print(text)
    rows = [{**r.__dict__, "rows_per_second": round(r.rate)} for r in bench.results]
    data = {"machine": m, "args": relative_args(args), "seconds": round(total), "results": rows}
    out.with_name("benchmarks-migration.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    replace_section(out, "migration_bench", text, order=SECTIONS)
    print(f"wrote {out} and {out.with_name('benchmarks-migration.json')} ({total / 60:.0f} min)")
    return 1 if any(r.failed for r in bench.results) else 0


if __name__ == "__main__":
    sys.exit(main())
