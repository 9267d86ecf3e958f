"""bench/playbook_bench.py's table: which goal each no-op run is judged against, and what the
cold total says it covers."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import playbook_bench  # noqa: E402

MACHINE = {"date": "2026-12-01 00:00 UTC", "cpus": 2, "memory_gib": 23.5, "kernel": "6", "python": "3.11",
           "ansible": "ansible [core 2.19]"}  # fmt: skip


def run(label: str, playbook: str, seconds: float) -> dict:
    return {"label": label, "playbook": playbook, "hosts": 7, "seconds": seconds, "changed": 0, "failed": 0}


def render(**more) -> str:
    return playbook_bench.render({"machine": MACHINE, "json": "benchmarks.json", **more})


def test_a_no_op_phase_playbook_is_judged_against_30_seconds_and_site_yml_against_60():
    table = render(runs=[run("no-op 1", "site.yml", 45.0), run("no-op phase 1", "phase1.yml", 45.0)])
    assert "| no-op 1 | site.yml | 7 | 45.0 | 0 | 0 | < 60 s: met |" in table
    assert "| no-op phase 1 | phase1.yml | 7 | 45.0 | 0 | 0 | < 30 s: not met |" in table


def test_the_cold_total_says_whether_the_migration_is_in_it():
    migrated = render(runs=[], cold_total=840.0, migrated=True)
    assert "phase 0 to phase 5, the loss check and the report" in migrated and "(goal < 900 s: met)" in migrated
    phase0 = render(runs=[], cold_total=960.0, migrated=False)
    assert "(containers, then phase 0)" in phase0 and "(goal < 900 s: not met)" in phase0


def test_the_slowest_tasks_of_the_slowest_no_op_phase_playbook_get_their_own_table():
    slow = [{"seconds": 4.2, "play": "Roll the proxies", "task": "Read whether the proxy runs"}]
    table = render(runs=[], slowest=slow, phase_slowest_of="phase3.yml", phase_slowest=slow)
    assert "## The 1 slowest tasks of the no-op `site.yml`" in table
    assert "## The 1 slowest tasks of the no-op `phase3.yml`" in table
    assert table.count("| 4.2 | Roll the proxies | Read whether the proxy runs |") == 2
