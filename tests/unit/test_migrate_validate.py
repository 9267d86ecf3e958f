import math
from collections import OrderedDict

from zdmkit.migrate.report import Samples, ValidationCounts, validation_summary
from zdmkit.migrate.schema import ColumnSpec, TableSpec
from zdmkit.migrate.statements import ValidatePlan
from zdmkit.migrate.validate import differing_columns, hashable_key, merge_scan, normalize

SPEC = TableSpec(
    "ks",
    "t",
    partition_key=(ColumnSpec("p", "int", "partition"),),
    clustering=(ColumnSpec("c", "int", "clustering"),),
    regular=(ColumnSpec("v", "text", "regular"), ColumnSpec("f", "double", "regular")),
)
PLAN = ValidatePlan(SPEC)


def r(token, p, c, v="x", f=1.0):
    return (token, p, c, v, f)


def kinds(candidates):
    return sorted((cand.kind, cand.key) for cand in candidates)


def test_identical_scans():
    rows = [r(1, 10, 1), r(1, 10, 2), r(5, 20, 1)]
    read, valid, cands = merge_scan(PLAN, iter(rows), iter(list(rows)))
    assert (read, valid, cands) == (3, 3, [])


def test_missing_mismatch_and_extra_are_told_apart():
    origin = [r(1, 10, 1), r(1, 10, 2), r(3, 30, 1), r(5, 50, 1, "a"), r(9, 90, 1)]
    target = [r(1, 10, 1), r(3, 30, 1), r(5, 50, 1, "b"), r(7, 70, 1), r(9, 90, 1)]
    read, valid, cands = merge_scan(PLAN, iter(origin), iter(target))
    assert read == 5 and valid == 3
    assert kinds(cands) == [("extra", (70, 1)), ("mismatch", (50, 1)), ("missing", (10, 2))]


def test_rows_of_one_token_matched_by_key_whatever_their_order():
    # a token collision (two partitions, one token) listed in different orders, plus a missing row
    origin = [r(4, 1, 1), r(4, 1, 2), r(4, 2, 1), r(6, 3, 1)]
    target = [r(4, 2, 1), r(4, 1, 2), r(4, 1, 1)]
    read, valid, cands = merge_scan(PLAN, iter(origin), iter(target))
    assert (read, valid) == (4, 3)
    assert kinds(cands) == [("missing", (3, 1))]


def test_empty_target_makes_every_row_missing():
    origin = [r(i, i, 0) for i in range(5)]
    read, valid, cands = merge_scan(PLAN, iter(origin), iter([]))
    assert (read, valid, len(cands)) == (5, 0, 5)
    assert {c.kind for c in cands} == {"missing"}


def test_nan_equals_nan_and_differences_name_columns():
    assert differing_columns(PLAN, r(1, 1, 1, "x", math.nan), r(1, 1, 1, "x", math.nan)) == []
    assert differing_columns(PLAN, r(1, 1, 1, "x", 1.0), r(1, 1, 1, "y", 2.0)) == ["v", "f"]


def test_normalize_and_hashable_keys():
    assert normalize(OrderedDict([("a", [1, 2])])) == (("a", (1, 2)),)
    assert normalize({1, 2}) in {(1, 2), (2, 1)}
    key = ([1, 2], {"a": 1})
    assert hash(hashable_key(key)) == hash(hashable_key(([1, 2], {"a": 1})))
    assert hashable_key((1, "x")) == (1, "x")


def test_counts_and_unresolved():
    counts = ValidationCounts(read=10, valid=5, mismatch=3, missing=2)
    counts.add({"corrected_missing": 2, "corrected_mismatch": 3})
    assert counts.unresolved == 0
    counts.add(ValidationCounts(read=1, error=1))
    assert counts.read == 11 and counts.unresolved == 1


def test_samples_are_bounded():
    samples = Samples(limit=2)
    for i in range(5):
        samples.add("missing", {"key": {"p": i}})
    samples.merge({"missing": [{"key": {"p": 9}}], "mismatch": [{"key": {"p": 1}, "columns": ["v"]}]})
    assert [s["key"]["p"] for s in samples.items["missing"]] == [0, 1]
    assert samples.items["mismatch"][0]["columns"] == ["v"]


def test_summary_lists_counts_and_sample_keys():
    report = {
        "tables": {
            "ks.t": {
                "counts": ValidationCounts(read=4, valid=2, mismatch=1, missing=1).to_dict(),
                "samples": {"missing": [{"key": {"p": 7}}], "mismatch": [{"key": {"p": 8}, "columns": ["v"]}]},
            }
        },
        "totals": ValidationCounts(read=4, valid=2, mismatch=1, missing=1).to_dict(),
        "ok": False,
        "duration_seconds": 2.0,
        "rows_per_second": 2.0,
    }
    text = validation_summary(report)
    assert "ks.t" in text and "DIFFERENCES FOUND" in text
    assert 'missing ks.t key {"p": 7}' in text
    assert 'mismatch ks.t key {"p": 8} columns v' in text
