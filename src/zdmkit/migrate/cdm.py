"""Cassandra Data Migrator (CDM) as a copier and validator: one ``spark-submit`` of its
``Migrate`` or ``DiffData`` job per table, with its counters turned into zdmkit's reports.

CDM is the tool the public ZDM lab names for phase 2. It runs on Spark (``local[*]`` here, or
a standalone cluster: ``--spark-master spark://host:7077``) with the pinned pyspark's
``spark-submit``. Settings follow CDM's own recommendations (``cdm-detailed.properties``):

* ``numParts`` is ``--splits`` (aim at about 10 MB of data per part);
* ``batchSize`` 1 for tables whose primary key is the partition key, 5 (CDM's default) else;
* ``ratelimit.origin``/``.target`` is ``--rate`` (rows/s), shared out among the workers of a
  cluster; without ``--rate`` CDM's default, 20000 per worker. The limit is also CDM's only flow
  control: its writes are asynchronous, and far above what the clusters take they pile up until
  the driver has no connection left ("No connection was available"), so raise it step by step;
* ``fetchSizeInRows`` is ``--fetch-size``; consistency levels are the endpoints' own;
* ``--cdm-property spark.cdm.x=y`` sets anything else (it wins over the above).

CDM 6.0.1 does not wait for its writes within a token range (its flush threshold compares a
counter that is only brought up to date when the range ends), so its writes in flight are
bounded only by the rate limit; past the driver's 1024 requests per connection, a range fails
with "No connection was available". The jobs here run with the driver's limit raised to the
protocol's 32768 stream ids (``DRIVER_OPTIONS``, for the driver and the executors).

What CDM does differently from the builtin engine, and what the reports say about it: CDM writes
every cell of a row with the row's largest writetime and largest TTL (collections left out of
both), so per-cell writetimes and TTLs are kept only where a row's cells share them. Its
autocorrect writes with Origin's writetime: where Target holds a newer cell or tombstone, the
correction does not take effect even though CDM counts it as corrected (``phase2.yml`` validates
again after autocorrect, so such a row still shows). Passwords go into a properties file of mode
0600 in a private directory, removed when the job ends; CDM masks them in its log.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zdmkit.artifacts.jars import spark_env
from zdmkit.migrate import sparkmaster
from zdmkit.migrate.connection import Endpoint
from zdmkit.migrate.report import Samples, ValidationCounts
from zdmkit.migrate.schema import PreflightError, TableSpec

log = logging.getLogger("zdmkit.migrate")

JOBS = {"copy": "com.datastax.cdm.job.Migrate", "validate": "com.datastax.cdm.job.DiffData"}
DRIVER_OPTIONS = "-Ddatastax-java-driver.advanced.connection.max-requests-per-connection=32768"
DEFAULT_RATE = 20_000  # CDM's own default (spark.cdm.perfops.ratelimit.*), per worker
_FINAL = re.compile(r"Final (?P<name>[A-Za-z ]+?)(?: Record Count)?: (?P<value>\d+)\s*$")
_TOTAL_PARTS = re.compile(r"PARAM Calculated -- Total Partitions: (\d+)")
_MISSING = re.compile(r"Missing target row found for key: \[(?P<key>.*?)\]\s*$")
_MISMATCH = re.compile(r"Mismatch row found for key: \[(?P<key>.*?)\] Mismatch: (?P<detail>.*)$")
_MISMATCH_COLUMN = re.compile(r"Target column:(?P<col>[^-;\s]+)")
_MAIN_ERROR = re.compile(r'Exception in thread "main" (?:[\w.$]+\.)?(?P<error>\w+(?:Exception|Error)): (?P<msg>.*)$')
# causes worth naming when a job dies, most specific first
REASONS = (
    r"(Authentication error on node \S+ server replied with '[^']*')",
    r"AuthenticationException: (Authentication error[^:]*)",
    r"(InvalidQueryException: .*)",
    r"(Failed to open native connection to Cassandra at \{[^}]*\})",
    r"(All masters are unresponsive.*)",
    r"(Initial job has not accepted any resources.*)",
)
COUNTERS = {
    "Read": "read",
    "Write": "write",
    "Valid": "valid",
    "Mismatch": "mismatch",
    "Corrected Mismatch": "corrected_mismatch",
    "Missing": "missing",
    "Corrected Missing": "corrected_missing",
    "Skipped": "skipped",
    "Error": "error",
    "Partitions Passed": "partitions_passed",
    "Partitions Failed": "partitions_failed",
}


@dataclass(frozen=True)
class CdmOptions:
    jar: str
    spark_submit: str
    workdir: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    fetch_size: int = 1000
    master_ui: str | None = None


def check_input(config: Any, options: CdmOptions | None) -> list[str]:
    """Problems that keep CDM from running the job (before anything is submitted)."""
    problems = []
    if options is None or not options.jar:
        return ["--engine cdm needs --cdm-jar (the artifact cache's cassandra-data-migrator-*.jar)"]
    if not Path(options.jar).is_file():
        problems.append(f"--cdm-jar {options.jar}: no such file (run `make artifacts`)")
    if not Path(options.spark_submit).is_file():
        problems.append(f"{options.spark_submit} is missing: CDM runs with the pinned pyspark's spark-submit")
    for ep in (config.origin, config.target):
        if ep.ssl_ca or ep.ssl_cert:
            problems.append(
                f"{ep.role}: the cdm engine takes no PEM files here (CDM reads Java keystores); "
                "use --engine builtin or spark with client TLS"
            )
    for key, _ in options.properties:
        if not key.startswith("spark.cdm."):
            problems.append(f"--cdm-property {key}: only spark.cdm.* properties (Spark settings go in --spark-conf)")
    return problems


def _hosts(ep: Endpoint) -> str:
    return ",".join(f"{h}:{p}" for h, p in ep.addresses())


def table_properties(
    config: Any, spec: TableSpec, kind: str, *, workers: int = 1, fetch_size: int = 1000
) -> dict[str, str]:
    """The spark.cdm.* properties of one table's job (CDM's recommendations, see the module doc)."""
    o, t = config.origin, config.target
    rate = config.rate / max(1, workers) if config.rate else DEFAULT_RATE
    props = {
        "spark.cdm.connect.origin.host": _hosts(o),
        "spark.cdm.connect.origin.port": str(o.port),
        "spark.cdm.connect.target.host": _hosts(t),
        "spark.cdm.connect.target.port": str(t.port),
        "spark.cdm.schema.origin.keyspaceTable": spec.key,
        "spark.cdm.schema.target.keyspaceTable": spec.target_key,
        "spark.cdm.perfops.numParts": str(config.splits),
        "spark.cdm.perfops.batchSize": "1" if not spec.clustering else "5",
        "spark.cdm.perfops.fetchSizeInRows": str(fetch_size),
        "spark.cdm.perfops.ratelimit.origin": str(max(1, int(rate))),
        "spark.cdm.perfops.ratelimit.target": str(max(1, int(rate))),
        "spark.cdm.perfops.consistency.read": o.consistency.upper(),
        "spark.cdm.perfops.consistency.write": t.consistency.upper(),
        "spark.cdm.trackRun": "false",
    }
    for role, ep in (("origin", o), ("target", t)):
        if ep.username:
            props[f"spark.cdm.connect.{role}.username"] = ep.username
            props[f"spark.cdm.connect.{role}.password"] = ep.password or ""
    if kind == "validate":
        props["spark.cdm.autocorrect.missing"] = str("missing" in config.validate.autocorrect).lower()
        props["spark.cdm.autocorrect.mismatch"] = str("mismatch" in config.validate.autocorrect).lower()
    return props


def _escape(value: str) -> str:
    """A value for a Java properties file, read back as the same string."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("=", "\\=").replace(":", "\\:")
    return "\\" + out if out.startswith((" ", "#", "!")) else out


