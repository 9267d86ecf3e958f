"""DSBulk Migrator as a copier, run the way the public ZDM lab runs it:
``java -jar dsbulk-migrator-<version>-embedded-dsbulk.jar migrate-live -e ...``.

For each table it unloads every column with its WRITETIME and TTL into CSV files, then loads
them with one UNLOGGED batch of per-column INSERTs per row, each ``USING TIMESTAMP`` and ``TTL``
of its cell: per-cell writetimes and TTLs survive (TTLs as they were at unload time). Non-frozen
collections and UDTs are refused (their writetime is a list per element, which an INSERT cannot
take). Its finished exports and imports are recorded in its data directory, so a re-run with the
same ``--dsbulk-migrator-workdir`` carries on with the tables not done yet.

The migrator exits 0 even when it migrated nothing (an authentication failure, a table that
failed), so the outcome is read from its log: the count of migrated tables, each DSBulk
operation's final record counts, and the first error. Passwords are typed at its prompts (on
its standard input), never put on its command line.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zdmkit.artifacts.jars import java
from zdmkit.migrate.schema import PreflightError, TableSpec

log = logging.getLogger("zdmkit.migrate")

PROMPTS = {
    "origin": b"authenticate against the origin cluster: ",
    "target": b"authenticate against the target cluster: ",
}
_FINISHED = re.compile(r"Migration finished with (\d+) successfully migrated tables, (\d+) failed tables")
_TABLE_FAILED = re.compile(r"Table (\S+) could not be (exported|imported): operation (\S+) exited with (\S+)")
_RECORDS = re.compile(r"Records: total: ([\d,]+), successful: ([\d,]+), failed: ([\d,]+)")
_AUTH = re.compile(r"\[(origin|target)\] Authentication error \((?:\w+: )?(.*?)\)?$")


@dataclass(frozen=True)
class MigratorOptions:
    jar: str
    workdir: str
    max_concurrent_ops: int = 1
    java_opts: tuple[str, ...] = ("-Xmx1g",)
    extra_export: tuple[str, ...] = ()  # DSBulk options, e.g. --executor.maxPerSecond=1000
    extra_import: tuple[str, ...] = ()


def check_input(config: Any, options: MigratorOptions | None) -> list[str]:
    if options is None or not options.jar:
        return ["--engine dsbulk-migrator needs --dsbulk-migrator-jar (the artifact cache's dsbulk-migrator-*.jar)"]
    problems = []
    if not Path(options.jar).is_file():
        problems.append(f"--dsbulk-migrator-jar {options.jar}: no such file (run `make artifacts`)")
    for ep in (config.origin, config.target):
        if ep.ssl_ca or ep.ssl_cert:
            problems.append(f"{ep.role}: the dsbulk-migrator engine takes no TLS options here; use --engine builtin")
        if ep.username and not ep.password:
            problems.append(f"{ep.role}: a username without a password")
    if config.keyspace_map:
        problems.append("--keyspace-map: DSBulk Migrator writes into keyspaces of the same names; use --engine builtin")
    return problems


def _regex(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def command(config: Any, specs: list[TableSpec], options: MigratorOptions) -> list[str]:
    workdir = Path(options.workdir)
    cmd = [java(), *options.java_opts, "-jar", options.jar, "migrate-live", "--dsbulk-use-embedded",
           f"--keyspaces={_regex(sorted({s.keyspace for s in specs}))}",
           f"--tables={_regex(sorted({s.name for s in specs}))}",
           f"--data-dir={workdir / 'data'}", f"--dsbulk-log-dir={workdir / 'logs'}",
           f"--max-concurrent-ops={options.max_concurrent_ops}",
           "--table-types=regular"]  # fmt: skip
    for side, ep in (("export", config.origin), ("import", config.target)):
        cmd += [f"--{side}-host={h}:{p}" for h, p in ep.addresses()]
        cmd.append(f"--{side}-consistency={ep.consistency.upper()}")
        if ep.username:
            cmd += [f"--{side}-username={ep.username}", f"--{side}-password"]  # typed at the prompt
    if config.rate:
        cmd += [f"--export-dsbulk-option=--executor.maxPerSecond={int(config.rate)}",
                f"--import-dsbulk-option=--executor.maxPerSecond={int(config.rate)}"]  # fmt: skip
    cmd += [f"--export-dsbulk-option={o}" for o in options.extra_export]
    cmd += [f"--import-dsbulk-option={o}" for o in options.extra_import]
    return cmd


def _answer_prompts(proc: subprocess.Popen, passwords: dict[str, str], out: Any) -> None:
    """Copy the migrator's output to ``out``; type each password when its prompt shows.

    The migrator reads each password with a fresh reader of its standard input, so the second
    password must not be written before the second prompt (the first reader would swallow it)."""
    seen = b""
    pending = dict(passwords)
    assert proc.stdout is not None and proc.stdin is not None
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        out.write(chunk.decode("utf-8", "replace"))
        out.flush()
        seen = (seen + chunk)[-4096:]
        for side in list(pending):
            if PROMPTS[side] in seen:
                proc.stdin.write(pending.pop(side).encode() + b"\n")
                proc.stdin.flush()
                seen = seen.replace(PROMPTS[side], b"")
        if not pending and not proc.stdin.closed:
            proc.stdin.close()
    if not proc.stdin.closed:
        proc.stdin.close()


def operation_records(log_dir: Path, prefix: str, spec: TableSpec) -> tuple[int, int] | None:
    """(total, failed) records of the table's newest EXPORT or IMPORT operation, from its log."""
    ops = sorted(log_dir.glob(f"{prefix}_{spec.keyspace}_{spec.name}_*/operation.log"))
    if not ops:
        return None
    found = _RECORDS.findall(ops[-1].read_text(encoding="utf-8", errors="replace"))
    if not found:
        return None
    total, _ok, failed = found[-1]
    return int(total.replace(",", "")), int(failed.replace(",", ""))


