import pytest

from zdmkit.migrate.connection import Endpoint
from zdmkit.migrate.dsbulk import alias_clashes, config_text, find_launcher, load_steps, unload_query
from zdmkit.migrate.schema import ColumnSpec, PreflightError, TableSpec

SPEC = TableSpec(
    "ks",
    "t",
    partition_key=(ColumnSpec("p", "int", "partition"),),
    clustering=(ColumnSpec("c", "int", "clustering"),),
    static=(ColumnSpec("s", "text", "static"),),
    regular=(ColumnSpec("v", "text", "regular"),),
)


def test_unload_query_reads_writetime_and_ttl_per_column():
    assert unload_query(SPEC) == (
        "SELECT p, c, s, WRITETIME(s) AS wt_s, TTL(s) AS ttl_s, v, WRITETIME(v) AS wt_v, TTL(v) AS ttl_v "
        "FROM ks.t WHERE token(p) > :start AND token(p) <= :end"
    )


def test_one_load_per_column_then_the_row_marker():
    steps = load_steps(SPEC, 1234)
    assert steps == [
        ("load:s", "UPDATE ks.t USING TIMESTAMP :wt_s AND TTL :ttl_s SET s = :s WHERE p = :p"),
        ("load:v", "UPDATE ks.t USING TIMESTAMP :wt_v AND TTL :ttl_v SET v = :v WHERE p = :p AND c = :c"),
        ("load:row-marker", "INSERT INTO ks.t (p, c) VALUES (:p, :c) USING TIMESTAMP 1234"),
    ]


def test_alias_clash_detected():
    spec = TableSpec(
        "ks",
        "t",
        partition_key=(ColumnSpec("p", "int", "partition"),),
        regular=(ColumnSpec("v", "text", "regular"), ColumnSpec("wt_v", "bigint", "regular")),
    )
    assert alias_clashes(spec)


def test_config_carries_credentials_and_contact_points(tmp_path):
    ep = Endpoint("Target", ("10.0.0.1", "10.0.0.2:9043"), username="u", password='p"w', local_dc="dc1")
    text = config_text(ep, log_dir=tmp_path, rate=500)
    assert 'basic.contact-points = ["10.0.0.1:9042", "10.0.0.2:9043"]' in text
    assert 'password = "p\\"w"' in text
    assert 'local-datacenter = "dc1"' in text
    assert "executor.maxPerSecond = 500" in text
    assert 'p"w' not in repr(ep)


def test_find_launcher_errors(tmp_path):
    with pytest.raises(PreflightError, match="not found or not executable"):
        find_launcher(str(tmp_path / "missing"), tmp_path)
