"""The phase switch: a rolling change of the three proxies under a steady client load, by the role
and by the official automation's procedure, measured side by side in one run on the bench
deployment.

    .venv/bin/python bench/roll_bench.py

The change is the read mode, as between phase 2 and phase 3. The deployment (``bench/inventory``,
as ``bench/proxy_bench.py`` uses it, deployed when it is not up) is moved to phase 2; latte then
runs ``bench/latte/proxy_mix.rn`` through the three proxies at ``--rate`` for ``--duration``
seconds, and ``--lead`` seconds into it the roll begins:

- **the role**: ``phase3.yml`` (read mode DUAL_ASYNC_ON_SECONDARY), one instance at a time:
  graceful restart, readiness UP, a query through that instance, its clients back, a 2 s pause;
- **the official automation's procedure** (zdm-proxy-automation's rolling update, whose timing is
  repeated here, not its code): for each instance the configuration changed (read mode back to
  PRIMARY_ONLY, written into the instance's configuration file), the process restarted, its
  readiness polled up to 6 times 5 s apart, then a fixed 10 s pause. ``rollback.yml`` to phase 2
  then brings the role's records in line (it finds the instances on that configuration already).

Per procedure: seconds in total and per instance, latte's errors, and p99 latency before the roll
against during it (latte's per-second samples: the mean of the seconds' p99 and the worst second).
Writes its section of ``docs/benchmarks.md`` and its data under ``roll_bench`` in
``docs/benchmarks.json``. Nothing here asserts a time; the goal the table shows is 0 client errors.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import BENCH_INVENTORY, Latte, LatteRun
from docsection import SECTIONS, machine, relative_args, replace_data, replace_section
from proxy_bench import FUNCTIONS, PROXY_CONFIG, PROXY_SERVICE, WORKLOAD, Bench, cpu_model, versions

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_POLLS = 6
OFFICIAL_POLL_DELAY_S = 5
OFFICIAL_PAUSE_S = 10
STEP = re.compile(r"(\S+) restarted on its new configuration in ([0-9.]+) s \(ready after ([0-9.]+) s")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inventory", default=str(BENCH_INVENTORY))
    p.add_argument("--rate", type=int, default=500, help="latte's ops/s through the three proxies")
    p.add_argument(
        "--duration", type=int, default=300, help="seconds of each measured latte run (it must outlast the playbook)"
    )
    p.add_argument("--lead", type=int, default=20, help="seconds of load before the roll begins")
    p.add_argument("--rows", type=int, default=10_000, help="rows loaded into both clusters, read and overwritten")
    p.add_argument("--concurrency", type=int, default=128, help="latte's requests in flight per thread")
    p.add_argument("--username", default="cassandra", help="both clusters' user (the proxies take Target's)")
    p.add_argument("--metrics-port", type=int, default=14001, help="the proxies' metrics port")
    p.add_argument("--keep", action="store_true", help="leave the bench deployment up at the end")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    return p.parse_args()


@dataclass
class Rolled:
    """One procedure's roll under load."""

    procedure: str
    change: str
    started: float = 0.0  # the procedure's (the playbook's) start and end
    ended: float = 0.0
    roll_started: float = 0.0  # from the first instance's step to the end of the last one's
    roll_ended: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    latte: LatteRun | None = None
    latte_returned: float = 0.0
    failed: str = ""

    @property
    def seconds(self) -> float:
        return round(self.ended - self.started, 1)

    @property
    def roll_seconds(self) -> float:
        return round(self.roll_ended - self.roll_started, 1)

    def windows(self) -> dict[str, list[dict[str, Any]]]:
        """latte's per-second samples before the roll and during it, by wall time."""
        if not self.latte:
            return {"before": [], "during": []}
        # the measured part ended when latte returned; its samples count from the part's start
        t0 = self.latte_returned - self.latte.seconds
        before = [s for s in self.latte.samples if t0 + s["t"] <= self.started]
        during = [s for s in self.latte.samples if self.roll_started < t0 + s["t"] <= self.roll_ended + 1]
        return {"before": before, "during": during}

    def summary(self) -> dict[str, Any]:
        w = self.windows()

        def p99(samples: list[dict[str, Any]]) -> dict[str, float | None]:
            values = [s["p99"] for s in samples if s["ops"]]
            return {"mean": round(statistics.fmean(values), 2) if values else None,
                    "worst": max(values) if values else None}  # fmt: skip

        return {
            "procedure": self.procedure,
            "change": self.change,
            "seconds": self.seconds,
            "roll_seconds": self.roll_seconds,
            "steps": self.steps,
            "errors": self.latte.errors if self.latte else None,
            "errors_during": sum(s["errors"] for s in w["during"]),
            "request_errors": self.latte.request_errors if self.latte else None,
            "retries": self.latte.retries if self.latte else None,
            "ops": self.latte.ops if self.latte else None,
            "throughput": self.latte.throughput if self.latte else None,
            "lowest_second_ops_during": min((s["ops"] for s in w["during"]), default=None),
            "p99_before": p99(w["before"]),
            "p99_during": p99(w["during"]),
            "error_kinds": self.latte.error_kinds if self.latte else [],
            "failed": self.failed,
        }