def write_properties(path: Path, props: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for key, value in props.items():
            fh.write(f"{key}={_escape(value)}\n")


def parse_output(lines: list[str], key_names: list[str], sample_limit: int = 20) -> dict[str, Any]:
    """CDM's final counters, the number of token ranges it planned, the sample keys of its
    differences and the reason it died, if it did."""
    counters: dict[str, int] = {}
    samples = Samples(sample_limit)
    total_parts = None
    error = None
    for line in lines:
        match = _FINAL.search(line)
        if match and match.group("name") in COUNTERS:
            counters[COUNTERS[match.group("name")]] = int(match.group("value"))
            continue
        match = _TOTAL_PARTS.search(line)
        if match:
            total_parts = int(match.group(1))
            continue
        match = _MISSING.search(line)
        if match:
            samples.add("missing", {"key": _key(key_names, match.group("key"))})
            continue
        match = _MISMATCH.search(line)
        if match:
            columns = sorted(set(_MISMATCH_COLUMN.findall(match.group("detail"))))
            samples.add("mismatch", {"key": _key(key_names, match.group("key")), "columns": columns})
            continue
        match = _MAIN_ERROR.search(line)
        if match and error is None:
            error = f"{match.group('error')}: {match.group('msg').strip()}"
    return {"counters": counters, "total_parts": total_parts, "samples": samples.items, "error": error}


def _key(names: list[str], text: str) -> dict[str, str]:
    """CDM prints a key as its values joined by ' %% '."""
    return dict(zip(names, text.split(" %% "), strict=False))


def _reason(lines: list[str], returncode: int) -> str:
    for pattern in REASONS:
        for line in lines:
            match = re.search(pattern, line)
            if match:
                return match.group(1).strip()[:300]
    parsed = parse_output(lines, [])
    if parsed["error"]:
        return parsed["error"][:300]
    errors = [ln.strip() for ln in lines if " ERROR " in ln]
    return (errors[0] if errors else f"spark-submit exited {returncode}")[:300]


class CdmRunner:
    def __init__(self, config: Any, options: CdmOptions, workdir: Path):
        self.config = config
        self.options = options
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.workers = 1
        self.driver_host: str | None = None
        if not sparkmaster.is_local(config.spark_master):
            master = sparkmaster.parse(config.spark_master)
            self.driver_host = sparkmaster.driver_address(master)
            try:
                found = sparkmaster.status(options.master_ui or master.ui)
                self.workers = max(1, sum(1 for w in found.get("workers", []) if w.get("state") == "ALIVE"))
            except (OSError, ValueError):
                self.workers = 1

    def command(self, kind: str, props_file: Path, local_dir: Path) -> list[str]:
        cmd = [self.options.spark_submit, "--master", self.config.spark_master, "--properties-file", str(props_file),
               "--conf", f"spark.local.dir={local_dir}", "--conf", "spark.ui.enabled=false"]  # fmt: skip
        if self.driver_host:
            cmd += ["--conf", f"spark.driver.host={self.driver_host}"]
        given = dict(self.config.spark_conf)
        for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
            given[key] = f"{given[key]} {DRIVER_OPTIONS}" if key in given else DRIVER_OPTIONS
        for key, value in given.items():
            cmd += ["--conf", f"{key}={value}"]
        return [*cmd, "--class", JOBS[kind], self.options.jar]

    def run_table(self, kind: str, spec: TableSpec) -> dict[str, Any]:
        props = table_properties(self.config, spec, kind, workers=self.workers, fetch_size=self.options.fetch_size)
        props.update(dict(self.options.properties))
        name = f"{kind}-{spec.key}-{time.strftime('%Y%m%dT%H%M%S')}.log"
        log_path = self.logs / name
        private = Path(tempfile.mkdtemp(prefix="zdmkit-cdm-"))
        try:
            props_file = private / "cdm.properties"
            write_properties(props_file, props)
            cmd = self.command(kind, props_file, private)
            log.info("cdm %s of %s on %s: %s", JOBS[kind].rsplit(".", 1)[1], spec.key, self.config.spark_master,
                     log_path)  # fmt: skip
            started = time.monotonic()
            with log_path.open("w", encoding="utf-8") as out:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=spark_env(), cwd=private, check=False)  # fmt: skip
            seconds = time.monotonic() - started
        finally:
            shutil.rmtree(private, ignore_errors=True)
        if self.driver_host:
            self._append_executor_logs(log_path)
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        parsed = parse_output(lines, [c.name for c in spec.primary_key], self.config.validate.sample_limit)
        parsed.update(returncode=proc.returncode, seconds=round(seconds, 3), log=str(log_path))
        if proc.returncode != 0 or not parsed["counters"]:
            parsed["failure"] = f"CDM {JOBS[kind].rsplit('.', 1)[1]} of {spec.key}: {_reason(lines, proc.returncode)}"
        log.info("cdm %s of %s: %s in %.1f s", kind, spec.key, parsed["counters"] or parsed.get("failure"), seconds)
        return parsed


    def _append_executor_logs(self, log_path: Path) -> None:
        """On a cluster CDM's executors log the keys of the differences on their workers: append
        their logs, read through the workers' web UIs, to the job's log."""
        text = log_path.read_text(encoding="utf-8", errors="replace")
        match = re.search(r"Connected to Spark cluster with app ID (\S+)", text)
        if not match:
            return
        app = match.group(1)
        master = sparkmaster.parse(self.config.spark_master)
        try:
            workers = sparkmaster.status(self.options.master_ui or master.ui).get("workers", [])
        except (OSError, ValueError) as exc:
            log.warning("cdm: the executors' logs of %s could not be listed: %s", app, exc)
            return
        with log_path.open("a", encoding="utf-8") as out:
            for worker in workers:
                ui = worker.get("webuiaddress", "")
                try:
                    status = sparkmaster.status(ui)
                    for executor in status.get("executors", []) + status.get("finishedexecutors", []):
                        if executor.get("appid") != app:
                            continue
                        query = f"appId={app}&executorId={executor['id']}&logType=stderr&offset=0&byteLength={1 << 30}"
                        url = f"{ui}/log/?{query}"
                        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the worker's web UI
                            out.write(f"==== executor {executor['id']} of {app} on {worker.get('host')}\n")
                            out.write(response.read().decode("utf-8", "replace"))
                except (OSError, ValueError) as exc:
                    log.warning("cdm: the executors' logs of %s on %s could not be read: %s", app, ui, exc)


