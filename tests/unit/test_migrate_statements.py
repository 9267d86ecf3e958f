from collections import OrderedDict, namedtuple

import pytest

from zdmkit.migrate.schema import ColumnSpec, TableSpec
from zdmkit.migrate.statements import (
    INSERT_ROW,
    INSERT_STATIC,
    UNSET,
    UPDATE_ROW,
    CopyPlan,
    ValidatePlan,
    combined_ttl,
    ttl_to_write,
)

Addr = namedtuple("Addr", "street num")
FALLBACK = 999


def col(name, cql_type, role="regular", kind="simple", fields=()):
    return ColumnSpec(name, cql_type, role, kind, fields)


SIMPLE = TableSpec(
    "ks",
    "t",
    partition_key=(col("p", "int", "partition"),),
    clustering=(col("c", "int", "clustering"),),
    regular=(col("a", "text"), col("b", "int")),
)

FULL = TableSpec(
    "ks",
    "wide",
    partition_key=(col("p", "int", "partition"),),
    clustering=(col("c", "int", "clustering"),),
    static=(col("s", "text", "static"),),
    regular=(
        col("a", "text"),
        col("tags", "set<int>", kind="set"),
        col("m", "map<text, int>", kind="map"),
        col("l", "list<int>", kind="list"),
        col("u", "addr", kind="udt", fields=("street", "num")),
    ),
)


def row(plan, key, cells):
    """A row in the CopyPlan layout; cells maps a column name to (value, writetime, ttl)."""
    out = list(key)
    for column in plan.spec.value_columns:
        out += list(cells.get(column.name, (None, None, None)))
    return tuple(out)


