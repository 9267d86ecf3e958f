"""Pure parts of the CQL modules: CQL splitting, classification and rendering.

The modules import their shared code as ``ansible.module_utils.cassandra_client`` (Ansible
ships it to the node that way); here it is registered under that name from the project's file.
"""

from __future__ import annotations

import datetime
import importlib.util
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "cassandra"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


client = _load("ansible.module_utils.cassandra_client", ROOT / "module_utils" / "cassandra_client.py")
schema = _load("cassandra_schema_module", ROLE / "library" / "cassandra_schema.py")
auth = _load("cassandra_auth_module", ROLE / "library" / "cassandra_auth.py")
query = _load("cassandra_query_module", ROOT / "library" / "cassandra_query.py")


class TestQuoting:
    def test_identifiers_are_always_double_quoted(self):
        assert client.quote_ident("user") == '"user"'
        assert client.quote_ident("MixedCase") == '"MixedCase"'
        assert client.quote_ident('a"b') == '"a""b"'

    def test_literals(self):
        assert client.quote_literal("it's") == "'it''s'"
        assert client.quote_literal(True) == "true"
        assert client.quote_literal(3) == "3"
        assert (
            client.quote_literal({"class": "NetworkTopologyStrategy", "dc1": 2})
            == "{'class': 'NetworkTopologyStrategy', 'dc1': 2}"
        )


class TestSplitStatements:
    def test_comments_go_and_semicolons_in_strings_stay(self):
        text = """
        -- the demo keyspace
        CREATE KEYSPACE k WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};
        /* a block
           comment; with a semicolon */
        CREATE TABLE k.t (id int PRIMARY KEY, note text) WITH comment = 'a; b';  // trailing
        """
        statements = schema.split_statements(text)
        assert len(statements) == 2
        assert statements[0].startswith("CREATE KEYSPACE k")
        assert statements[1].endswith("WITH comment = 'a; b'")

    def test_quoted_names_and_function_bodies_are_kept_whole(self):
        text = 'CREATE TABLE "My;Table" (id int PRIMARY KEY); CREATE FUNCTION f() AS $$ a; b $$;'
        assert schema.split_statements(text) == [
            'CREATE TABLE "My;Table" (id int PRIMARY KEY)',
            "CREATE FUNCTION f() AS $$ a; b $$",
        ]

    def test_doubled_quotes_inside_strings(self):
        assert schema.split_statements("INSERT x 'it''s; fine'; USE k") == ["INSERT x 'it''s; fine'", "USE k"]


class TestClassify:
    @pytest.mark.parametrize(
        ("statement", "expected"),
        [
            ("CREATE KEYSPACE IF NOT EXISTS ZdmApp WITH replication = {}", ("keyspace", "zdmapp", None, None)),
            ('CREATE KEYSPACE "ZdmApp" WITH replication = {}', ("keyspace", "ZdmApp", None, None)),
            ("CREATE TABLE ks.t (id int PRIMARY KEY)", ("table", "ks", "t", None)),
            ("create table t (id int primary key)", ("table", "current", "t", None)),
            ("CREATE TYPE IF NOT EXISTS addr (street text)", ("type", "current", "addr", None)),
            ("CREATE INDEX ON ks.t (note)", ("index", "ks", "t_note_idx", "t")),
            ("CREATE CUSTOM INDEX note_sai ON t (note) USING 'sai'", ("index", "current", "note_sai", "t")),
            ("CREATE INDEX ON t (keys(tags))", ("index", "current", "t_tags_idx", "t")),
            ("CREATE MATERIALIZED VIEW ks.v AS SELECT * FROM ks.t", ("view", "ks", "v", None)),
            ("USE other", ("use", "other", None, None)),
        ],
    )
    def test_objects_are_recognised(self, statement, expected):
        assert schema.classify(statement, "current") == expected

    @pytest.mark.parametrize("statement", ["INSERT INTO t (a) VALUES (1)", "DROP TABLE t", "ALTER TABLE t ADD x int"])
    def test_only_create_and_use_are_accepted(self, statement):
        with pytest.raises(ValueError, match="not a CREATE"):
            schema.classify(statement, "ks")

    def test_if_not_exists_is_added_once(self):
        assert schema.with_if_not_exists("CREATE TABLE t (a int PRIMARY KEY)") == (
            "CREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY)"
        )
        assert schema.with_if_not_exists("CREATE CUSTOM INDEX i ON t (a)").startswith("CREATE CUSTOM INDEX IF NOT")
        already = "CREATE TYPE IF NOT EXISTS a (b text)"
        assert schema.with_if_not_exists(already) == already