def run_cdm(config: Any, specs: list[TableSpec], kind: str, options: CdmOptions) -> dict[str, Any]:
    """Run CDM on every table; returns the per-table entries and failures of zdmkit's report."""
    problems = check_input(config, options)
    if problems:
        raise PreflightError(problems)
    workdir = Path(options.workdir) if options.workdir else Path(tempfile.mkdtemp(prefix="zdmkit-cdm-work-"))
    runner = CdmRunner(config, options, workdir)
    tables: dict[str, Any] = {}
    failed: list[dict[str, str]] = []
    for spec in specs:
        result = runner.run_table(kind, spec)
        c = result["counters"]
        total = result["total_parts"] or config.splits
        passed = c.get("partitions_passed", 0)
        if result.get("failure"):
            failed.append({"table": spec.key, "range": "cdm", "error": result["failure"]})
        elif c.get("partitions_failed", 0) or passed < total:
            failed.append({"table": spec.key, "range": "cdm",
                           "error": f"CDM finished {passed} of {total} token ranges ({result['log']})"})  # fmt: skip
        if kind == "copy":
            tables[spec.key] = {
                "rows": c.get("read", 0),
                "writes": c.get("write", 0),
                "ranges_total": total,
                "ranges_done": passed,
                "ranges_resumed": 0,
                "rows_previous_runs": 0,
                "errors": c.get("error", 0),
                "skipped": c.get("skipped", 0),
                "log": result["log"],
            }
        else:
            counts = ValidationCounts(
                read=c.get("read", 0),
                valid=c.get("valid", 0),
                mismatch=c.get("mismatch", 0),
                missing=c.get("missing", 0),
                skipped=c.get("skipped", 0),
                error=c.get("error", 0),
                corrected_missing=c.get("corrected_missing", 0),
                corrected_mismatch=c.get("corrected_mismatch", 0),
            )
            tables[spec.key] = {
                "counts": counts,
                "samples": result["samples"],
                "ranges_total": total,
                "ranges_done": passed,
                "ranges_resumed": 0,
                "log": result["log"],
            }
    return {"tables": tables, "failed": failed, "workdir": str(workdir)}