def test_select_reads_writetime_and_ttl_of_every_value_column():
    plan = CopyPlan(SIMPLE)
    assert plan.select_range == (
        "SELECT p, c, a, WRITETIME(a), TTL(a), b, WRITETIME(b), TTL(b) FROM ks.t WHERE token(p) > ? AND token(p) <= ?"
    )
    assert plan.templates[INSERT_ROW] == (
        "INSERT INTO ks.t (p, c, a, b) VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )


def test_cells_sharing_writetime_and_ttl_go_in_one_insert():
    plan = CopyPlan(SIMPLE)
    writes = plan.writes_for_row(
        row(plan, (1, 2), {"a": ("x", 10, None), "b": (5, 10, None)}), fallback_timestamp=FALLBACK
    )
    assert writes == [(INSERT_ROW, (1, 2, "x", 5, 10, 0))]


def test_cells_with_different_writetimes_or_ttls_keep_their_own():
    plan = CopyPlan(SIMPLE)
    writes = plan.writes_for_row(
        row(plan, (1, 2), {"a": ("x", 10, None), "b": (5, 20, 300)}), fallback_timestamp=FALLBACK
    )
    assert sorted(writes, key=lambda w: w[1][-2]) == [
        (INSERT_ROW, (1, 2, "x", UNSET, 10, 0)),
        (INSERT_ROW, (1, 2, UNSET, 5, 20, 300)),
    ]
    same_wt = plan.writes_for_row(
        row(plan, (1, 2), {"a": ("x", 10, None), "b": (5, 10, 60)}), fallback_timestamp=FALLBACK
    )
    assert len(same_wt) == 2


def test_null_cells_are_not_written():
    plan = CopyPlan(SIMPLE)
    writes = plan.writes_for_row(row(plan, (1, 2), {"a": ("x", 10, None)}), fallback_timestamp=FALLBACK)
    assert writes == [(INSERT_ROW, (1, 2, "x", UNSET, 10, 0))]


def test_row_without_cells_gets_a_key_only_insert_at_the_fallback_timestamp():
    plan = CopyPlan(SIMPLE)
    writes = plan.writes_for_row(row(plan, (1, 2), {}), fallback_timestamp=FALLBACK)
    assert writes == [(INSERT_ROW, (1, 2, UNSET, UNSET, FALLBACK, 0))]


@pytest.mark.parametrize(("remaining", "written"), [(None, 0), (0, 1), (1, 1), (86400, 86400)])
def test_ttl_to_write(remaining, written):
    assert ttl_to_write(remaining) == written


def test_combined_ttl_keeps_data_alive_when_any_cell_has_no_ttl():
    assert combined_ttl([100, 200]) == 200
    assert combined_ttl([100, None]) == 0
    assert combined_ttl([]) == 0


def test_counter_tables_are_refused():
    spec = TableSpec(
        "ks", "c", partition_key=(col("p", "int", "partition"),), regular=(col("n", "counter", kind="counter"),)
    )
    with pytest.raises(ValueError, match="counter"):
        CopyPlan(spec)


def test_templates_for_collections_udt_and_statics():
    plan = CopyPlan(FULL)
    assert plan.templates[INSERT_STATIC] == ("INSERT INTO ks.wide (p, s) VALUES (?, ?) USING TIMESTAMP ? AND TTL ?")
    assert plan.templates[UPDATE_ROW] == (
        "UPDATE ks.wide USING TIMESTAMP ? AND TTL ? SET tags = tags + ?, m = m + ?, l = ?, "
        "u.street = ?, u.num = ? WHERE p = ? AND c = ?"
    )


def test_set_and_map_elements_are_grouped_by_their_own_writetime():
    plan = CopyPlan(FULL)
    cells = {
        "tags": ([1, 2, 3], [10, 20, 10], [None, 60, None]),
        "m": (OrderedDict([("x", 1), ("y", 2)]), [20, 30], [60, None]),
    }
    writes = plan.writes_for_row(row(plan, (1, 2), cells), fallback_timestamp=FALLBACK, with_static=False)
    updates = {(v[0], v[1]): v[2:] for name, v in writes if name == UPDATE_ROW}
    assert updates[(10, 0)][:2] == ([1, 3], UNSET)
    assert updates[(20, 60)][:2] == ([2], {"x": 1})
    assert updates[(30, 0)][:2] == (UNSET, {"y": 2})
    # no simple cell: a key-only INSERT at the oldest cell writetime carries the row marker
    markers = [v for name, v in writes if name == INSERT_ROW]
    assert markers == [(1, 2, UNSET, 10, 0)]


def test_list_is_written_whole_at_its_newest_element_writetime():
    plan = CopyPlan(FULL)
    cells = {"a": ("x", 5, None), "l": ([7, 8], [10, 40], [100, 200])}
    writes = plan.writes_for_row(row(plan, (1, 2), cells), fallback_timestamp=FALLBACK, with_static=False)
    (update,) = [v for name, v in writes if name == UPDATE_ROW]
    assert update[:2] == (40, 200)
    assert update[2 + 2] == [7, 8]


def test_udt_fields_written_one_by_one():
    plan = CopyPlan(FULL)
    cells = {"u": (Addr("main", None), [10, None], [None, None])}
    writes = plan.writes_for_row(row(plan, (1, 2), cells), fallback_timestamp=FALLBACK, with_static=False)
    (update,) = [v for name, v in writes if name == UPDATE_ROW]
    assert update[0] == 10
    assert update[2 + 3 : 2 + 5] == ("main", UNSET)


def test_statics_written_once_per_partition_and_static_only_partitions():
    plan = CopyPlan(FULL)
    first = row(plan, (1, 2), {"s": ("st", 7, None), "a": ("x", 5, None)})
    assert (INSERT_STATIC, (1, "st", 7, 0)) in plan.writes_for_row(first, fallback_timestamp=FALLBACK)
    later = plan.writes_for_row(first, fallback_timestamp=FALLBACK, with_static=False)
    assert all(name != INSERT_STATIC for name, _ in later)
    static_only = row(plan, (1, None), {"s": ("st", 7, None)})
    assert plan.writes_for_row(static_only, fallback_timestamp=FALLBACK) == [(INSERT_STATIC, (1, "st", 7, 0))]


def test_only_and_timestamp_override_for_autocorrect():
    plan = CopyPlan(SIMPLE)
    r = row(plan, (1, 2), {"a": ("x", 10, None), "b": (5, 20, None)})
    writes = plan.writes_for_row(r, fallback_timestamp=FALLBACK, only={"b"}, timestamp=777, marker=False)
    assert writes == [(INSERT_ROW, (1, 2, UNSET, 5, 777, 0))]


def test_quoted_identifiers():
    spec = TableSpec(
        "Ks", "My Table", partition_key=(col("Key", "int", "partition"),), regular=(col("select", "text"),)
    )
    plan = CopyPlan(spec)
    assert 'FROM "Ks"."My Table"' in plan.select_range
    assert 'WRITETIME("select")' in plan.select_range
    assert plan.templates[INSERT_ROW].startswith('INSERT INTO "Ks"."My Table" ("Key", "select")')


def test_target_keyspace_rename():
    from dataclasses import replace

    plan = CopyPlan(replace(SIMPLE, target_keyspace="other"))
    assert "FROM ks.t" in plan.select_range
    assert plan.templates[INSERT_ROW].startswith("INSERT INTO other.t ")
    assert "FROM other.t" in plan.target_select_key
    assert "FROM other.t" in ValidatePlan(replace(SIMPLE, target_keyspace="other"), side="target").select_range


def test_validate_plan_layout_and_writetimes():
    plan = ValidatePlan(FULL, writetimes=True)
    assert plan.select_range.startswith(
        "SELECT token(p), p, c, s, a, tags, m, l, u, WRITETIME(s), WRITETIME(a), "
        "WRITETIME(tags), WRITETIME(m), MAXWRITETIME(l), WRITETIME(u) FROM ks.wide"
    )
    assert plan.compared_names[-1] == "writetime(u)"
    assert plan.value_start == 3
    assert plan.key_of((123, 1, 2, "s")) == (1, 2)
    assert plan.is_static_only((123, 1, None))
