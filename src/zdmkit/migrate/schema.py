"""Table discovery on Origin and the compatibility preflight against Target.

The layout of a table is taken from the driver's schema metadata. Each value column gets a
*write kind* that decides how its cells are copied with their own writetime and TTL:

``simple``   one cell (native types, frozen collections/UDTs, tuples, vectors)
``set``/``map``  one cell per element; elements are added (``c = c + ?``) grouped by writetime/TTL
``list``     one cell per element, but list cells are addressed by a server-generated timeuuid:
             the list is written whole (``c = ?``) at the newest element's writetime
``udt``      a non-frozen UDT: one cell per field, written field by field (``c.f = ?``)
``counter``  cannot carry a writetime; refused by the copy
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cassandra.metadata import protect_name

SYSTEM_KEYSPACES = frozenset(
    {
        "system",
        "system_auth",
        "system_distributed",
        "system_schema",
        "system_traces",
        "system_views",
        "system_virtual_schema",
    }
)

# Words that appear in CQL type strings and are not user-defined type names.
_TYPE_WORDS = frozenset(
    {
        "ascii", "bigint", "blob", "boolean", "counter", "date", "decimal", "double", "duration",
        "float", "inet", "int", "smallint", "text", "time", "timestamp", "timeuuid", "tinyint",
        "uuid", "varchar", "varint", "frozen", "list", "set", "map", "tuple", "vector", "empty",
    }
)  # fmt: skip
_IDENT = re.compile(r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*')

MULTI_CELL_KINDS = frozenset({"set", "map", "list", "udt"})


class PreflightError(Exception):
    """Input that must be fixed before anything is copied; carries one line per problem."""

    def __init__(self, problems: Sequence[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    cql_type: str
    role: str  # partition | clustering | static | regular
    kind: str = "simple"  # simple | set | map | list | udt | counter
    udt_fields: tuple[str, ...] = ()
    reversed: bool = False

    @property
    def quoted(self) -> str:
        return protect_name(self.name)

    @property
    def multi_cell(self) -> bool:
        return self.kind in MULTI_CELL_KINDS


@dataclass(frozen=True)
class TableSpec:
    keyspace: str
    name: str
    partition_key: tuple[ColumnSpec, ...]
    clustering: tuple[ColumnSpec, ...] = ()
    static: tuple[ColumnSpec, ...] = ()
    regular: tuple[ColumnSpec, ...] = ()
    udts: tuple[str, ...] = field(default=(), compare=False)
    target_keyspace: str | None = None  # when Target's keyspace has another name

    @property
    def target_key(self) -> str:
        return f"{self.target_keyspace or self.keyspace}.{self.name}"

    @property
    def target_fqn(self) -> str:
        return f"{protect_name(self.target_keyspace or self.keyspace)}.{protect_name(self.name)}"

    def fqn_on(self, side: str) -> str:
        return self.target_fqn if side == "target" else self.fqn

    @property
    def key(self) -> str:
        return f"{self.keyspace}.{self.name}"

    @property
    def fqn(self) -> str:
        return f"{protect_name(self.keyspace)}.{protect_name(self.name)}"

    @property
    def primary_key(self) -> tuple[ColumnSpec, ...]:
        return self.partition_key + self.clustering

    @property
    def value_columns(self) -> tuple[ColumnSpec, ...]:
        """Static then regular columns: everything that carries cells."""
        return self.static + self.regular

    @property
    def columns(self) -> tuple[ColumnSpec, ...]:
        return self.primary_key + self.value_columns

    @property
    def counters(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.value_columns if c.kind == "counter")

    @property
    def multi_cell(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.value_columns if c.multi_cell)

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def normalize_type(cql_type: str) -> str:
    """Type text without insignificant whitespace, for comparing Origin and Target."""
    return re.sub(r"\s+", "", cql_type)


def referenced_udts(cql_type: str) -> set[str]:
    """Names of the user-defined types a CQL type string mentions (at any depth)."""
    names = set()
    for match in _IDENT.finditer(cql_type):
        word = match.group(0)
        if word.startswith('"'):
            names.add(_unquote(word))
        elif word.lower() not in _TYPE_WORDS:
            names.add(word)
    return names


def write_kind(cql_type: str, udt_names: Iterable[str]) -> str:
    """How the cells of a column of this type are written (see the module docstring)."""
    text = normalize_type(cql_type)
    lowered = text.lower()
    if lowered.startswith("frozen<"):
        return "simple"
    if lowered == "counter":
        return "counter"
    for kind in ("list", "set", "map"):
        if lowered.startswith(kind + "<"):
            return kind
    if _unquote(text) in set(udt_names):
        return "udt"
    return "simple"


def _udt_closure(names: Iterable[str], user_types: dict[str, Any]) -> list[str]:
    """The given UDT names plus every UDT their fields use, dependencies first."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in user_types:
            return
        seen.add(name)
        for ftype in user_types[name].field_types:
            for dep in referenced_udts(ftype):
                visit(dep)
        ordered.append(name)

    for name in sorted(names):
        visit(name)
    return ordered