LAB_TABLE = {
    "keyspace": "zdmapp",
    "name": "user_status",
    "columns": [
        {"name": "user", "type": "text"},
        {"name": "when", "type": "timestamp"},
        {"name": "status", "type": "text"},
    ],
    "partition_key": ["user"],
    "clustering_key": ["when"],
    "clustering_order": {"when": "desc"},
}


class TestTableCql:
    def test_the_lab_table(self):
        assert schema.table_cql(LAB_TABLE) == (
            'CREATE TABLE IF NOT EXISTS "zdmapp"."user_status" ("user" text, "when" timestamp, "status" text, '
            'PRIMARY KEY (("user"), "when")) WITH CLUSTERING ORDER BY ("when" DESC)'
        )

    def test_options_and_a_composite_partition_key(self):
        spec = {
            "keyspace": "k",
            "name": "t",
            "columns": [{"name": "a", "type": "int"}, {"name": "b", "type": "int"}],
            "partition_key": ["a", "b"],
            "options": {"comment": "x", "default_time_to_live": 60},
        }
        assert schema.table_cql(spec) == (
            'CREATE TABLE IF NOT EXISTS "k"."t" ("a" int, "b" int, PRIMARY KEY (("a", "b"))) '
            "WITH comment = 'x' AND default_time_to_live = 60"
        )

    def test_a_table_without_partition_key_is_refused(self):
        spec = dict(LAB_TABLE, partition_key=[])
        with pytest.raises(ValueError, match="partition_key"):
            schema.table_cql(spec)


class TestReplication:
    def test_class_names_and_values_are_normalised(self):
        live = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "2"}
        assert schema.normalise_replication(live) == schema.normalise_replication(
            {"class": "NetworkTopologyStrategy", "dc1": 2}
        )


class TestResources:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("ALL KEYSPACES", ("ALL KEYSPACES", "<all keyspaces>", "all keyspaces")),
            ("keyspace zdmapp", ('KEYSPACE "zdmapp"', "<keyspace zdmapp>", "keyspace")),
            ("TABLE zdmapp.user_status", ('TABLE "zdmapp"."user_status"', "<table zdmapp.user_status>", "table")),
            ("ROLE app", ('ROLE "app"', "<role app>", "role")),
        ],
    )
    def test_resources_map_to_their_listed_form(self, text, expected):
        assert auth._resource(text) == expected

    @pytest.mark.parametrize("text", ["KEYSPACES", "TABLE only_a_table", "FUNCTION f"])
    def test_unknown_resources_are_refused(self, text):
        with pytest.raises(ValueError):
            auth._resource(text)


class TestPlainValues:
    def test_driver_values_become_json_types(self):
        when = datetime.datetime(2024, 5, 6, 8, 0)
        ident = uuid.UUID(int=1)
        assert query._plain(when) == "2024-05-06T08:00:00"
        assert query._plain(ident) == str(ident)
        assert query._plain(b"\x01\x02") == "0x0102"
        assert query._plain({"a": frozenset([1])}) == {"a": [1]}
        assert query._plain(None) is None


class TestTlsContext:
    @pytest.fixture
    def pem(self, tmp_path: Path) -> tuple[Path, Path]:
        import subprocess

        key, cert = tmp_path / "node.key", tmp_path / "node.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=node",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        return key, cert

    def test_no_files_means_plaintext(self):
        assert client.ssl_context({"ssl_ca_file": None, "ssl_cert_file": ""}) is None

    def test_a_ca_means_verified_peers_by_chain_not_name(self, pem):
        import ssl

        _key, cert = pem
        ctx = client.ssl_context({"ssl_ca_file": str(cert)})
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.check_hostname is False

    def test_a_combined_key_and_certificate_file_is_a_client_certificate(self, pem, tmp_path):
        import ssl

        key, cert = pem
        combined = tmp_path / "combined.pem"
        combined.write_text(key.read_text() + "\n" + cert.read_text())
        ctx = client.ssl_context({"ssl_ca_file": str(cert), "ssl_cert_file": str(combined)})
        assert ctx.verify_mode == ssl.CERT_REQUIRED

    def test_a_certificate_without_its_key_is_refused(self, pem):
        import ssl

        _key, cert = pem
        with pytest.raises(ssl.SSLError):
            client.ssl_context({"ssl_cert_file": str(cert)})
