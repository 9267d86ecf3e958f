"""bench/roll_bench.py: the role's per-instance lines read, latte's samples split at the roll's
start and end, and the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import benchkit  # noqa: E402
import roll_bench  # noqa: E402


def latte_run(samples: list[dict], seconds: float) -> benchkit.LatteRun:
    return benchkit.LatteRun(label="roll", rate=500, seconds=seconds, ops=sum(s["ops"] for s in samples),
                             throughput=500.0, p50=2.0, p95=9.0, p99=20.0, p999=40.0, max=60.0,
                             errors=sum(s["errors"] for s in samples), request_errors=0, retries=3,
                             error_kinds=[], cpu_s=1.0, samples=samples, started=1000.0)  # fmt: skip


def sample(t: float, p99: float, ops: int = 500, errors: int = 0) -> dict:
    return {"t": t, "ops": ops, "errors": errors, "p99": p99}


def test_the_roles_line_for_each_instance_gives_its_seconds_and_readiness():
    msg = ("bench-proxy-2 restarted on its new configuration in\n 14.3 s (ready after\n 1.2 s; 4 client "
           "connections before, 4 expected back)")  # fmt: skip
    assert roll_bench.STEP.findall(" ".join(msg.split())) == [("bench-proxy-2", "14.3", "1.2")]


def test_samples_before_the_roll_and_during_it_are_told_apart_by_wall_time():
    # latte returned at 1100 after 10 measured seconds: second t ends at 1090 + t
    samples = [sample(t, p99=10.0 if t <= 3 else 50.0 + t, ops=500 if t != 6 else 120) for t in range(1, 11)]
    # the playbook ran from 1093 to 1099; its roll from 1094 to 1097
    rolled = roll_bench.Rolled("the role", "A -> B", started=1093.0, ended=1099.0, roll_started=1094.0,
                               roll_ended=1097.0, latte=latte_run(samples, 10), latte_returned=1100.0)  # fmt: skip
    w = rolled.windows()
    assert [s["t"] for s in w["before"]] == [1, 2, 3]
    assert [s["t"] for s in w["during"]] == [5, 6, 7, 8]  # one second past the end is still the roll's
    summary = rolled.summary()
    assert summary["p99_before"] == {"mean": 10.0, "worst": 10.0}
    assert summary["p99_during"] == {"mean": 56.5, "worst": 58.0}
    assert summary["lowest_second_ops_during"] == 120
    assert (summary["seconds"], summary["roll_seconds"]) == (6.0, 3.0)


def test_the_table_has_one_row_per_procedure_and_a_failed_one_says_why():
    ok = roll_bench.Rolled("the role", "A -> B", started=1093.0, ended=1097.0, roll_started=1093.0, roll_ended=1097.0,
                           latte=latte_run([sample(1, 10.0), sample(5, 30.0, errors=2)], 10), latte_returned=1100.0,
                           steps=[{"host": "p1", "seconds": 14.3, "ready_s": 1.2}]).summary()  # fmt: skip
    failed = roll_bench.Rolled("official", "B -> A", failed="p2 not ready after 6 polls 5 s apart").summary()
    m = {"date": "d", "cpus": 2, "cpu_model": "cpu", "memory_gib": 23.5, "kernel": "6", "cassandra": "5.0.9",
         "zdm_proxy": "2.4.0"}  # fmt: skip
    args = argparse.Namespace(rate=500, duration=150, lead=20)
    table = roll_bench.render([ok, failed], m, args, 600, "latte 0.29.0")
    assert (
        "| the role | A -> B | 4.0 | 4.0 | 14.3 (1.2) | 2 (0 request errors, 3 retries) | 10.0 | 30.0 / 30.0 | 500 |"
        in table
    )
    assert "| official | B -> A | FAILED: p2 not ready after 6 polls 5 s apart |" in table


def test_the_roles_roll_is_timed_from_its_first_step_to_its_last_report():
    tasks = [{"task": "Check phase 3", "start": 1.0, "end": 2.0},
             {"task": "Note when the step starts for p1", "start": 10.0, "end": 10.1},
             {"task": "Report the step of p1", "start": 20.0, "end": 20.1},
             {"task": "Note when the step starts for p2", "start": 21.0, "end": 21.1},
             {"task": "Report the step of p2", "start": 30.0, "end": 30.2},
             {"task": "Record the phase reached", "start": 40.0, "end": 41.0}]  # fmt: skip
    assert roll_bench.roll_window(tasks) == (10.0, 30.2)
    assert roll_bench.roll_window(tasks[:1]) is None
