"""bench/migration_bench.py: the verdict on writetimes and TTLs, DSBulk's record count, and the
table with its goals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import migration_bench as mb  # noqa: E402

MACHINE = {"date": "2026-12-07 13:00 UTC", "cpus": 2, "memory_gib": 23.5, "kernel": "6.1", "python": "3.11.7",
           "java": "17.0.15", "load_average": [1.0, 1.0, 1.0], "load_end": [3.0, 2.0, 1.0],
           "origin": "Cassandra 5.0.9, 1 node", "target": "Cassandra 5.0.9, 3 nodes"}  # fmt: skip


def args(**kw) -> argparse.Namespace:
    base = {"rows": 1_000_000, "wide": 5, "wide_rows": 20_000, "sample": 2000, "where": "on three hosts"}
    return argparse.Namespace(**{**base, **kw})


def result(tool: str, rows: int, seconds: float, **kw) -> mb.Result:
    return mb.Result(tool, "what", "settings", rows=rows, seconds=seconds, **kw)


def test_the_verdict_tells_every_cell_kept_from_the_rows_newest_and_from_lost():
    assert mb._verdict(0, 0, 0) == "-"
    assert mb._verdict(30, 0, 0) == "yes, every cell"
    assert mb._verdict(26, 4, 0) == "row's newest for all cells (4 of 30 cells differ)"
    assert mb._verdict(20, 4, 6) == "no (6 of 30 cells differ)"


def test_dsbulk_records_are_the_last_operations_successful_count(tmp_path: Path):
    log = tmp_path / "op"
    log.mkdir()
    (log / "operation.log").write_text("Records: total: 10, successful: 9\nRecords: total: 1,000, successful: 998\n")
    assert mb._dsbulk_records(f"unload ...\nOperation directory: {log}\n") == 998
    assert mb._dsbulk_records("Records: total: 5, successful: 5") == 5
    assert mb._dsbulk_records("no summary") == 0


def test_the_table_names_the_clusters_and_judges_both_goals():
    results = [result("zdmkit copy", 1_000_000, 100.0, writetimes="yes, every cell"),
               result("zdmkit validate", 1_000_000, 20.0),
               result("CDM Migrate", 1_000_000, 150.0),
               result("CDM DiffData", 1_000_000, 100.0)]  # fmt: skip
    text = mb.render(results, MACHINE, args(), 600)
    assert "Origin: Cassandra 5.0.9, 1 node, Target: Cassandra 5.0.9, 3 nodes, on three hosts" in text
    assert "| zdmkit copy | what | settings | 1,000,000 | 100.0 | 10,000 |" in text
    assert "- Goal, copy: zdmkit copy at least twice as fast as CDM Migrate: 1.5x, not met." in text
    assert "- Goal, validation: zdmkit validate at least twice as fast as CDM DiffData: 5.0x, met." in text
    assert "- Goal, writetimes kept by zdmkit's copy: yes, every cell." in text
    assert "engine sstables" not in text


def test_the_sstables_engine_is_judged_against_cdm_migrate_beside_the_cql_copy():
    results = [result("zdmkit copy", 1_000_000, 100.0, writetimes="yes, every cell"),
               result("zdmkit sstables copy", 1_000_000, 20.0, writetimes="yes, every cell"),
               result("CDM Migrate", 1_000_000, 50.0)]  # fmt: skip
    text = mb.render(results, MACHINE, args(), 600)
    assert "- Goal, copy: zdmkit copy at least twice as fast as CDM Migrate: 0.5x, not met." in text
    assert ("- Goal, copy, with phase 2's engine sstables (a self-managed Target of Origin's release series): "
            "2.5x CDM Migrate, met.") in text  # fmt: skip
    assert "- Goal, writetimes kept by the engine sstables: yes, every cell." in text


def test_a_failed_tool_shows_its_failure_and_no_goal_is_judged_on_it():
    results = [result("zdmkit copy", 1_000_000, 100.0),
               result("CDM Migrate", 566_117, 248.3, failed="exit 0: 433883 rows in error")]  # fmt: skip
    text = mb.render(results, MACHINE, args(), 600)
    assert "FAILED: exit 0: 433883 rows in error" in text
    assert "Goal, copy" not in text