def under_load(bench: Bench, latte: Latte, rolled: Rolled, roll) -> Rolled:
    """latte through the three proxies; ``roll()`` runs ``--lead`` seconds into it."""
    a = bench.args
    hosts = [bench.dep.address[h] for h in bench.proxies]
    outcome: dict[str, Any] = {}

    def load() -> None:
        try:
            outcome["run"] = latte.run(f"roll {rolled.procedure}", hosts, FUNCTIONS, rate=a.rate,
                                       duration_s=a.duration, warmup=str(a.rate), concurrency=a.concurrency,
                                       params={"rows": a.rows})  # fmt: skip
        except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
            outcome["error"] = str(exc)[-600:]
        outcome["returned"] = time.time()

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    time.sleep(a.lead)
    rolled.started = time.time()
    try:
        rolled.steps, window = roll()
    except RuntimeError as exc:
        rolled.failed, window = str(exc)[-600:], None
    rolled.ended = time.time()
    rolled.roll_started, rolled.roll_ended = window or (rolled.started, rolled.ended)
    if rolled.ended + 5 > rolled.started - a.lead + a.duration:
        print(f"{rolled.procedure}: the roll outlasted latte's run; raise --duration", flush=True)
    thread.join(timeout=2 * a.duration + 180)
    rolled.latte = outcome.get("run")
    rolled.failed = rolled.failed or outcome.get("error", "")
    rolled.latte_returned = outcome.get("returned", 0.0)
    s = rolled.summary()
    steps = [st["seconds"] for st in s["steps"]]
    print(f"{rolled.procedure:10} {s['seconds']:6.1f} s  roll {s['roll_seconds']:6.1f} s  steps {steps}  "
          f"errors {s['errors']}  p99 before {s['p99_before']}  during {s['p99_during']}", flush=True)  # fmt: skip
    return rolled


def by_the_role(bench: Bench) -> tuple[list[dict[str, Any]], tuple[float, float] | None]:
    """phase3.yml; the roll's window is from the first step's first task to the last step's report."""
    result = bench.playbook("phase3.yml")
    steps = []
    for msg in result.get("messages", []):
        for host, total, ready in STEP.findall(" ".join(msg.split())):
            steps.append({"host": host, "seconds": float(total), "ready_s": float(ready)})
    if len(steps) != len(bench.proxies):
        raise RuntimeError(f"phase3.yml restarted {len(steps)} instances, not {len(bench.proxies)}")
    return steps, roll_window(result["tasks"])


def roll_window(tasks: list[dict[str, Any]]) -> tuple[float, float] | None:
    starts = [t["start"] for t in tasks if t["task"].startswith("Note when the step starts for ")]
    ends = [t["end"] for t in tasks if t["task"].startswith("Report the step of ")]
    return (min(starts), max(ends)) if starts and ends else None


