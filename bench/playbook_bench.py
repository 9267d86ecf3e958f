"""Playbook speed on the local lab: cold lab build and phase 0, no-op re-runs, the slowest tasks.

    .venv/bin/python bench/playbook_bench.py --cold --migrate --reruns 2 --compare-pipelining

Runs the playbooks through ansible-runner (the events give each task's start and end on every
host) and writes ``docs/benchmarks.md`` (tables and the machine) and ``docs/benchmarks.json``.
``--cold`` removes the lab first and times ``lab.yml`` (containers) and the first ``site.yml``;
without it the lab must be up. ``--compare-pipelining`` repeats the no-op run with
``ANSIBLE_PIPELINING`` on and off, whatever ansible.cfg says. ``--migrate`` then runs what
``make lab`` runs after phase 0 (``scripts/lab-migrate.sh``): each phase playbook, 1 to 5, each
followed by a second run of the same playbook, which has nothing to do; then the loss check and
the report. Goals judged against: no-op ``site.yml`` under 60 s, a no-op phase playbook under
30 s; cold ``make lab`` (artifact cache warm; containers, phase 0 to 5, loss check, report)
under 15 minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import benchkit
from docsection import SECTIONS, replace_section

ROOT = Path(__file__).resolve().parents[1]
NOOP_GOAL_S = 60
PHASE_NOOP_GOAL_S = 30
COLD_GOAL_S = 15 * 60


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inventory", default=str(ROOT / "inventories" / "lab" / "hosts.yml"))
    p.add_argument("--cold", action="store_true", help="remove the lab, then time lab.yml and the first site.yml")
    p.add_argument("--reruns", type=int, default=2, help="no-op runs of site.yml to time")
    p.add_argument("--compare-pipelining", action="store_true", help="time the no-op run with pipelining on and off")
    p.add_argument(
        "--migrate",
        action="store_true",
        help="then run phases 1 to 5, each twice (the second has nothing to do), the loss check, the report",
    )
    p.add_argument("--slowest", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    return p.parse_args()


def run_playbook(name: str, inventory: str, extravars: dict | None = None, env: dict | None = None) -> dict[str, Any]:
    """One playbook run as `ansible-playbook` from the project's root runs it (its fact cache): wall
    seconds, the recap, and each task's wall time across hosts, named with its role."""
    r = benchkit.run_playbook(name, inventory, extravars, env, project_facts=True)
    tasks = [{"play": t["play"], "task": f"{t['role']} : {t['task']}" if t["role"] else t["task"],
              "seconds": t["seconds"]} for t in r["tasks"]]  # fmt: skip
    return {**{k: r[k] for k in ("playbook", "status", "rc", "seconds", "hosts", "changed", "failed")}, "tasks": tasks}