def table_spec(keyspace_meta: Any, table_meta: Any) -> TableSpec:
    """Build a TableSpec from driver metadata (``KeyspaceMetadata``, ``TableMetadata``)."""
    user_types = keyspace_meta.user_types
    pk_names = [c.name for c in table_meta.partition_key]
    ck_names = [c.name for c in table_meta.clustering_key]

    def spec(col: Any, role: str) -> ColumnSpec:
        kind = write_kind(col.cql_type, user_types) if role in ("static", "regular") else "simple"
        fields: tuple[str, ...] = ()
        if kind == "udt":
            fields = tuple(user_types[_unquote(normalize_type(col.cql_type))].field_names)
        return ColumnSpec(
            name=col.name,
            cql_type=col.cql_type,
            role=role,
            kind=kind,
            udt_fields=fields,
            reversed=bool(getattr(col, "is_reversed", False)),
        )

    static, regular, udts = [], [], set()
    for name, col in table_meta.columns.items():
        udts |= referenced_udts(col.cql_type)
        if name in pk_names or name in ck_names:
            continue
        (static if col.is_static else regular).append(spec(col, "static" if col.is_static else "regular"))
    return TableSpec(
        keyspace=keyspace_meta.name,
        name=table_meta.name,
        partition_key=tuple(spec(c, "partition") for c in table_meta.partition_key),
        clustering=tuple(spec(c, "clustering") for c in table_meta.clustering_key),
        static=tuple(static),
        regular=tuple(regular),
        udts=tuple(_udt_closure(udts, user_types)),
    )


def discover_tables(
    metadata: Any,
    keyspaces: Sequence[str],
    tables: Sequence[str] | None = None,
    keyspace_map: dict[str, str] | None = None,
) -> list[TableSpec]:
    """Tables of the given keyspaces on Origin (materialized views excluded).

    ``tables`` narrows the selection; each entry is ``keyspace.table`` or a bare table name
    looked up in every given keyspace. Unknown names are a PreflightError.
    """
    problems = []
    for ks in keyspaces:
        if ks in SYSTEM_KEYSPACES:
            problems.append(f"keyspace {ks} is a system keyspace and is never migrated")
        elif ks not in metadata.keyspaces:
            problems.append(f"keyspace {ks} does not exist on Origin")
    if problems:
        raise PreflightError(problems)

    wanted: set[tuple[str, str]] | None = None
    if tables:
        wanted = set()
        for entry in tables:
            ks, dot, name = entry.partition(".")
            candidates = [(ks, name)] if dot else [(k, entry) for k in keyspaces]
            found = [(k, n) for k, n in candidates if k in keyspaces and n in metadata.keyspaces[k].tables]
            if not found:
                where = f"keyspace {ks}" if dot else "keyspace(s) " + ", ".join(keyspaces)
                problems.append(f"table {entry} not found on Origin in {where}")
            wanted.update(found)
        if problems:
            raise PreflightError(problems)

    specs = []
    for ks in keyspaces:
        ks_meta = metadata.keyspaces[ks]
        for name in sorted(ks_meta.tables):
            if wanted is not None and (ks, name) not in wanted:
                continue
            table_meta = ks_meta.tables[name]
            if getattr(table_meta, "virtual", False):
                continue
            spec = table_spec(ks_meta, table_meta)
            if keyspace_map and keyspace_map.get(ks, ks) != ks:
                spec = replace(spec, target_keyspace=keyspace_map[ks])
            specs.append(spec)
    return specs


def check_target(specs: Sequence[TableSpec], origin_metadata: Any, target_metadata: Any) -> list[str]:
    """Problems that make Target unable to receive the Origin tables, one line each."""
    problems: list[str] = []
    for spec in specs:
        target_ks = spec.target_keyspace or spec.keyspace
        ks_meta = target_metadata.keyspaces.get(target_ks)
        if ks_meta is None:
            problems.append(f"keyspace {target_ks} does not exist on Target (create it with the same schema)")
            continue
        table_meta = ks_meta.tables.get(spec.name)
        if table_meta is None:
            problems.append(f"table {spec.target_key} does not exist on Target (create it with the same schema)")
            continue
        target = table_spec(ks_meta, table_meta)
        problems += _compare_tables(spec, target)
        problems += compare_udts(spec, origin_metadata.keyspaces[spec.keyspace], ks_meta)
    return problems