def by_the_official_procedure(bench: Bench) -> tuple[list[dict[str, Any]], None]:
    steps = []
    for host in bench.proxies:
        began = time.time()
        bench.dep.exec(host, "sed", "-i", "s/^read_mode: .*/read_mode: PRIMARY_ONLY/", PROXY_CONFIG)
        bench.dep.exec(host, "systemctl", "restart", PROXY_SERVICE)
        ready_s = None
        for poll in range(OFFICIAL_POLLS):
            if bench.ready(host):
                ready_s = round(time.time() - began, 1)
                break
            if poll < OFFICIAL_POLLS - 1:
                time.sleep(OFFICIAL_POLL_DELAY_S)
        if ready_s is None:
            raise RuntimeError(f"{host} not ready after {OFFICIAL_POLLS} polls {OFFICIAL_POLL_DELAY_S} s apart")
        time.sleep(OFFICIAL_PAUSE_S)
        steps.append({"host": host, "seconds": round(time.time() - began, 1), "ready_s": ready_s})
    return steps, None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def render(rolls: list[dict[str, Any]], m: dict[str, Any], args: argparse.Namespace, total_s: float,
           latte_version: str) -> str:  # fmt: skip
    lines = [
        "## Phase switch: a rolling change of three proxies under load",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"on the bench deployment of `bench/proxy_bench.py` (Cassandra {m['cassandra']}, ZDM proxy {m['zdm_proxy']}); "
        f"one run of {total_s / 60:.0f} minutes, written by `bench/roll_bench.py`; the numbers are under "
        "`roll_bench` in `benchmarks.json`.",
        "",
        f"Load: {latte_version} with `bench/latte/proxy_mix.rn` (prepared INSERT and SELECT by key, equal weights) "
        f"through the three proxies at {args.rate:,} ops/s for {args.duration} s; the roll began {args.lead} s "
        "into it. The change is the read mode (PRIMARY_ONLY and DUAL_ASYNC_ON_SECONDARY, as between phase 2 and "
        "phase 3). p99 is latte's per-second p99: the mean over the seconds before the roll and during it, and "
        "the worst second during it.",
        "",
        "| procedure | change | playbook s | roll s | per instance s (ready after s) | client errors (goal 0) "
        "| p99 before ms | p99 during the roll ms, mean / worst second | fewest ops in a second of the roll |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rolls:
        if r["failed"] and r["errors"] is None:
            lines.append(f"| {r['procedure']} | {r['change']} | FAILED: {r['failed'][-200:]} |")
            continue
        steps = ", ".join(f"{s['seconds']:.1f} ({s['ready_s']:.1f})" for s in r["steps"]) or "-"
        errors = f"{r['errors']:,}" + (f" ({r['request_errors']:,} request errors, {r['retries']:,} retries)"
                                       if r["request_errors"] or r["retries"] else "")  # fmt: skip
        lines.append(f"| {r['procedure']} | {r['change']} | {r['seconds']:.1f} | {r['roll_seconds']:.1f} | {steps} "
                     f"| {errors} "
                     f"| {_ms(r['p99_before']['mean'])} | {_ms(r['p99_during']['mean'])} / "
                     f"{_ms(r['p99_during']['worst'])} | {r['lowest_second_ops_during'] or '-'} |")  # fmt: skip
        if r["failed"]:
            lines.append(f"| | | | | failed: {r['failed'][-200:]} | | | | |")
    lines += [
        "",
        "The playbook's time includes its checks before the roll and its plays after it (the demo application, "
        "Prometheus' scrape jobs, the phase's record); the roll's is from the first instance's step to the end of "
        "the last one's. For the official procedure both are the procedure itself.",
        "",
        "The role's step: SIGTERM (in-flight requests finish), readiness polled each second, a query "
        "through that instance, its client connections back (up to `zdm_proxy_clients_timeout`), then "
        "`zdm_proxy_roll_pause` (2 s). The official procedure's step: restart, readiness polled every "
        f"{OFFICIAL_POLL_DELAY_S} s up to {OFFICIAL_POLLS} times, then {OFFICIAL_PAUSE_S} s whatever happened; "
        "it checks neither a query nor the clients' return.",
    ]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    m = {**machine(), "cpu_model": cpu_model()}
    bench = Bench(args)
    m.update(versions(bench))
    latte = Latte(WORKLOAD, args.username, os.environ.get("ZDMKIT_BENCH_PASSWORD", "cassandra"))
    rolls: list[Rolled] = []
    error = ""
    try:
        dep = bench.deploy()
        for host in dep.hosts("origin") + dep.hosts("target"):
            latte.schema(dep.address[host])
            latte.load(dep.address[host], params={"rows": args.rows})
        bench.to_phase(dep, 2)
        rolls.append(under_load(bench, latte, Rolled("the role", "PRIMARY_ONLY -> DUAL_ASYNC_ON_SECONDARY"),
                                lambda: by_the_role(bench)))  # fmt: skip
        rolls.append(under_load(bench, latte, Rolled("official", "DUAL_ASYNC_ON_SECONDARY -> PRIMARY_ONLY"),
                                lambda: by_the_official_procedure(bench)))  # fmt: skip
        bench.playbook("rollback.yml", {"to_phase": 2})
    except (RuntimeError, OSError) as exc:
        error = str(exc)[-2000:]
        print(f"FAILED: {error}", flush=True)
    finally:
        if not args.keep:
            try:
                bench.remove()
            except RuntimeError as exc:
                print(f"removing the bench deployment failed: {exc}", flush=True)
    total = time.monotonic() - started
    if not rolls:
        print("nothing measured; docs left as they are")
        return 1
    summaries = [r.summary() for r in rolls]
    text = render(summaries, m, args, total, latte.version())
    print(text)
    out = Path(args.out)
    data = {"machine": m, "args": relative_args(args), "seconds": round(total), "latte": latte.version(),
            "rolls": summaries,
            "playbooks": bench.playbooks, "error": error}  # fmt: skip
    replace_data(out.with_suffix(".json"), "roll_bench", data)
    replace_section(out, "roll_bench", text, order=SECTIONS)
    print(f"wrote {out} and {out.with_suffix('.json')} ({total / 60:.1f} min)")
    return 1 if error or any(r.failed or not r.latte or r.latte.errors for r in rolls) else 0


if __name__ == "__main__":
    raise SystemExit(main())
