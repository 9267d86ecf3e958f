"""bench/proxy_bench.py and its helpers: latte's JSON report read, the goals' ratios, the shared
data file. The report below has the shape latte 0.29 writes (BenchmarkStats, percentiles as means)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import benchkit  # noqa: E402
import docsection  # noqa: E402
import proxy_bench  # noqa: E402

LEVELS = [0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0]


def distribution(p50: float, p95: float, p99: float) -> dict:
    values = {50.0: p50, 95.0: p95, 99.0: p99, 100.0: 9.5}
    return {
        "mean": {"n": 100, "value": p50, "std_err": 0.01},
        "percentiles": [{"n": 100, "value": values.get(level, p99 + level / 100), "std_err": None} for level in LEVELS],
        "histogram": "HISTFAAAA",
    }


def report(throughput: float, p50: float, p95: float, p99: float, errors: int = 0) -> dict:
    sample = {
        "time_s": 1.0, "duration_s": 1.0, "cycle_count": 500, "cycle_error_count": errors, "request_count": 500,
        "req_retry_count": 1, "req_errors": ["timeout"] if errors else [], "req_error_count": 2 * errors,
        "row_count": 250, "mean_queue_len": 1.0, "cycle_throughput": throughput, "req_throughput": throughput,
        "row_throughput": throughput / 2, "cycle_latency": distribution(p50, p95, p99), "cycle_latency_by_fn": {},
        "request_latency": distribution(p50, p95, p99),
    }  # fmt: skip
    return {
        "conf": {},
        "percentiles": LEVELS,
        "result": {
            "elapsed_time_s": 25.04, "cpu_time_s": 3.2, "cycle_count": 12_500, "request_count": 12_500,
            "request_retry_count": 1, "errors": ["timeout"] if errors else [], "error_count": errors,
            "cycle_throughput": {"n": 25, "value": throughput, "std_err": 1.0},
            "cycle_latency": distribution(p50, p95, p99),
            "cycle_latency_by_fn": {"read": distribution(p50, p95, p99 - 0.5),
                                    "write": distribution(p50, p95, p99 + 0.5)},
            "log": [sample],
        },
    }  # fmt: skip


def test_summary_reads_latte_029_report():
    run = benchkit.Latte.summary("direct", 500, report(499.6, 0.61, 1.234, 2.345, errors=3), started=0.0)
    assert (run.p50, run.p95, run.p99, run.max) == (0.61, 1.23, 2.35, 9.5)
    assert run.throughput == 499.6
    assert (run.ops, run.seconds, run.cpu_s) == (12_500, 25.0, 3.2)
    assert (run.errors, run.request_errors, run.retries) == (3, 6, 1)
    assert run.error_kinds == ["timeout"]
    assert run.by_function["read"]["p99"] == 1.85
    assert run.by_function["write"]["p99"] == 2.85
    assert run.samples[0]["p99"] == 2.35


def measured(path: str, rate: int | None, throughput: float, p99: float) -> proxy_bench.Measured:
    run = benchkit.Latte.summary(path, rate, report(throughput, 1.0, 2.0, p99), started=0.0)
    return proxy_bench.Measured("paths", path, rate, "PRIMARY_ONLY", ["172.30.95.11"], run)


def test_goals_compare_with_direct_at_the_same_rate():
    results = [
        measured("direct", 500, 500, 2.0),
        measured("direct", None, 4000, 30.0),
        measured("proxy3", 500, 500, 2.4),
        measured("proxy1", 500, 500, 3.0),
        measured("proxy3", None, 3000, 40.0),
    ]
    goals = proxy_bench.goals(results)
    by_path = {x["path"]: x for x in goals["p99"]}
    assert by_path["proxy3"]["ratio"] == pytest.approx(1.2)
    assert by_path["proxy3"]["met"] is True
    assert by_path["proxy1"]["met"] is False
    assert goals["throughput"]["proxy3"]["ratio"] == pytest.approx(0.75)
    assert goals["throughput"]["proxy3"]["met"] is False


def test_failed_run_is_left_out_of_the_goals():
    failed = proxy_bench.Measured("paths", "proxy3", 500, "PRIMARY_ONLY", [], None, failed="latte run failed")
    goals = proxy_bench.goals([measured("direct", 500, 500, 2.0), failed])
    assert goals == {"p99": [], "throughput": {}}


def test_replace_data_keeps_the_other_benchmarks(tmp_path):
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps({"machine": {"cpus": 2}, "runs": [1]}))
    docsection.replace_data(path, "proxy_bench", {"runs": [2]})
    docsection.replace_data(path, "proxy_bench", {"runs": [3]})
    assert json.loads(path.read_text()) == {"machine": {"cpus": 2}, "runs": [1], "proxy_bench": {"runs": [3]}}
