from types import SimpleNamespace as NS

import pytest

from zdmkit.migrate.schema import (
    PreflightError,
    check_copy_support,
    check_streaming,
    check_target,
    discover_tables,
    referenced_udts,
    write_kind,
)


def column(name, cql_type, static=False):
    return NS(name=name, cql_type=cql_type, is_static=static, is_reversed=False)


def table(name, pk, ck, others):
    cols = {c.name: c for c in pk + ck + others}
    return NS(name=name, partition_key=pk, clustering_key=ck, columns=cols, virtual=False)


def keyspace(name, tables, udts=None):
    return NS(name=name, tables={t.name: t for t in tables}, user_types=udts or {})


def metadata(*keyspaces):
    return NS(keyspaces={k.name: k for k in keyspaces}, partitioner="org.apache.cassandra.dht.Murmur3Partitioner")


ADDR = NS(field_names=["street", "num"], field_types=["text", "int"])


def origin_keyspace():
    users = table(
        "users",
        [column("id", "uuid")],
        [column("at", "timestamp")],
        [
            column("name", "text"),
            column("tags", "set<text>"),
            column("home", "addr"),
            column("work", "frozen<addr>"),
            column("region", "text", static=True),
        ],
    )
    hits = table("hits", [column("page", "text")], [], [column("n", "counter")])
    return keyspace("app", [users, hits], {"addr": ADDR})


@pytest.mark.parametrize(
    ("cql_type", "kind"),
    [
        ("int", "simple"),
        ("frozen<list<int>>", "simple"),
        ("list<int>", "list"),
        ("set<frozen<addr>>", "set"),
        ("map<text, int>", "map"),
        ("addr", "udt"),
        ("frozen<addr>", "simple"),
        ("tuple<int, text>", "simple"),
        ("vector<float, 3>", "simple"),
        ("counter", "counter"),
    ],
)
def test_write_kind(cql_type, kind):
    assert write_kind(cql_type, ["addr"]) == kind


def test_referenced_udts_finds_nested_and_quoted_names():
    assert referenced_udts('map<text, frozen<list<frozen<"Addr">>>>') == {"Addr"}
    assert referenced_udts("tuple<int, frozen<addr>, vector<float, 3>>") == {"addr"}


def test_discover_tables_and_column_roles():
    (users, hits) = sorted(discover_tables(metadata(origin_keyspace()), ["app"]), key=lambda s: s.name)[::-1]
    assert users.name == "users"
    assert [c.name for c in users.static] == ["region"]
    assert {c.name: c.kind for c in users.regular} == {"name": "simple", "tags": "set", "home": "udt", "work": "simple"}
    assert users.column("home").udt_fields == ("street", "num")
    assert users.udts == ("addr",)
    assert hits.counters


def test_discover_unknown_keyspace_and_table():
    meta = metadata(origin_keyspace())
    with pytest.raises(PreflightError, match="keyspace nope does not exist on Origin"):
        discover_tables(meta, ["nope"])
    with pytest.raises(PreflightError, match="system keyspace"):
        discover_tables(meta, ["system"])
    with pytest.raises(PreflightError, match=r"table app\.ghost not found"):
        discover_tables(meta, ["app"], ["app.ghost"])
    assert [s.name for s in discover_tables(meta, ["app"], ["users"])] == ["users"]


def test_check_target_reports_every_problem_precisely():
    origin = metadata(origin_keyspace())
    specs = discover_tables(origin, ["app"], ["users"])
    assert check_target(specs, origin, metadata()) == [
        "keyspace app does not exist on Target (create it with the same schema)"
    ]
    assert check_target(specs, origin, metadata(keyspace("app", [], {"addr": ADDR}))) == [
        "table app.users does not exist on Target (create it with the same schema)"
    ]
    changed = table(
        "users",
        [column("id", "uuid")],
        [column("at", "timestamp")],
        [
            column("name", "varint"),
            column("tags", "set<text>"),
            column("home", "addr"),
            column("region", "text", static=True),
        ],
    )
    other_addr = NS(field_names=["street"], field_types=["text"])
    problems = check_target(specs, origin, metadata(keyspace("app", [changed], {"addr": other_addr})))
    assert "table app.users: column name is text on Origin but varint on Target" in problems
    assert "table app.users: column work (frozen<addr>) is missing on Target" in problems
    assert any("user type app.addr differs" in p for p in problems)


def test_check_target_accepts_identical_schema_with_whitespace_differences():
    origin = metadata(origin_keyspace())
    specs = discover_tables(origin, ["app"], ["users"])
    target_ks = origin_keyspace()
    target_ks.tables["users"].columns["tags"] = column("tags", "set< text >")
    assert check_target(specs, origin, metadata(target_ks)) == []


def test_check_target_primary_key_difference():
    origin = metadata(origin_keyspace())
    specs = discover_tables(origin, ["app"], ["users"])
    target_ks = origin_keyspace()
    users = target_ks.tables["users"]
    target_ks.tables["users"] = table(
        "users",
        users.partition_key + users.clustering_key,
        [],
        [c for n, c in users.columns.items() if n not in ("id", "at")],
    )
    problems = check_target(specs, origin, metadata(target_ks))
    assert problems[0] == "table app.users: partition key differs: Origin (id) vs Target (id, at)"


def test_copy_support_refuses_counters_old_origin_and_dsbulk_collections():
    specs = {s.name: s for s in discover_tables(metadata(origin_keyspace()), ["app"])}
    (problem,) = check_copy_support(specs["hits"], "5.0.9", "builtin")
    assert "counter column(s) n" in problem and "USING TIMESTAMP" in problem
    assert check_copy_support(specs["users"], "5.0.9", "builtin") == []
    (old,) = check_copy_support(specs["users"], "4.1.5", "builtin")
    assert "Cassandra 4.1.5" in old and "tags, home" in old
    (dsb,) = check_copy_support(specs["users"], "5.0.9", "dsbulk")
    assert "--engine builtin" in dsb
    # SSTables carry each element's writetime whatever Origin's release; counters stay refused
    assert check_copy_support(specs["users"], "4.1.5", "sstables") == []
    assert len(check_copy_support(specs["hits"], "4.1.5", "sstables")) == 1


@pytest.mark.parametrize(
    ("origin", "target", "ok"),
    [("5.0.9", "5.0.2", True), ("4.1.5", "4.1.8", True), ("4.1.5", "5.0.9", False), ("5.0.9", "4.0.0.6816", False),
     ("", "5.0.9", False)],
)
def test_streaming_needs_one_release_series(origin, target, ok):
    problems = check_streaming(origin, target)
    assert (problems == []) is ok
    if not ok:
        assert f"Origin runs Cassandra {origin}, Target {target}" in problems[0]
        assert "engine zdmkit" in problems[0]
