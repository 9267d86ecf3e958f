"""CQL generated from a TableSpec, and the writes that reproduce one Origin row on Target.

Every cell keeps its own writetime and TTL: the cells of a row are grouped by
``(writetime, ttl)`` and each group becomes one ``INSERT``/``UPDATE ... USING TIMESTAMP ? AND
TTL ?`` where the columns outside the group are bound as *unset* (nothing is written for them,
not even a tombstone). A copied cell therefore never overwrites a newer one on Target, and a
re-run writes the same cells again (idempotent), with one exception documented below.

Rules, where CQL leaves a choice:

* TTL is the remaining TTL read from Origin; "no TTL" is written as ``TTL 0``, which also
  overrides a table's ``default_time_to_live`` exactly as Origin's cell did. A remaining TTL
  of 0 (expiring this second) is written as 1, never as "no TTL".
* Null cells are never written (no tombstones).
* Row liveness (the row marker) is not readable in CQL. Rows are written with ``INSERT``, which
  adds a row marker at the writetime of each group. A row whose only cells are in non-frozen
  collections gets a key-only INSERT at its oldest cell's writetime; a row with no cells at
  all (primary key only) gets one at the run's fallback timestamp, taken when the run started:
  a delete dual-written after that start still wins over the copy.
* Non-frozen sets and maps are written element by element (``c = c + ?``), grouped by each
  element's writetime and TTL. Non-frozen UDTs are written field by field (``c.f = ?``).
* Non-frozen lists cannot be written element by element: the server addresses list cells by a
  timeuuid it generates itself, so an append is not idempotent and would not keep order. A
  list is written whole (``c = ?``, which replaces older elements) at the writetime of its newest
  element, with the largest TTL of its elements, or no TTL when any element has none.
* Static columns are written once per partition, keyed by the partition key alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cassandra.metadata import protect_name
from cassandra.query import UNSET_VALUE

from zdmkit.migrate.schema import ColumnSpec, TableSpec

UNSET = UNSET_VALUE

INSERT_ROW = "insert_row"
INSERT_STATIC = "insert_static"
UPDATE_ROW = "update_row"
UPDATE_STATIC = "update_static"

Write = tuple[str, tuple[Any, ...]]


def ttl_to_write(ttl: int | None) -> int:
    """The TTL to bind for a cell whose remaining TTL on Origin is ``ttl`` (None: no TTL)."""
    if ttl is None:
        return 0
    return ttl if ttl > 0 else 1


def combined_ttl(ttls: Iterable[int | None]) -> int:
    """One TTL for cells written together: none if any cell has none, else the largest."""
    best = 0
    for ttl in ttls:
        if ttl is None or ttl == 0:
            return 0
        best = max(best, ttl_to_write(ttl))
    return best


def _token_expr(spec: TableSpec) -> str:
    return f"token({', '.join(c.quoted for c in spec.partition_key)})"


def _key_where(columns: Sequence[ColumnSpec]) -> str:
    return " AND ".join(f"{c.quoted} = ?" for c in columns)


def _assignments(col: ColumnSpec) -> list[str]:
    if col.kind in ("set", "map"):
        return [f"{col.quoted} = {col.quoted} + ?"]
    if col.kind == "udt":
        return [f"{col.quoted}.{protect_name(f)} = ?" for f in col.udt_fields]
    return [f"{col.quoted} = ?"]


class CopyPlan:
    """Statements and row-to-writes mapping for copying one table.

    Layout of a row read with :attr:`select_range` / :attr:`select_key`: the primary key
    columns, then for each value column (statics first) its value, WRITETIME and TTL.
    """

    def __init__(self, spec: TableSpec):
        if spec.counters:
            raise ValueError(f"table {spec.key} has counter columns, which cannot be copied with a writetime")
        self.spec = spec
        self.pk_width = len(spec.partition_key)
        self.key_width = self.pk_width + len(spec.clustering)
        self.value_index: dict[str, int] = {}
        exprs = [c.quoted for c in spec.primary_key]
        for col in spec.value_columns:
            self.value_index[col.name] = len(exprs)
            exprs += [col.quoted, f"WRITETIME({col.quoted})", f"TTL({col.quoted})"]
        self.select_exprs = exprs
        select = f"SELECT {', '.join(exprs)} FROM {spec.fqn}"  # noqa: S608 - identifiers from schema metadata, quoted; values bound
        self.select_range = f"{select} WHERE {_token_expr(spec)} > ? AND {_token_expr(spec)} <= ?"
        # the scan of the copy also reads each row's token (last column) to group writes by replica set
        self.token_index = len(exprs)
        self.select_range_with_token = self.select_range.replace(
            f" FROM {spec.fqn}", f", {_token_expr(spec)} FROM {spec.fqn}", 1
        )
        self.select_key = f"{select} WHERE {_key_where(spec.primary_key)}"
        self.select_partition = f"{select} WHERE {_key_where(spec.partition_key)} LIMIT 1"
        # the same reads on Target (autocorrect reads Target's writetimes)
        t_select = select.replace(f" FROM {spec.fqn}", f" FROM {spec.target_fqn}")
        self.target_select_key = f"{t_select} WHERE {_key_where(spec.primary_key)}"
        self.target_select_partition = f"{t_select} WHERE {_key_where(spec.partition_key)} LIMIT 1"

        self.simple_static = [c for c in spec.static if not c.multi_cell]
        self.multi_static = [c for c in spec.static if c.multi_cell]
        self.simple_regular = [c for c in spec.regular if not c.multi_cell]
        self.multi_regular = [c for c in spec.regular if c.multi_cell]
        self.has_lists = any(c.kind == "list" for c in spec.value_columns)

        self.templates: dict[str, str] = {}
        key_cols = list(spec.primary_key)
        cols = key_cols + self.simple_regular
        self.templates[INSERT_ROW] = (
            f"INSERT INTO {spec.target_fqn} ({', '.join(c.quoted for c in cols)}) "  # noqa: S608 - identifiers from schema metadata, quoted; values bound
            f"VALUES ({', '.join('?' for _ in cols)}) USING TIMESTAMP ? AND TTL ?"
        )
        if self.simple_static:
            cols = list(spec.partition_key) + self.simple_static
            self.templates[INSERT_STATIC] = (
                f"INSERT INTO {spec.target_fqn} ({', '.join(c.quoted for c in cols)}) "  # noqa: S608 - identifiers from schema metadata, quoted; values bound
                f"VALUES ({', '.join('?' for _ in cols)}) USING TIMESTAMP ? AND TTL ?"
            )
        if self.multi_regular:
            sets = [a for c in self.multi_regular for a in _assignments(c)]
            self.templates[UPDATE_ROW] = (
                f"UPDATE {spec.target_fqn} USING TIMESTAMP ? AND TTL ? SET {', '.join(sets)} "  # noqa: S608 - identifiers from schema metadata, quoted; values bound
                f"WHERE {_key_where(spec.primary_key)}"
            )
        if self.multi_static:
            sets = [a for c in self.multi_static for a in _assignments(c)]
            self.templates[UPDATE_STATIC] = (
                f"UPDATE {spec.target_fqn} USING TIMESTAMP ? AND TTL ? SET {', '.join(sets)} "  # noqa: S608 - identifiers from schema metadata, quoted; values bound
                f"WHERE {_key_where(spec.partition_key)}"
            )
        # (column, value index, first slot) for the multi-cell groups
        self.multi_layout = {
            UPDATE_ROW: self._layout(self.multi_regular),
            UPDATE_STATIC: self._layout(self.multi_static),
        }
        self.simple_layout = {
            INSERT_ROW: [(c.name, self.value_index[c.name]) for c in self.simple_regular],
            INSERT_STATIC: [(c.name, self.value_index[c.name]) for c in self.simple_static],
        }

    def _layout(self, cols: Sequence[ColumnSpec]) -> tuple[list[tuple[ColumnSpec, int, int]], int]:
        layout, slot = [], 0
        for col in cols:
            layout.append((col, self.value_index[col.name], slot))
            slot += len(col.udt_fields) if col.kind == "udt" else 1
        return layout, slot

    def is_static_only(self, row: Sequence[Any]) -> bool:
        """A partition with statics but no clustering rows reads as one row with a null clustering key."""
        return bool(self.spec.clustering) and row[self.pk_width] is None

    def writes_for_row(
        self,
        row: Sequence[Any],
        *,
        fallback_timestamp: int,
        with_static: bool = True,
        only: set[str] | None = None,
        timestamp: int | None = None,
        marker: bool = True,
    ) -> list[Write]:
        """The writes that reproduce ``row`` (read with :attr:`select_range`) on Target.

        ``only`` restricts the columns written; ``timestamp`` replaces every writetime (both are
        for the autocorrect escalation); ``with_static`` is False after the partition's first row.
        """
        out: list[Write] = []
        pk = tuple(row[: self.pk_width])
        if with_static:
            self._simple(out, INSERT_STATIC, pk, row, only, timestamp, fallback_timestamp)
            self._multi(out, UPDATE_STATIC, pk, row, only, timestamp)
        if self.is_static_only(row):
            return out
        key = tuple(row[: self.key_width])
        simple = self._simple(out, INSERT_ROW, key, row, only, timestamp, fallback_timestamp)
        multi = self._multi(out, UPDATE_ROW, key, row, only, timestamp)
        if simple == 0 and marker:
            # no simple cell carries the row marker: write the key alone
            if multi:
                ts = timestamp if timestamp is not None else min(wt for wt, _ in multi)
                ttl = combined_ttl(ttl for _, ttl in multi)
            else:
                ts = timestamp if timestamp is not None else fallback_timestamp
                ttl = 0
            n = len(self.simple_regular)
            out.append((INSERT_ROW, (*key, *([UNSET] * n), ts, ttl)))
        return out

    def _simple(
        self,
        out: list[Write],
        template: str,
        key: tuple[Any, ...],
        row: Sequence[Any],
        only: set[str] | None,
        timestamp: int | None,
        fallback: int,
    ) -> int:
        layout = self.simple_layout[template]
        if not layout:
            return 0
        groups: dict[tuple[int, int], list[Any]] = {}
        n = len(layout)
        for slot, (name, vi) in enumerate(layout):
            value = row[vi]
            if value is None or (only is not None and name not in only):
                continue
            wt = row[vi + 1]
            gkey = (
                timestamp if timestamp is not None else (wt if wt is not None else fallback),
                ttl_to_write(row[vi + 2]),
            )
            slots = groups.get(gkey)
            if slots is None:
                slots = groups[gkey] = [UNSET] * n
            slots[slot] = value
        for (wt, ttl), slots in groups.items():
            out.append((template, (*key, *slots, wt, ttl)))
        return len(groups)

    def _multi(
        self,
        out: list[Write],
        template: str,
        key: tuple[Any, ...],
        row: Sequence[Any],
        only: set[str] | None,
        timestamp: int | None,
    ) -> list[tuple[int, int]]:
        layout, width = self.multi_layout[template]
        if not layout:
            return []
        groups: dict[tuple[int, int], list[Any]] = {}

        def slots_for(wt: int, ttl: int | None) -> list[Any]:
            gkey = (timestamp if timestamp is not None else wt, ttl_to_write(ttl))
            slots = groups.get(gkey)
            if slots is None:
                slots = groups[gkey] = [UNSET] * width
            return slots

        for col, vi, first in layout:
            value = row[vi]
            if value is None or (only is not None and col.name not in only):
                continue
            wts = _as_list(row[vi + 1])
            ttls = _as_list(row[vi + 2])
            if col.kind == "list":
                stamps = [w for w in wts if w is not None]
                if not stamps:
                    continue
                slots_for(max(stamps), combined_ttl(ttls) or None)[first] = list(value)
            elif col.kind == "set":
                elements = list(value)
                for i, element in enumerate(elements):
                    wt, ttl = _cell_stamp(wts, ttls, i, len(elements))
                    slots = slots_for(wt, ttl)
                    if slots[first] is UNSET:
                        slots[first] = []
                    slots[first].append(element)
            elif col.kind == "map":
                items = list(value.items())
                for i, (k, v) in enumerate(items):
                    wt, ttl = _cell_stamp(wts, ttls, i, len(items))
                    slots = slots_for(wt, ttl)
                    if slots[first] is UNSET:
                        slots[first] = {}
                    slots[first][k] = v
            elif col.kind == "udt":
                fields = list(value)
                present = [i for i, f in enumerate(fields) if f is not None]
                per_field = len(wts) == len(fields)
                for n, i in enumerate(present):
                    j = i if per_field else n
                    wt, ttl = _cell_stamp(wts, ttls, j, len(wts))
                    slots_for(wt, ttl)[first + i] = fields[i]
        stamps = []
        for (wt, ttl), slots in groups.items():
            out.append((template, (wt, ttl, *slots, *key)))
            stamps.append((wt, ttl))
        return stamps


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _cell_stamp(wts: list[Any], ttls: list[Any], i: int, count: int) -> tuple[int, int | None]:
    """Writetime and TTL of element i; when the lists do not line up, the newest for all."""
    if len(wts) == count and wts[i] is not None:
        return wts[i], (ttls[i] if len(ttls) == count else None)
    stamps = [w for w in wts if w is not None]
    return (max(stamps) if stamps else 0), (combined_ttl(ttls) or None)


class ValidatePlan:
    """Statements for comparing a table: both sides are read with the same column layout.

    Row layout: ``token``, primary key columns, value columns, then (with ``writetimes``) one
    writetime per value column: WRITETIME for single cells and per-element lists for sets, maps
    and UDTs, MAXWRITETIME for lists (their elements are rewritten at the newest writetime).
    """

    def __init__(self, spec: TableSpec, *, writetimes: bool = False, side: str = "origin"):
        self.spec = spec
        self.side = side
        self.writetimes = writetimes
        self.pk_width = len(spec.partition_key)
        self.key_width = self.pk_width + len(spec.clustering)
        token = _token_expr(spec)
        exprs = [token] + [c.quoted for c in spec.primary_key] + [c.quoted for c in spec.value_columns]
        self.value_names = [c.name for c in spec.value_columns]
        self.compared_names = list(self.value_names)
        if writetimes:
            for col in spec.value_columns:
                if col.kind == "counter":
                    continue
                fn = "MAXWRITETIME" if col.kind == "list" else "WRITETIME"
                exprs.append(f"{fn}({col.quoted})")
                self.compared_names.append(f"writetime({col.name})")
        self.value_start = 1 + self.key_width
        select = f"SELECT {', '.join(exprs)} FROM {spec.fqn_on(side)}"  # noqa: S608 - identifiers from schema metadata, quoted; values bound
        self.select_range = f"{select} WHERE {token} > ? AND {token} <= ?"
        self.select_key = f"{select} WHERE {_key_where(spec.primary_key)}"
        self.select_partition = f"{select} WHERE {_key_where(spec.partition_key)} LIMIT 1"

    def key_of(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[1 : 1 + self.key_width])

    def is_static_only(self, row: Sequence[Any]) -> bool:
        return bool(self.spec.clustering) and row[1 + self.pk_width] is None
