"""DSBulk as an alternative copier: unload once, then load once per column.

A DSBulk load statement has a single ``USING TIMESTAMP``, so cells with their own writetimes
need one load per value column:

1. ``unload``: every primary key column, and for each value column its value, WRITETIME and
   TTL, into CSV files (DSBulk splits the ``token(...) > :start AND token(...) <= :end`` query
   over the ring itself).
2. ``load:<column>``: ``UPDATE ... USING TIMESTAMP :wt AND TTL :ttl SET c = :c WHERE <key>``.
   UPDATE writes no row marker, and a null cell is bound as *unset*, so nothing is written
   for it (DSBulk's ``schema.nullToUnset``, on by default).
3. ``load:row-marker``: ``INSERT <key> USING TIMESTAMP <run start>``: rows stay alive when all
   their cells are deleted later, as Origin's INSERT-created rows do; a delete dual-written after
   the run started still wins.

Each finished step is recorded in the state file, so an interrupted copy resumes with the next
step. Caveats compared with the built-in engine: TTLs are the values remaining at unload time,
so cells expire later by the time between unload and load; non-frozen collections and UDTs
(per-element writetimes) are refused; partitions holding only static cells make the
row-marker step report errors (their clustering key is null), which DSBulk counts and skips.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from cassandra.metadata import protect_name

from zdmkit.migrate.connection import Endpoint
from zdmkit.migrate.schema import PreflightError, TableSpec

log = logging.getLogger("zdmkit.migrate")


LOGBACK_XML = """<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>INFO</level></filter>
    <encoder><pattern>%msg%n</pattern></encoder>
  </appender>
  <root level="ERROR"><appender-ref ref="CONSOLE"/></root>
  <logger name="com.datastax.oss.dsbulk" level="INFO"/>
  <logger name="com.datastax.oss.driver" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