def _compare_tables(origin: TableSpec, target: TableSpec) -> list[str]:
    problems = []
    for role, o_cols, t_cols in (
        ("partition key", origin.partition_key, target.partition_key),
        ("clustering key", origin.clustering, target.clustering),
    ):
        o_names = [c.name for c in o_cols]
        t_names = [c.name for c in t_cols]
        if o_names != t_names:
            problems.append(
                f"table {origin.key}: {role} differs: Origin ({', '.join(o_names)}) vs Target ({', '.join(t_names)})"
            )
    target_cols = {c.name: c for c in target.columns}
    for col in origin.columns:
        tcol = target_cols.get(col.name)
        if tcol is None:
            problems.append(f"table {origin.key}: column {col.name} ({col.cql_type}) is missing on Target")
        elif normalize_type(col.cql_type) != normalize_type(tcol.cql_type):
            problems.append(
                f"table {origin.key}: column {col.name} is {col.cql_type} on Origin but {tcol.cql_type} on Target"
            )
        elif col.role in ("static", "regular") and col.role != tcol.role:
            problems.append(f"table {origin.key}: column {col.name} is {col.role} on Origin but {tcol.role} on Target")
    return problems


def compare_udts(spec: TableSpec, origin_ks: Any, target_ks: Any) -> list[str]:
    """Problems with the user-defined types the table uses (fields and their types must match)."""
    problems = []
    for name in spec.udts:
        o_type = origin_ks.user_types.get(name)
        t_type = target_ks.user_types.get(name)
        if o_type is None:
            continue
        if t_type is None:
            problems.append(f"table {spec.key}: user type {spec.keyspace}.{name} is missing on Target")
            continue
        o_fields = list(zip(o_type.field_names, map(normalize_type, o_type.field_types), strict=True))
        t_fields = list(zip(t_type.field_names, map(normalize_type, t_type.field_types), strict=True))
        if o_fields != t_fields:
            problems.append(
                f"table {spec.key}: user type {spec.keyspace}.{name} differs: Origin "
                f"({', '.join(f'{n} {t}' for n, t in o_fields)}) vs Target "
                f"({', '.join(f'{n} {t}' for n, t in t_fields)})"
            )
    return problems


def parse_version(release: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def check_copy_support(spec: TableSpec, origin_release: str, engine: str) -> list[str]:
    """Problems that keep a table from being copied with writetimes preserved."""
    problems = []
    if spec.counters:
        names = ", ".join(c.name for c in spec.counters)
        problems.append(
            f"table {spec.key} has counter column(s) {names}: a counter update cannot carry USING TIMESTAMP "
            "and re-applying it would add the value twice, so counters are not copied; leave the table out "
            "(--tables) and move it while its writes are stopped"
        )
    multi = [c for c in spec.multi_cell if c.kind != "counter"]
    # CDM leaves them out of writetimes; SSTables carry every element's own
    if multi and parse_version(origin_release) < (5, 0) and engine not in ("cdm", "sstables"):
        problems.append(
            f"table {spec.key} has non-frozen collection/UDT column(s) {', '.join(c.name for c in multi)}: "
            f"Origin runs Cassandra {origin_release}, which cannot return their per-element writetimes "
            "(WRITETIME/TTL of non-frozen collections needs Cassandra 5.0 on Origin)"
        )
    if multi and engine in ("dsbulk", "dsbulk-migrator"):
        problems.append(
            f"table {spec.key} has non-frozen collection/UDT column(s) {', '.join(c.name for c in multi)}: "
            "their writetime/TTL is a list per element, which a DSBulk load cannot bind to USING TIMESTAMP; "
            "copy this table with --engine builtin or spark"
        )
    return problems


def check_streaming(origin_release: str, target_release: str) -> list[str]:
    """Problems that keep Origin's SSTables from being streamed to Target (engine sstables)."""
    origin, target = parse_version(origin_release), parse_version(target_release)
    if origin == (0, 0) or origin != target:
        return [
            f"engine sstables streams Origin's SSTables with Origin's own sstableloader, which speaks only its "
            f"release's streaming protocol and writes its SSTable format: Origin runs Cassandra {origin_release}, "
            f"Target {target_release}; it needs one release series (major.minor) on both; use the engine zdmkit"
        ]
    return []
