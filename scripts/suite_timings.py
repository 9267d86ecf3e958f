#!/usr/bin/env python3
"""Where the test suite spends its time, read from the logs `make test` keeps.

    suite_timings.py run --log .cache/suite/molecule-cassandra.log -- molecule test -s cassandra
    suite_timings.py summary .cache/suite                  # printed at the end of `make test`
    suite_timings.py report .cache/suite -o docs/test-timings.md

``run`` passes the command's output through unchanged and keeps it in the log, each line
prefixed with the epoch second it arrived at (``1796129190.450<TAB>line``), and a last line
with the exit code. The parser also reads a plain Molecule log (no prefixes): step times then
come from the running totals that the profile_tasks callback prints.

From a Molecule log it takes: the time of each Molecule step (create, prepare, converge,
idempotence, verify, destroy, ...), every task's duration (profile_tasks prints, before each
task, the wall clock and the previous task's duration), and for the cassandra role every node
start or restart up to CQL ready: from the ``Start cassandra on NODE`` (or ``Restart ...``)
task to the end of ``Wait until a CQL query coordinated by the node succeeds on NODE``.

Standard library only: it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Molecule draws a box around the output of each ansible-playbook it runs.
BOX = re.compile(r"^\s*[│┌└├]\S*\s?")
STAMP = re.compile(r"^(\d+\.\d+)\t(.*)$")
STEP = re.compile(r"(?P<scenario>[\w.-]+) ➜ (?P<step>[\w-]+): (?P<what>Executing|Executed)\b(?::\s*(?P<result>.*))?")
HEADER = re.compile(r"^(?P<kind>TASK|RUNNING HANDLER) \[(?P<rest>.*)$")
PROFILE = re.compile(
    r"^\w+ (?P<date>\d{1,2} \w+ \d{4}) +(?P<clock>\d{2}:\d{2}:\d{2}) (?P<tz>[+-]\d{4}) "
    r"+\((?P<prev>\d+:\d{2}:\d{2}\.\d+)\) +(?P<total>\d+:\d{2}:\d{2}\.\d+)"
)
EXIT = re.compile(
    r"^== suite-timings: (?P<name>\S+) exit (?P<rc>-?\d+) after (?P<secs>[\d.]+) s(?:, load (?P<load>[\d.]+))?$"
)
LOAD = re.compile(r"^== suite-timings: (?:start, )?load (?P<load>[\d.]+)$")
LOAD_EVERY_S = 30
SUITE_LOG_HINT = "the whole of it in .cache/suite/"
# Molecule's last line: "cassandra : actions=9  successful=7  ...  failed=0".
MOLECULE_RECAP = re.compile(r"^[\w.-]+\s*: actions=\d+\s.*\bfailed=(?P<failed>\d+)")
START = re.compile(r"^(?P<kind>Start|Restart) cassandra on (?P<node>\S+)$")
READY = re.compile(r"^Wait until a CQL query coordinated by the node succeeds on (?P<node>\S+)$")
ROLE_PREFIX = re.compile(r"^[\w.-]+ : ")
# pytest's short summary ("FAILED tests/x.py::test_y - AssertionError: ...") and its "E   " lines,
# also where Molecule's box indents them inside a failed task's stdout.
PYTEST_FAILED = re.compile(r"^\s*(?P<line>(?:FAILED|ERROR) tests/\S+.*)$")
PYTEST_E = re.compile(r"^\s*(?P<line>E {2,}\S.*)$")
FATAL = re.compile(r"^\s*fatal: \[(?P<host>[^\]]+)\]: FAILED!")
FATAL_MSG = re.compile(r"^\s*\"?msg\"?:\s*(?P<msg>.+)$")
RECAP_HOST = re.compile(r"^\s*\S+\s*: ok=\d+\s+changed=\d+\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")
IGNORING = re.compile(r"^\s*\.\.\.ignoring$")
FAILURE_LINES = 30  # at most, per log: CI shows the end of the output
# The Molecule steps that get a column; the rest (syntax, cleanup, ...) add up under "other".
STEPS = ("create", "prepare", "converge", "idempotence", "verify", "destroy")


@dataclass
class Task:
    step: str
    name: str
    start: dt.datetime
    seconds: float | None = None


@dataclass
class NodeStart:
    step: str
    node: str
    kind: str  # start or restart
    seconds: float


@dataclass
class Log:
    name: str
    steps: dict[str, float] = field(default_factory=dict)
    step_results: dict[str, str] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    node_starts: list[NodeStart] = field(default_factory=list)
    total: float | None = None
    # First and last stamp (epoch s) of a stamped log: runs side by side overlap.
    span: tuple[float, float] | None = None
    exit_code: int | None = None
    # The machine's 1-minute load average, sampled at the start, every 30 s and at the end: on a
    # shared machine the others' work shows in every wall time.
    load: list[float] = field(default_factory=list)
    failed_actions: int | None = None  # from Molecule's recap, for a log without the exit line
    # Why it failed, as the log says it: pytest's summary lines (FAILED/ERROR test ids) and
    # assertion lines, and the msg of each task that failed without being ignored.
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool | None:
        if self.exit_code is not None:
            return self.exit_code == 0
        if self.failed_actions is not None:
            return self.failed_actions == 0
        if any(r.startswith("Failed") for r in self.step_results.values()):
            return False
        return None


def _seconds(hms: str) -> float:
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _clean(line: str) -> str:
    return BOX.sub("", ANSI.sub("", line)).rstrip()


def parse(lines: list[str], name: str = "") -> Log:
    """Read one log (with or without the ``run`` prefixes) into a :class:`Log`."""
    log = Log(name)
    step = ""
    step_started: float | None = None
    took: dict[str, float] = {}  # per step, from profile_tasks' running totals (plain logs)
    run_total = 0.0  # the running total of the playbook run in this step
    first_stamp: float | None = None
    last_stamp: float | None = None
    pending: Task | None = None  # the task whose duration the next profile line gives
    header: list[str] | None = None  # a task header, possibly wrapped over several lines
    named: Task | None = None  # a complete header waiting for its profile line
    open_starts: dict[str, tuple[str, dt.datetime]] = {}
    # A failed task's host and msg. A failure that was rescued or ignored is not why the run
    # failed: a playbook's failures count only when its recap shows a host failed.
    fatal: list[str] | None = None
    run_fatals: list[str] = []
    e_lines = 0

    def close_fatal() -> None:
        nonlocal fatal
        if fatal:
            run_fatals.extend(fatal)
        fatal = None

    def close_pending(seconds: float) -> None:
        nonlocal pending
        if pending is None:
            return
        pending.seconds = seconds
        started = START.match(pending.name)
        ready = READY.match(pending.name)
        if started:
            open_starts[started["node"]] = (started["kind"].lower(), pending.start)
        elif ready and ready["node"] in open_starts:
            kind, since = open_starts.pop(ready["node"])
            end = pending.start + dt.timedelta(seconds=seconds)
            log.node_starts.append(NodeStart(pending.step, ready["node"], kind, (end - since).total_seconds()))
        pending = None

    for raw in lines:
        raw = raw.rstrip("\n")
        stamp = None
        m = STAMP.match(raw)
        if m:
            stamp, raw = float(m[1]), m[2]
            first_stamp = stamp if first_stamp is None else first_stamp
            last_stamp = stamp
        text = _clean(raw)
        if not text:
            continue
        m = PYTEST_FAILED.match(text)
        if m:
            log.failures.append(m["line"])
        m = PYTEST_E.match(text)
        if m and e_lines < 10:
            e_lines += 1
            log.failures.append(m["line"])
        if fatal is not None:
            if IGNORING.match(text):
                fatal = None
            elif (m := FATAL_MSG.match(text)) and len(fatal) == 1:
                fatal.append("  msg: " + m["msg"][:300])
            elif HEADER.match(text) or text.startswith("PLAY RECAP"):
                close_fatal()
        m = RECAP_HOST.match(text)
        if m:
            if int(m["failed"]) or int(m["unreachable"]):
                log.failures.extend(run_fatals)
            run_fatals.clear()
        m = FATAL.match(text)
        if m:
            close_fatal()
            current = pending or named
            fatal = [f"task failed on {m['host']}" + (f": {current.name}" if current else "")]
        m = LOAD.match(text)
        if m:
            log.load.append(float(m["load"]))
            continue
        m = EXIT.match(text)
        if m:
            log.exit_code = int(m["rc"])
            log.total = float(m["secs"])
            if m["load"]:
                log.load.append(float(m["load"]))
            continue
        m = MOLECULE_RECAP.match(text)
        if m:
            log.failed_actions = int(m["failed"])
            continue
        m = STEP.search(text)
        if m:
            if m["what"] == "Executing":
                step, step_started, pending, named, header = m["step"], stamp, None, None, None
                run_total = 0.0
            else:
                took[m["step"]] = took.get(m["step"], 0.0) + run_total
                run_total = 0.0
                if step_started is not None and stamp is not None:
                    log.steps[m["step"]] = log.steps.get(m["step"], 0.0) + stamp - step_started
                log.step_results[m["step"]] = (m["result"] or "").strip()
                step_started = None
            continue
        m = HEADER.match(text)
        if m:
            header = [m["rest"]]
        elif header is not None and not PROFILE.match(text):
            header.append(text.strip())
        if header is not None:
            joined = " ".join(header)
            end = re.search(r"\]\s*\**\s*$", joined)
            if end:
                name_text = ROLE_PREFIX.sub("", joined[: end.start()].strip())
                named, header = Task(step, re.sub(r"\s+", " ", name_text), dt.datetime.min), None
            continue
        m = PROFILE.match(text)
        if m:
            close_pending(_seconds(m["prev"]))
            run_total = max(run_total, _seconds(m["total"]))
            if named is not None:
                clock = " ".join([m["date"], m["clock"], m["tz"]])
                named.start = dt.datetime.strptime(clock, "%d %B %Y %H:%M:%S %z")
                log.tasks.append(named)
                pending, named = named, None
            continue
        if text.startswith("PLAY RECAP"):
            named = None
    close_fatal()
    if log.exit_code is None or log.exit_code:
        log.failures.extend(run_fatals)  # a run cut off before its recap
    del log.failures[FAILURE_LINES:]
    for s, seconds in took.items():
        log.steps.setdefault(s, seconds)
    if first_stamp is not None and last_stamp is not None:
        log.span = (first_stamp, last_stamp)
    if log.total is None and log.span is not None:
        log.total = last_stamp - first_stamp
    if log.total is None and log.steps:
        log.total = sum(log.steps.values())
    return log


def load(directory: Path) -> list[Log]:
    logs = []
    for path in sorted(directory.glob("*.log"), key=lambda p: p.stat().st_mtime):
        logs.append(parse(path.read_text(errors="replace").splitlines(), path.stem))
    return logs


def _fmt(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.0f}"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def scenario_table(logs: list[Log]) -> list[str]:
    head = ["run", "result", "total (m:s)", *STEPS, "other", "load"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for log in logs:
        other = sum(v for k, v in log.steps.items() if k not in STEPS) if log.steps else None
        result = {True: "passed", False: "**failed**", None: ""}[log.passed]
        cells = [log.name, result, _minutes(log.total)]
        cells += [_fmt(log.steps.get(s)) if log.steps else "" for s in STEPS]
        cells.append(_fmt(other))
        cells.append(f"{sum(log.load) / len(log.load):.1f} ({max(log.load):.1f})" if log.load else "")
        rows.append("| " + " | ".join(cells) + " |")
    total = sum(log.total or 0 for log in logs)
    rows.append("| **all runs** | | **" + _minutes(total) + "** |" + " |" * (len(STEPS) + 2))
    wall = wall_clock(logs)
    if wall is not None and wall < total - 1:
        rows.append("| **wall clock** (runs side by side) | | **" + _minutes(wall) + "** |" + " |" * (len(STEPS) + 2))
    return rows


def wall_clock(logs: list[Log]) -> float | None:
    """Seconds from the first run's start to the last one's end, when every log is stamped."""
    spans = [log.span for log in logs]
    if not spans or any(span is None for span in spans):
        return None
    return max(end for _, end in spans) - min(start for start, _ in spans)


def node_start_table(logs: list[Log]) -> list[str]:
    rows = ["| run | step | node | start or restart | s to CQL ready |", "|---|---|---|---|---|"]
    for log in logs:
        for s in log.node_starts:
            rows.append(f"| {log.name} | {s.step} | {s.node} | {s.kind} | {s.seconds:.0f} |")
    return rows


def slowest_tasks(logs: list[Log], count: int = 15) -> list[str]:
    tasks = [(t.seconds or 0.0, log.name, t) for log in logs for t in log.tasks if t.seconds]
    tasks.sort(key=lambda item: item[0], reverse=True)
    rows = ["| s | run | step | task |", "|---|---|---|---|"]
    for seconds, name, task in tasks[:count]:
        rows.append(f"| {seconds:.0f} | {name} | {task.step} | {task.name.replace('|', '/')} |")
    return rows


def summary(logs: list[Log]) -> str:
    starts = [s.seconds for log in logs for s in log.node_starts]
    parts = ["Where the time went (s per Molecule step):", *scenario_table(logs)]
    if starts:
        parts += [
            "",
            f"Cassandra node starts and restarts: {len(starts)}, {sum(starts):.0f} s in all, "
            f"{sum(starts) / len(starts):.0f} s each on average, longest {max(starts):.0f} s",
        ]
    parts += ["", "Slowest tasks:", *slowest_tasks(logs, 10)]
    for log in logs:
        if log.passed is False and log.failures:
            parts += ["", f"Why {log.name} failed (from its log, {SUITE_LOG_HINT}):", *log.failures]
    return "\n".join(parts) + "\n"


def report(logs: list[Log], when: str) -> str:
    lines = [
        "# Test suite timings",
        "",
        f"Written by `make timings` from the logs of the last runs ({when}); `make test` prints the",
        "same tables at its end. Seconds unless marked; a run is `make test`'s bootstrap, lint, unit",
        "or one Molecule scenario. The steps' columns add up the step's runs (destroy runs twice);",
        "load is the machine's 1-minute load average over the run, mean (highest): on 2 cores,",
        "above 2 means other work was competing for them.",
        "",
        "Measured side by side instead of across runs: `docs/cassandra-start.md` (Cassandra's start",
        "with and without the test-cluster options) and `docs/apt-cost.md` (package installs).",
        "",
        *scenario_table(logs),
        "",
        "## Cassandra: node start or restart to CQL ready",
        "",
        "From the cassandra role's `Start cassandra on NODE` (or `Restart ...`, which includes the",
        "drained node's stop) to the end of its health gate: CQL port open, every node UN in",
        "`nodetool status`, a CQL query coordinated by the node answered.",
        "",
        *node_start_table(logs),
        "",
        "## Slowest tasks",
        "",
        *slowest_tasks(logs, 25),
        "",
    ]
    return "\n".join(lines)


def run(log_path: Path, command: list[str], prefix: str = "") -> int:
    """Run command, echo its output and keep it, stamped, in log_path; return its exit code.

    prefix starts each echoed line (not the log's): runs side by side stay apart on the console.
    """
    head = prefix.encode()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("COLUMNS", "160")  # fewer wrapped lines in Molecule's boxes
    started = time.time()
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"{started:.3f}\t== suite-timings: start, load {os.getloadavg()[0]:.2f}\n")
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        except OSError as err:
            print(f"suite_timings: cannot run {command[0]}: {err}", file=sys.stderr)
            return 127
        assert proc.stdout is not None
        echo, sampled = True, started
        for chunk in iter(proc.stdout.readline, b""):
            if time.time() - sampled >= LOAD_EVERY_S:
                sampled = time.time()
                log.write(f"{sampled:.3f}\t== suite-timings: load {os.getloadavg()[0]:.2f}\n")
            if echo:
                try:
                    sys.stdout.buffer.write(head + chunk if head else chunk)
                    sys.stdout.buffer.flush()
                except BrokenPipeError:
                    echo = False  # the reader went away; keep the log complete
            log.write(f"{time.time():.3f}\t{chunk.decode('utf-8', 'replace').rstrip()}\n")
        rc = proc.wait()
        now = time.time()
        end = f"exit {rc} after {now - started:.1f} s, load {os.getloadavg()[0]:.2f}"
        log.write(f"{now:.3f}\t== suite-timings: {log_path.stem} {end}\n")
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run a command and keep its stamped output")
    p_run.add_argument("--log", type=Path, required=True)
    p_run.add_argument("--prefix", default="", help="text before each echoed line")
    p_run.add_argument("cmd", nargs=argparse.REMAINDER)
    p_sum = sub.add_parser("summary", help="print where the time went")
    p_sum.add_argument("logs", type=Path)
    p_rep = sub.add_parser("report", help="write the Markdown tables")
    p_rep.add_argument("logs", type=Path)
    p_rep.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("run: give the command after --")
        return run(args.log, cmd, args.prefix)
    logs = load(args.logs) if args.logs.is_dir() else []
    if not logs:
        print(f"suite_timings: no logs in {args.logs}", file=sys.stderr)
        return 1
    if args.command == "summary":
        sys.stdout.write(summary(logs))
        return 0
    newest = max(p.stat().st_mtime for p in args.logs.glob("*.log"))
    when = dt.datetime.fromtimestamp(newest, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.output.write_text(report(logs, when))
    print(f"suite_timings: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
