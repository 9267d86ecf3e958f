"""Phase-2 copy benchmark: built-in engine vs DSBulk vs cqlsh COPY on the same generated table.

    python bench/migration_bench.py --origin 10.0.0.11:9042 --target 10.0.0.21:9042 --rows 1000000

Generates ``--rows`` rows on Origin (skipped when the table already holds them), then, for each
engine, empties the Target table, copies, and times it; the built-in validation runs after the
built-in copy. Prints rows/s per step. Credentials: --username (default cassandra) and
ZDMKIT_ORIGIN_PASSWORD / ZDMKIT_TARGET_PASSWORD (default cassandra).

What is compared:
  builtin   python -m zdmkit.migrate copy: every cell with its writetime and TTL
  dsbulk    python -m zdmkit.migrate copy --engine dsbulk: DSBulk unload, then one load per
            column (plus the row markers), writetimes and TTLs preserved
  cqlsh     cqlsh COPY TO a CSV file, then COPY FROM: values only, writetimes are NOT preserved
            (every cell gets the time of the load), shown as the familiar baseline
When --origin and --target name the same node, Target is the keyspace ``<keyspace>_target``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType

from zdmkit.migrate.connection import Endpoint, connect

TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS {ks}.rows (id bigint PRIMARY KEY, name text, score int, "
    "payload text, updated timestamp)"
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--origin", required=True, help="host:port of Origin")
    p.add_argument("--target", required=True, help="host:port of Target")
    p.add_argument("--username", default="cassandra")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--keyspace", default="zdmkit_bench")
    p.add_argument("--replication-factor", type=int, default=1)
    p.add_argument("--engines", default="builtin,dsbulk,cqlsh", help="comma-separated subset")
    p.add_argument("--splits", type=int, default=64)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--spark-master", default="local[*]", help="for the spark engine when listed in --engines")
    p.add_argument("--dsbulk", default=os.environ.get("ZDMKIT_DSBULK") or _cached_dsbulk())
    p.add_argument("--cqlsh", default=shutil.which("cqlsh") or str(Path(sys.executable).with_name("cqlsh")))
    p.add_argument("--workdir", default=None, help="scratch space for CSV files (default: a temporary dir)")
    return p.parse_args()


def _cached_dsbulk() -> str:
    cache = os.environ.get("ZDMKIT_ARTIFACTS", os.path.expanduser("~/.cache/zdmkit/artifacts"))
    found = sorted(glob.glob(os.path.join(cache, "dsbulk-*.tar.gz")))
    return found[-1] if found else ""


def _password(role: str) -> str:
    return os.environ.get(f"ZDMKIT_{role.upper()}_PASSWORD", "cassandra")


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.same_node = args.origin == args.target
        self.o_ks = args.keyspace
        self.t_ks = f"{args.keyspace}_target" if self.same_node else args.keyspace
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="zdmkit-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.o_cluster, self.origin = connect(
            Endpoint("Origin", (args.origin,), username=args.username, password=_password("origin"))
        )
        self.t_cluster, self.target = connect(
            Endpoint("Target", (args.target,), username=args.username, password=_password("target"))
        )
        self.results: list[dict[str, Any]] = []

    def close(self) -> None:
        self.o_cluster.shutdown()
        self.t_cluster.shutdown()

    def schema(self) -> None:
        rf = self.args.replication_factor
        for session, ks in ((self.origin, self.o_ks), (self.target, self.t_ks)):
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
                f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"
            )
            session.execute(TABLE_DDL.format(ks=ks), timeout=60)

    def generate(self) -> None:
        rows = self.args.rows
        # ids are 0..rows-1; the last one is written last (a count(*) of a million rows would time out)
        last = self.origin.execute(f"SELECT id FROM {self.o_ks}.rows WHERE id = %s", (rows - 1,)).one()  # noqa: S608 - bench keyspace
        if last is not None:
            print(f"origin: {rows:,} rows already there")
            return
        insert = self.origin.prepare(
            f"INSERT INTO {self.o_ks}.rows (id, name, score, payload, updated) VALUES (?, ?, ?, ?, ?) "  # noqa: S608 - bench keyspace
            "USING TIMESTAMP ?"
        )
        started = time.monotonic()
        now = int(time.time() * 1_000_000)
        chunk = 20_000
        for first in range(0, rows, chunk):
            batches = []
            for start in range(first, min(rows, first + chunk), 10):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for i in range(start, min(rows, start + 10)):
                    batch.add(insert, (i, f"name-{i}", i % 1000, "x" * 100, (now // 1000) - i, now - 1_000_000 + i))
                batches.append((batch, ()))
            for ok, result in execute_concurrent(self.origin, batches, concurrency=64, raise_on_first_error=False):
                if not ok:
                    raise RuntimeError(f"generating rows failed: {result}")
        self.record("generate (driver, unlogged batches of 10)", rows, time.monotonic() - started, "-")

    def truncate_target(self) -> None:
        self.target.execute(f"TRUNCATE {self.t_ks}.rows", timeout=120)

    def migrate(self, command: str, *extra: str) -> tuple[float, dict[str, Any]]:
        report = self.workdir / f"{command}-{time.monotonic_ns()}.json"
        argv = [
            sys.executable, "-m", "zdmkit.migrate", command,
            "--origin-contact-points", self.args.origin, "--origin-username", self.args.username,
            "--target-contact-points", self.args.target, "--target-username", self.args.username,
            "--keyspaces", self.o_ks, "--splits", str(self.args.splits), "--parallel", str(self.args.parallel),
            "--concurrency", str(self.args.concurrency), "--progress", "log", "--log-interval", "30",
            "--report", str(report), *extra,
        ]  # fmt: skip
        if self.same_node:
            argv += ["--keyspace-map", f"{self.o_ks}={self.t_ks}"]
        env = {
            **os.environ,
            "ZDMKIT_ORIGIN_PASSWORD": _password("origin"),
            "ZDMKIT_TARGET_PASSWORD": _password("target"),
        }
        started = time.monotonic()
        proc = subprocess.run(argv, env=env, check=False, stdout=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - started
        print(proc.stdout)
        data = json.loads(report.read_text(encoding="utf-8")) if report.exists() else {}
        if proc.returncode != 0:
            raise RuntimeError(f"zdmkit.migrate {command} exited with {proc.returncode}")
        return elapsed, data

    def record(self, step: str, rows: int, seconds: float, writetimes: str) -> None:
        rate = rows / seconds if seconds > 0 else 0.0
        self.results.append({"step": step, "rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rate)})
        print(f"== {step}: {rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s (writetimes preserved: {writetimes})")

    def run_builtin(self, engine: str = "builtin") -> None:
        self.truncate_target()
        extra = ("--engine", engine, "--spark-master", self.args.spark_master) if engine == "spark" else ()
        seconds, report = self.migrate("copy", *extra)
        self.record(f"copy {engine}", report["totals"]["rows"], seconds, "yes")
        seconds, report = self.migrate("validate", *extra)
        self.record(f"validate {engine}", report["totals"]["read"], seconds, "-")
        if report["totals"]["valid"] != report["totals"]["read"]:
            raise RuntimeError(f"validation after the {engine} copy found differences: {report['totals']}")

    def run_dsbulk(self) -> None:
        if not self.args.dsbulk:
            print("== dsbulk: skipped (no --dsbulk and none in the artifact cache)")
            return
        self.truncate_target()
        seconds, report = self.migrate(
            "copy", "--engine", "dsbulk", "--dsbulk", self.args.dsbulk, "--dsbulk-workdir", str(self.workdir / "dsbulk")
        )
        self.record("copy dsbulk (unload + one load per column)", report["totals"]["rows"], seconds, "yes")

    def run_cqlsh(self) -> None:
        cqlsh = self.args.cqlsh
        if not (cqlsh and os.path.exists(cqlsh)):
            print("== cqlsh: skipped (no cqlsh found)")
            return
        self.truncate_target()
        csv = self.workdir / "cqlsh-rows.csv"
        started = time.monotonic()
        self._cqlsh(self.args.origin, "origin", f"COPY {self.o_ks}.rows TO '{csv}' WITH HEADER = true")
        output = self._cqlsh(
            self.args.target, "target", f"COPY {self.t_ks}.rows FROM '{csv}' WITH HEADER = true AND MAXATTEMPTS = 20"
        )
        seconds = time.monotonic() - started
        match = re.search(r"(\d+) rows imported", output)
        self.record("copy cqlsh COPY TO + COPY FROM", int(match.group(1)) if match else 0, seconds, "NO")

    def _cqlsh(self, endpoint: str, role: str, statement: str) -> str:
        host, _, port = endpoint.rpartition(":")
        creds = self.workdir / f"credentials-{role}"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"[PlainTextAuthProvider]\nusername = {self.args.username}\npassword = {_password(role)}\n")
        try:
            proc = subprocess.run(
                [self.args.cqlsh, host, port, "--credentials", str(creds), "-u", self.args.username,
                 "--request-timeout", "600", "-e", statement],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        finally:
            creds.unlink(missing_ok=True)
        return proc.stdout

    def summary(self) -> None:
        print()
        print(f"{'step':<48} {'rows':>10} {'seconds':>9} {'rows/s':>10}")
        for r in self.results:
            print(f"{r['step']:<48} {r['rows']:>10,} {r['seconds']:>9} {r['rows_per_second']:>10,}")
        print(json.dumps({"results": self.results}))


def main() -> int:
    args = parse_args()
    bench = Bench(args)
    try:
        bench.schema()
        bench.generate()
        runners = {"builtin": lambda: bench.run_builtin("builtin"), "spark": lambda: bench.run_builtin("spark"),
                   "dsbulk": bench.run_dsbulk, "cqlsh": bench.run_cqlsh}  # fmt: skip
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        unknown = [e for e in engines if e not in runners]
        if unknown:
            raise SystemExit(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(runners)}")
        failed = []
        for engine in engines:
            # one engine failing (e.g. timeouts on a loaded machine) must not lose the others' numbers
            try:
                runners[engine]()
            except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                print(f"== {engine}: FAILED: {exc}")
                failed.append(engine)
        bench.summary()
        if failed:
            print(f"failed: {', '.join(failed)}")
    finally:
        bench.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