def machine() -> dict[str, Any]:
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    versions = subprocess.run(["ansible", "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible": versions.splitlines()[0] if versions else "unknown",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "## Playbook speed",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['ansible']}; the local lab (containers on one machine).",
        f"Written by `bench/playbook_bench.py`; the numbers are in `{Path(results['json']).name}`.",
        "Each playbook runs as `ansible-playbook` from the project's root runs it: the project's `ansible.cfg` "
        "(Mitogen) and its fact cache (`.cache/ansible-facts`, kept an hour), which the runs before fill. "
        "A re-run of `phase2.yml` is not idle: it validates every row again, so that the record phase 4's "
        "guard reads is fresh.",
        "",
        "| run | playbook | hosts | wall s | changed | failed | goal |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results["runs"]:
        goal = ""
        if r["label"].startswith("no-op"):
            limit = PHASE_NOOP_GOAL_S if r["playbook"].startswith("phase") else NOOP_GOAL_S
            goal = f"< {limit} s: {'met' if r['seconds'] < limit else 'not met'}"
        cells = [r["label"], r["playbook"], r["hosts"], r["seconds"], r["changed"], r["failed"], goal]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if results.get("cold_total"):
        total = results["cold_total"]
        met = "met" if total < COLD_GOAL_S else "not met"
        what = ("containers, phase 0 to phase 5, the loss check and the report: what `make lab` runs "
                "after its bootstrap" if results.get("migrated") else "containers, then phase 0")  # fmt: skip
        lines += ["", f"Cold lab ({what}), artifact cache warm: {total:.0f} s "
                  f"(goal < {COLD_GOAL_S} s: {met}); the no-op re-runs are not in it."]  # fmt: skip
    for name, slow in (("site.yml", results.get("slowest", [])), (results.get("phase_slowest_of"),
                                                                   results.get("phase_slowest", []))):  # fmt: skip
        if slow:
            lines += ["", f"## The {len(slow)} slowest tasks of the no-op `{name}`", "",
                      "From the task's start on its first host to its end on the last one.", "",
                      "| seconds | play | task |", "|---:|---|---|"]  # fmt: skip
            lines += [f"| {t['seconds']} | {t['play']} | {t['task']} |" for t in slow]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    runs: list[dict[str, Any]] = []
    cold_total = 0.0

    def record(label: str, result: dict[str, Any]) -> dict[str, Any]:
        result["label"] = label
        runs.append(result)
        print(f"{label:32} {result['playbook']:10} {result['seconds']:8.1f} s  changed={result['changed']} "
              f"failed={result['failed']} status={result['status']}", flush=True)  # fmt: skip
        return result

    if args.cold:
        record("remove the lab", run_playbook("lab.yml", args.inventory, {"lab_state": "absent"}))
        cold_total += record("cold: containers", run_playbook("lab.yml", args.inventory))["seconds"]
        cold_total += record("cold: phase 0", run_playbook("site.yml", args.inventory))["seconds"]
    noop: list[dict[str, Any]] = []
    for i in range(args.reruns):
        noop.append(record(f"no-op {i + 1}", run_playbook("site.yml", args.inventory)))
    if args.compare_pipelining:
        for value in ("False", "True"):
            result = run_playbook("site.yml", args.inventory, env={"ANSIBLE_PIPELINING": value})
            noop.append(record(f"no-op, pipelining {value.lower()}", result))
    phase_noop: list[dict[str, Any]] = []
    if args.migrate:
        steps: list[dict[str, Any]] = []
        for phase in range(1, 6):
            steps.append(record(f"phase {phase}", run_playbook(f"phase{phase}.yml", args.inventory)))
            if steps[-1]["status"] != "successful":
                break
            phase_noop.append(record(f"no-op phase {phase}", run_playbook(f"phase{phase}.yml", args.inventory)))
        else:
            steps.append(record("loss check", run_playbook("loss_check.yml", args.inventory)))
            steps.append(record("report", run_playbook("report.yml", args.inventory)))
        if args.cold:
            cold_total += sum(r["seconds"] for r in steps)
    failed = [r for r in runs if r["status"] != "successful" and r["label"] != "remove the lab"]
    fastest = min(noop, key=lambda r: r["seconds"]) if noop else None
    slowest_phase = max(phase_noop, key=lambda r: r["seconds"]) if phase_noop else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine(),
        "runs": [{k: v for k, v in r.items() if k != "tasks"} for r in runs],
        "cold_total": cold_total,
        "slowest": fastest["tasks"][: args.slowest] if fastest else [],
        "migrated": bool(args.migrate and len(phase_noop) == 5),
        "phase_slowest_of": slowest_phase["playbook"] if slowest_phase else None,
        "phase_slowest": slowest_phase["tasks"][: args.slowest] if slowest_phase else [],
        "json": out.with_suffix(".json").name,
    }
    data = out.with_suffix(".json")
    # the file also holds other benchmarks' data, each under its own name
    old = json.loads(data.read_text(encoding="utf-8")) if data.exists() else {}
    kept = {k: v for k, v in old.items() if k in SECTIONS and k != "playbook_bench"}
    data.write_text(json.dumps({**results, **kept}, indent=2) + "\n", encoding="utf-8")
    replace_section(out, "playbook_bench", render(results), order=SECTIONS)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