def reason(lines: list[str]) -> str | None:
    """The first cause worth naming in the migrator's output, as one line."""
    for line in lines:
        match = _AUTH.search(line)
        if match:
            side = "Origin" if match.group(1) == "origin" else "Target"
            return f"authentication failed on {side}: {match.group(2).strip()}"
    for line in lines:
        if re.search(r"(Could not contact|ERROR)", line) and "Migration finished" not in line:
            return re.sub(r"^\S+ (ERROR|WARN)\s+", "", line.strip())[:300]
    return None


def run_migrator(config: Any, specs: list[TableSpec], options: MigratorOptions) -> dict[str, Any]:
    problems = check_input(config, options)
    if problems:
        raise PreflightError(problems)
    workdir = Path(options.workdir)
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"migrate-live-{time.strftime('%Y%m%dT%H%M%S')}.log"
    passwords = {side: ep.password or "" for side, ep in (("origin", config.origin), ("target", config.target))
                 if ep.username}  # fmt: skip
    cmd = command(config, specs, options)
    before = _already_done(workdir, specs)
    log.info("dsbulk-migrator migrate-live of %d table(s): %s", len(specs), log_path)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=workdir)  # fmt: skip
        reader = threading.Thread(target=_answer_prompts, args=(proc, passwords, out), daemon=True)
        reader.start()
        code = proc.wait()
        reader.join(timeout=30)
    seconds = time.monotonic() - started
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    finished = next((m for m in map(_FINISHED.search, lines) if m), None)
    failed_tables = {m.group(1): m for m in map(_TABLE_FAILED.search, lines) if m}
    cause = reason(lines)
    tables: dict[str, Any] = {}
    failed: list[dict[str, str]] = []
    done = _already_done(workdir, specs)
    for spec in specs:
        exported = operation_records(workdir / "logs", "EXPORT", spec)
        imported = operation_records(workdir / "logs", "IMPORT", spec)
        ok = spec.key in done["imported"] and spec.key not in failed_tables
        entry = {
            "rows": imported[0] if imported else 0,
            "writes": imported[0] if imported else 0,
            "ranges_total": 2,  # the export and the import stand in for token ranges
            "ranges_done": int(spec.key in done["exported"]) + int(spec.key in done["imported"]),
            "ranges_resumed": int(spec.key in before["exported"]) + int(spec.key in before["imported"]),
            "rows_previous_runs": 0,
            "exported": exported[0] if exported else 0,
            "failed_records": (exported[1] if exported else 0) + (imported[1] if imported else 0),
        }
        tables[spec.key] = entry
        if not ok:
            detail = failed_tables.get(spec.key)
            why = f"{detail.group(2)} failed with {detail.group(4)}" if detail else (cause or "not migrated")
            failed.append({"table": spec.key, "range": "dsbulk-migrator", "error": f"DSBulk Migrator: {why}"})
        elif entry["failed_records"]:
            failed.append({"table": spec.key, "range": "dsbulk-migrator",
                           "error": f"DSBulk Migrator: {entry['failed_records']} record(s) failed (logs in "
                                    f"{workdir / 'logs'})"})  # fmt: skip
    if finished is None and not failed:
        why = cause or f"see {log_path}"
        failed.append({"table": "*", "range": "dsbulk-migrator", "error": f"DSBulk Migrator exited {code}: {why}"})
    log.info("dsbulk-migrator finished in %.1f s (exit %d)", seconds, code)
    return {"tables": tables, "failed": failed, "workdir": str(workdir), "log": str(log_path)}


def _already_done(workdir: Path, specs: list[TableSpec]) -> dict[str, set[str]]:
    """Tables whose export and import the migrator has acknowledged in its data directory."""
    out: dict[str, set[str]] = {"exported": set(), "imported": set()}
    for spec in specs:
        stem = f"{spec.keyspace}__{spec.name}"
        if (workdir / "data" / "__exported__" / f"{stem}.exported").exists():
            out["exported"].add(spec.key)
        if (workdir / "data" / "__imported__" / f"{stem}.imported").exists():
            out["imported"].add(spec.key)
    return out