</configuration>
"""


def _alias(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def unload_query(spec: TableSpec) -> str:
    token = f"token({', '.join(c.quoted for c in spec.partition_key)})"
    exprs = [c.quoted for c in spec.primary_key]
    for col in spec.value_columns:
        exprs += [
            col.quoted,
            f"WRITETIME({col.quoted}) AS {protect_name(_alias('wt', col.name))}",
            f"TTL({col.quoted}) AS {protect_name(_alias('ttl', col.name))}",
        ]
    query = f"SELECT {', '.join(exprs)} FROM {spec.fqn}"  # noqa: S608 - identifiers from schema metadata, quoted; values bound
    return f"{query} WHERE {token} > :start AND {token} <= :end"


def _bind(name: str) -> str:
    return ":" + protect_name(name)


def load_steps(spec: TableSpec, fallback_timestamp: int) -> list[tuple[str, str]]:
    """(step name, load query) for a table, in order."""
    steps = []
    for col in spec.value_columns:
        key_cols = spec.partition_key if col.role == "static" else spec.primary_key
        where = " AND ".join(f"{c.quoted} = {_bind(c.name)}" for c in key_cols)
        steps.append(
            (
                f"load:{col.name}",
                f"UPDATE {spec.target_fqn} USING TIMESTAMP {_bind(_alias('wt', col.name))} "  # noqa: S608 - identifiers from schema metadata, quoted; values bound
                f"AND TTL {_bind(_alias('ttl', col.name))} SET {col.quoted} = {_bind(col.name)} WHERE {where}",
            )
        )
    names = ", ".join(c.quoted for c in spec.primary_key)
    binds = ", ".join(_bind(c.name) for c in spec.primary_key)
    steps.append(
        (
            "load:row-marker",
            f"INSERT INTO {spec.target_fqn} ({names}) VALUES ({binds}) USING TIMESTAMP {fallback_timestamp}",  # noqa: S608 - identifiers from schema metadata, quoted; values bound
        )
    )
    return steps


def alias_clashes(spec: TableSpec) -> list[str]:
    names = {c.name for c in spec.columns}
    clashes = []
    for col in spec.value_columns:
        for alias in (_alias("wt", col.name), _alias("ttl", col.name)):
            if alias in names:
                clashes.append(f"table {spec.key}: column {alias} clashes with the DSBulk writetime/TTL field names")
    return clashes


def _hocon(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_text(ep: Endpoint, *, log_dir: Path, rate: float | None) -> str:
    """DSBulk application.conf for one endpoint (contains the password: write it with mode 0600)."""
    points = ", ".join(_hocon(f"{h}:{p}") for h, p in ep.addresses())
    lines = [
        "datastax-java-driver {",
        f"  basic.contact-points = [{points}]",
        f"  basic.request.timeout = {int(ep.request_timeout)} seconds",
        f"  basic.request.consistency = {ep.consistency.upper()}",
    ]
    if ep.local_dc:
        lines.append(f"  basic.load-balancing-policy.local-datacenter = {_hocon(ep.local_dc)}")
    if ep.username:
        lines += [
            "  advanced.auth-provider {",
            "    class = PlainTextAuthProvider",
            f"    username = {_hocon(ep.username)}",
            f"    password = {_hocon(ep.password or '')}",
            "  }",
        ]
    lines += ["}", "dsbulk {", f"  log.directory = {_hocon(str(log_dir))}"]
    if rate:
        lines.append(f"  executor.maxPerSecond = {int(rate)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack with the "data" filter (no absolute names, no way out of dest, no devices); the
    Pythons without it (before 3.11.4, e.g. Debian 12's 3.11.2) get the same checks here."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():
        name = os.path.normpath(member.name)
        if name.startswith(("/", "..")) or not (member.isfile() or member.isdir() or member.issym()
                                                  or member.islnk()):
            raise PreflightError(f"{tar.name}: member {member.name!r} is refused (outside the archive or special)")
        if member.issym() or member.islnk():
            base = os.path.dirname(name) if member.issym() else ""
            target = os.path.normpath(os.path.join(base, member.linkname))
            if os.path.isabs(member.linkname) or target.startswith(".."):
                raise PreflightError(f"{tar.name}: link {member.name!r} points outside the archive")
    tar.extractall(dest)  # noqa: S202 - every member was checked above


def find_launcher(path: str, workdir: Path) -> Path:
    """The ``dsbulk`` launcher: the given executable, or the one inside a distribution tarball."""
    given = Path(path)
    if given.is_file() and tarfile.is_tarfile(given):
        dest = workdir / "dist"
        if not dest.exists():
            with tarfile.open(given) as tar:
                _extract(tar, dest)
        found = sorted(dest.glob("*/bin/dsbulk"))
        if not found:
            raise PreflightError(f"{path} does not contain */bin/dsbulk")
        return found[0]
    if given.is_dir():
        given = given / "bin" / "dsbulk"
    if not (given.is_file() and os.access(given, os.X_OK)):
        raise PreflightError(f"DSBulk launcher {path} not found or not executable (give --dsbulk)")
    return given


def count_csv_rows(directory: Path) -> int:
    rows = 0
    for path in directory.glob("*.csv"):
        with path.open("rb") as fh:
            rows += max(0, sum(1 for _ in fh) - 1)
    return rows


class DsbulkRunner:
    def __init__(self, launcher: Path, workdir: Path, origin: Endpoint, target: Endpoint, rate: float | None):
        if origin.ssl_ca or target.ssl_ca or origin.ssl_cert or target.ssl_cert:
            raise PreflightError(
                "the dsbulk engine is not wired for TLS here (it needs a Java truststore); use --engine builtin"
            )
        self.launcher = launcher
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.confs = {}
        for ep in (origin, target):
            conf = workdir / f"{ep.role.lower()}.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(config_text(ep, log_dir=self.logs, rate=rate))
            self.confs[ep.role] = conf

    def _java_opts(self) -> str:
        """JVM options for the launcher: DSBulk's own logging layout, whatever the distribution ships.

        DSBulk adjusts its console appender at start-up and fails when the logback configuration
        on its class path has no appender named CONSOLE.
        """
        logback = self.workdir / "logback.xml"
        logback.write_text(LOGBACK_XML, encoding="utf-8")
        base = os.environ.get("DSBULK_JAVA_OPTS", "-Xmx1g")
        return f"{base} -Dlogback.configurationFile={logback}"

    def run(self, role: str, operation: str, query: str, url: Path, extra: list[str] | None = None) -> None:
        cmd = [
            str(self.launcher),
            operation,
            "-f",
            str(self.confs[role]),
            "-query",
            query,
            "-url",
            str(url),
            "-header",
            "true",
            *(extra or []),
        ]
        log.info("dsbulk %s on %s: %s", operation, role, query)
        started = time.monotonic()
        env = {**os.environ, "DSBULK_JAVA_OPTS": self._java_opts()}
        proc = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"dsbulk {operation} exited with {proc.returncode} (logs in {self.logs})")
        log.info("dsbulk %s finished in %.1f s", operation, time.monotonic() - started)


def run_dsbulk_copy(
    config: Any, specs: list[TableSpec], state: Any, *, dsbulk: str, workdir: str | None
) -> dict[str, Any]:
    """Copy every table with DSBulk; returns per-table stats and failures (report material)."""
    problems = [p for spec in specs for p in alias_clashes(spec)]
    for ep in (config.origin, config.target):
        if ep.ssl_ca or ep.ssl_cert:
            problems.append(
                f"{ep.role}: the DSBulk engine takes no TLS options here (its driver reads Java "
                "keystores, not PEM files); use --engine builtin or spark with client TLS"
            )
    if problems:
        raise PreflightError(problems)
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="zdmkit-dsbulk-"))
    base.mkdir(parents=True, exist_ok=True)
    launcher = find_launcher(dsbulk, base)
    runner = DsbulkRunner(launcher, base, config.origin, config.target, config.rate)
    tables: dict[str, Any] = {}
    failed: list[dict[str, str]] = []
    try:
        for spec in specs:
            done = state.completed(spec.key)
            data = base / "data" / spec.key
            steps = load_steps(spec, config.copy.fallback_timestamp)
            # a DSBulk step stands in for a token range in the report and the state file
            entry = {
                "rows": 0,
                "writes": 0,
                "ranges_total": len(steps) + 1,
                "ranges_done": 0,
                "ranges_resumed": 0,
                "rows_previous_runs": 0,
            }
            tables[spec.key] = entry
            try:
                if "unload" not in done or not data.exists():
                    if data.exists():
                        shutil.rmtree(data)
                    runner.run("Origin", "unload", unload_query(spec), data)
                    state.mark_done(spec.key, "unload", {"rows": count_csv_rows(data)})
                else:
                    entry["ranges_resumed"] += 1
                entry["ranges_done"] += 1
                entry["rows"] = state.completed(spec.key)["unload"].get("rows", 0)
                for name, query in steps:
                    if name in done:
                        entry["ranges_resumed"] += 1
                    else:
                        runner.run("Target", "load", query, data)
                        state.mark_done(spec.key, name, {})
                    entry["ranges_done"] += 1
                    entry["writes"] += entry["rows"]
            except (RuntimeError, OSError) as exc:
                failed.append({"table": spec.key, "range": "dsbulk", "error": str(exc)})
                log.error("%s: %s", spec.key, exc)
    finally:
        for conf in runner.confs.values():
            conf.unlink(missing_ok=True)
    return {"tables": tables, "failed": failed, "workdir": str(base)}
