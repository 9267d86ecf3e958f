#!/usr/bin/python
# Schema as data: keyspaces, tables, CQL files, a copy of another cluster's schema, seed rows.

from __future__ import annotations

import json
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.cassandra_client import (
    CONNECTION_ARGS,
    connect,
    open_session,
    quote_ident,
    quote_literal,
    require_driver,
)

DOCUMENTATION = r"""
module: cassandra_schema
short_description: Create keyspaces, types, tables, indexes and seed rows that are missing
description:
  - Compares the declared schema with the cluster's live schema and creates only what is
    missing, in this order - keyspaces, the schema copied from another cluster, CQL files,
    declared tables, seed rows. Reports changed only when something was created.
  - Existing objects are never dropped or rewritten. A keyspace whose replication differs is
    reported (O(replication_mismatch=warn)), altered (V(alter)) or refused (V(fail)).
  - A seed row is inserted only when no row with its primary key exists.
  - Supports check mode (reads the live schema, writes nothing).
options:
  keyspaces:
    description: C({name, replication, durable_writes}); replication as a map, e.g.
      C({class: NetworkTopologyStrategy, dc1: 2}).
    type: list
    elements: dict
    default: []
  tables:
    description: C({keyspace, name, columns: [{name, type}], partition_key, clustering_key,
      clustering_order, options}).
    type: list
    elements: dict
    default: []
  statements:
    description: CQL text (the content of schema files). CREATE KEYSPACE, TYPE, TABLE, INDEX and
      MATERIALIZED VIEW statements and USE are accepted; each runs only when its object is missing.
    type: list
    elements: str
    default: []
  rows:
    description: C({keyspace, table, rows}); each row a map of column to value (timestamps as
      ISO 8601 strings).
    type: list
    elements: dict
    default: []
  copy_from:
    description: Another cluster whose schema (types, tables, indexes, views) of O(copy_from.keyspaces)
      is created here when missing; its connection options are those of this module but for TLS,
      which it has only with its own O(copy_from.ssl_ca_file) and O(copy_from.ssl_cert_file). The keyspaces
      themselves must be declared in O(keyspaces), with this cluster's replication.
    type: dict
  replication_mismatch:
    description: What to do with an existing keyspace whose replication differs.
    type: str
    default: warn
    choices: [warn, alter, fail]
  # connection options: see module_utils/cassandra_client.py CONNECTION_DOC
requirements: [cassandra-driver]
"""

EXAMPLES = r"""
- name: Create the demo keyspace and table
  cassandra_schema:
    hosts: [172.30.90.11]
    login_user: cassandra
    login_password: cassandra
    keyspaces:
      - name: zdmapp
        replication: {class: NetworkTopologyStrategy, dc1: 2}
    tables:
      - keyspace: zdmapp
        name: user_status
        columns: [{name: user, type: text}, {name: when, type: timestamp}, {name: status, type: text}]
        partition_key: [user]
        clustering_key: [when]
        clustering_order: {when: DESC}
"""

RETURN = r"""
created:
  description: Objects created (or that would be in check mode), e.g. C(table zdmapp.user_status).
  type: list
  elements: str
  returned: always
inserted:
  description: Number of seed rows inserted.
  type: int
  returned: always
"""

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*)'
_QNAME = rf"(?:({_IDENT})\.)?({_IDENT})"
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
_CREATE = {
    "keyspace": re.compile(rf"^CREATE\s+KEYSPACE\s+{_IF_NOT_EXISTS}({_IDENT})", re.I),
    "type": re.compile(rf"^CREATE\s+TYPE\s+{_IF_NOT_EXISTS}{_QNAME}", re.I),
    "table": re.compile(rf"^CREATE\s+(?:TABLE|COLUMNFAMILY)\s+{_IF_NOT_EXISTS}{_QNAME}", re.I),
    "view": re.compile(rf"^CREATE\s+MATERIALIZED\s+VIEW\s+{_IF_NOT_EXISTS}{_QNAME}", re.I),
    "index": re.compile(
        rf"^CREATE\s+(?:CUSTOM\s+)?INDEX\s+{_IF_NOT_EXISTS}({_IDENT})?\s*ON\s+{_QNAME}\s*\(\s*(?:\w+\s*\(\s*)?({_IDENT})",
        re.I,
    ),
}
_USE = re.compile(rf"^USE\s+({_IDENT})\s*$", re.I)
# Table options older releases export and Cassandra 4.0 and later refuse.
_REMOVED_OPTIONS = re.compile(r"\s+AND\s+(?:dclocal_)?read_repair_chance\s*=\s*[0-9.]+", re.I)


def unquote(ident):
    """CQL identifier as stored: quoted keeps case, bare is lower-cased."""
    if ident is None:
        return None
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident.lower()


def split_statements(text):
    """Split CQL text on semicolons outside strings, quoted names and comments; drop comments."""
    statements, buf, i, n = [], [], 0, len(text)
    while i < n:
        ch, two = text[i], text[i : i + 2]
        if two in ("--", "//"):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if two == "/*":
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if two == "$$":
            end = text.find("$$", i + 2)
            end = n if end < 0 else end + 2
            buf.append(text[i:end])
            i = end
            continue
        if ch in "'\"":
            j = i + 1
            while j < n:
                if text[j] == ch and text[j + 1 : j + 2] == ch:
                    j += 2
                    continue
                if text[j] == ch:
                    break
                j += 1
            buf.append(text[i : j + 1])
            i = j + 1
            continue
        if ch == ";":
            statements.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    statements.append("".join(buf).strip())
    return [stmt for stmt in statements if stmt]


def classify(statement, keyspace):
    """Return (kind, keyspace, name, extra) of a CREATE statement, or ('use', ks, None, None)."""
    use = _USE.match(statement)
    if use:
        return "use", unquote(use.group(1)), None, None
    match = _CREATE["keyspace"].match(statement)
    if match:
        return "keyspace", unquote(match.group(1)), None, None
    for kind in ("type", "table", "view"):
        match = _CREATE[kind].match(statement)
        if match:
            return kind, unquote(match.group(1)) or keyspace, unquote(match.group(2)), None
    match = _CREATE["index"].match(statement)
    if match:
        table = unquote(match.group(3))
        name = unquote(match.group(1)) or f"{table}_{unquote(match.group(4))}_idx"
        return "index", unquote(match.group(2)) or keyspace, name, table
    raise ValueError(f"not a CREATE KEYSPACE/TYPE/TABLE/INDEX/MATERIALIZED VIEW or USE statement: {statement[:80]}")


def with_if_not_exists(statement):
    """Add IF NOT EXISTS to a CREATE statement that lacks it."""
    if re.search(r"\bIF\s+NOT\s+EXISTS\b", statement[:200], re.I):
        return statement
    return re.sub(
        r"^(CREATE\s+(?:CUSTOM\s+)?(?:KEYSPACE|TYPE|TABLE|COLUMNFAMILY|INDEX|MATERIALIZED\s+VIEW))\b",
        r"\1 IF NOT EXISTS",
        statement,
        count=1,
        flags=re.I,
    )


def table_cql(spec):
    """CREATE TABLE IF NOT EXISTS statement of a declared table."""
    for key in ("keyspace", "name", "columns", "partition_key"):
        if not spec.get(key):
            raise ValueError(f"table {spec.get('keyspace')}.{spec.get('name')}: '{key}' is required")
    columns = [f"{quote_ident(col['name'])} {col['type']}" for col in spec["columns"]]
    partition = ", ".join(quote_ident(col) for col in spec["partition_key"])
    clustering = [quote_ident(col) for col in spec.get("clustering_key") or []]
    primary = ", ".join([f"({partition})", *clustering])
    options = []
    order = spec.get("clustering_order") or {}
    if order:
        options.append(
            "CLUSTERING ORDER BY ({})".format(
                ", ".join(f"{quote_ident(col)} {str(direction).upper()}" for col, direction in order.items())
            )
        )
    for key, value in (spec.get("options") or {}).items():
        options.append(f"{key} = {quote_literal(value)}")
    cql = (
        f"CREATE TABLE IF NOT EXISTS {quote_ident(spec['keyspace'])}.{quote_ident(spec['name'])} "
        f"({', '.join(columns)}, PRIMARY KEY ({primary}))"
    )
    if options:
        cql += " WITH " + " AND ".join(options)
    return cql


def normalise_replication(replication):
    replication = {str(k): str(v) for k, v in (replication or {}).items()}
    replication["class"] = replication.get("class", "").rsplit(".", 1)[-1]
    return replication


class Schema:
    def __init__(self, module, cluster, session):
        self.module = module
        self.cluster = cluster
        self.session = session
        self.check = module.check_mode
        self.created = []
        self.inserted = 0
        self.warnings = []

    @property
    def meta(self):
        return self.cluster.metadata.keyspaces

    def _exists(self, kind, keyspace, name=None, table=None):
        ks = self.meta.get(keyspace)
        if kind == "keyspace":
            return ks is not None
        if ks is None:
            return False
        if kind == "type":
            return name in ks.user_types
        if kind == "table":
            return name in ks.tables
        if kind == "view":
            return name in ks.views
        if kind == "index":
            return name in ks.indexes
        raise ValueError(kind)

    def _create(self, label, statement):
        self.created.append(label)
        if not self.check:
            self.session.execute(statement)

    def keyspace(self, spec):
        name = spec["name"]
        replication = spec.get("replication") or {}
        if not replication.get("class"):
            self.module.fail_json(msg=f"keyspace {name}: replication needs a class")
        cql_replication = quote_literal({str(k): v for k, v in replication.items()})
        durable = spec.get("durable_writes", True)
        if not self._exists("keyspace", name):
            self._create(
                f"keyspace {name}",
                f"CREATE KEYSPACE IF NOT EXISTS {quote_ident(name)} WITH replication = {cql_replication}"
                f" AND durable_writes = {quote_literal(bool(durable))}",
            )
            return
        current = normalise_replication(self._live_replication(name))
        if current == normalise_replication(replication):
            return
        policy = self.module.params["replication_mismatch"]
        message = f"keyspace {name} has replication {current}, declared {normalise_replication(replication)}"
        if policy == "fail":
            self.module.fail_json(msg=message + " (replication_mismatch: fail)")
        if policy == "warn":
            self.warnings.append(message + "; not altered (a change of replication needs a repair)")
            return
        self.created.append(f"replication of keyspace {name}")
        if not self.check:
            self.session.execute(f"ALTER KEYSPACE {quote_ident(name)} WITH replication = {cql_replication}")

    def _live_replication(self, name):
        row = self.session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [name]
        ).one()
        return dict(row.replication) if row else {}

    def statement(self, statement, keyspace):
        """Run one CREATE statement when its object is missing; return the keyspace USE selects."""
        kind, ks, name, table = classify(statement, keyspace)
        if kind == "use":
            return ks
        if kind != "keyspace" and not ks:
            raise ValueError(f"no keyspace for {kind} {name}: qualify the name or add USE")
        label = f"{kind} {ks}" if kind == "keyspace" else f"{kind} {ks}.{name}"
        if ks.startswith("system"):
            raise ValueError(f"refusing to create {label} in a system keyspace")
        if self._exists(kind, ks, name, table):
            return keyspace
        if kind != "keyspace" and not self.check:
            if not self._exists("keyspace", ks):
                raise ValueError(f"{label}: keyspace {ks} does not exist")
            # Unqualified names in the statement refer to the keyspace of the last USE.
            self.session.set_keyspace(ks)
        self._create(label, with_if_not_exists(statement))
        return keyspace

    def copy_from(self, source):
        params = dict(self.module.params, pin_first_host=False)
        params.update({k: v for k, v in source.items() if k != "keyspaces" and v is not None})
        # The source has TLS settings of its own: none given means plaintext, not this cluster's.
        for key in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            params[key] = source.get(key)
        try:
            cluster, _session = open_session(
                params, params["login_user"], params["login_password"], consistency="LOCAL_ONE"
            )
        except Exception as exc:
            self.module.fail_json(msg=f"cannot read the schema of {', '.join(params['hosts'])}: {exc}")
        try:
            for ks_name in source.get("keyspaces") or []:
                ks = cluster.metadata.keyspaces.get(ks_name)
                if ks is None:
                    self.module.fail_json(msg=f"copy_from: keyspace {ks_name} does not exist on the source cluster")
                if not self._exists("keyspace", ks_name) and not self.check:
                    self.module.fail_json(
                        msg=f"copy_from: declare keyspace {ks_name} in keyspaces (this "
                        "cluster's replication) before copying its schema"
                    )
                for type_cql in ks.user_type_strings():
                    self.statement(type_cql, ks_name)
                for table in ks.tables.values():
                    if not self._exists("table", ks_name, table.name):
                        self._create(
                            f"table {ks_name}.{table.name}",
                            with_if_not_exists(_REMOVED_OPTIONS.sub("", table.as_cql_query())),
                        )
                    for index in table.indexes.values():
                        if not self._exists("index", ks_name, index.name):
                            self._create(f"index {ks_name}.{index.name}", with_if_not_exists(index.as_cql_query()))
                for view in ks.views.values():
                    if not self._exists("view", ks_name, view.name):
                        self._create(
                            f"view {ks_name}.{view.name}",
                            with_if_not_exists(_REMOVED_OPTIONS.sub("", view.as_cql_query())),
                        )
        finally:
            cluster.shutdown()

    def table(self, spec):
        if self._exists("table", spec["keyspace"], spec["name"]):
            live = self.meta[spec["keyspace"]].tables[spec["name"]].columns
            for col in spec["columns"]:
                have = live.get(col["name"])
                if have is None or have.cql_type.replace(" ", "") != str(col["type"]).replace(" ", "").lower():
                    self.warnings.append(
                        f"table {spec['keyspace']}.{spec['name']}: column {col['name']} is "
                        f"{have.cql_type if have else 'missing'}, declared {col['type']}; not altered"
                    )
            return
        self._create(f"table {spec['keyspace']}.{spec['name']}", table_cql(spec))

    def rows(self, spec):
        keyspace, table = spec["keyspace"], spec["table"]
        if not self._exists("table", keyspace, table):
            if self.check:
                self.inserted += len(spec.get("rows") or [])
                return
            self.module.fail_json(msg=f"seed rows: table {keyspace}.{table} does not exist")
        meta = self.meta[keyspace].tables[table]
        key = [col.name for col in meta.primary_key]
        target = f"{quote_ident(keyspace)}.{quote_ident(table)}"
        where = " AND ".join(f"{quote_ident(col)} = fromJson(%s)" for col in key)
        for row in spec.get("rows") or []:
            missing = [col for col in key if col not in row]
            if missing:
                self.module.fail_json(msg=f"seed row {row} for {keyspace}.{table} lacks key column(s) {missing}")
            # Names are quoted identifiers and values are bound: nothing here is injected.
            query = f"SELECT {quote_ident(key[0])} FROM {target} WHERE {where}"  # noqa: S608
            found = self.session.execute(query, [json.dumps(row[col]) for col in key]).one()
            if found is not None:
                continue
            self.inserted += 1
            if not self.check:
                self.session.execute(f"INSERT INTO {target} JSON %s", [json.dumps(row)])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            keyspaces=dict(type="list", elements="dict", default=[]),
            tables=dict(type="list", elements="dict", default=[]),
            statements=dict(type="list", elements="str", default=[]),
            rows=dict(type="list", elements="dict", default=[]),
            copy_from=dict(
                type="dict",
                options=dict(
                    hosts=dict(type="list", elements="str", required=True),
                    port=dict(type="int", default=9042),
                    login_user=dict(type="str", required=True),
                    login_password=dict(type="str", required=True, no_log=True),
                    local_dc=dict(type="str"),
                    ssl_ca_file=dict(type="path"),
                    ssl_cert_file=dict(type="path"),
                    ssl_key_file=dict(type="path", no_log=False),
                    keyspaces=dict(type="list", elements="str", required=True),
                ),
            ),
            replication_mismatch=dict(type="str", default="warn", choices=["warn", "alter", "fail"]),
        ),
        supports_check_mode=True,
    )
    require_driver(module)
    cluster, session, _which = connect(module)
    schema = Schema(module, cluster, session)
    try:
        cluster.refresh_schema_metadata()
        for spec in module.params["keyspaces"]:
            schema.keyspace(spec)
        if module.params["copy_from"]:
            schema.copy_from(module.params["copy_from"])
        for text in module.params["statements"]:
            keyspace = None
            for statement in split_statements(text):
                keyspace = schema.statement(statement, keyspace)
        for spec in module.params["tables"]:
            schema.table(spec)
        for spec in module.params["rows"]:
            schema.rows(spec)
    except ValueError as exc:
        module.fail_json(msg=str(exc), created=schema.created)
    except Exception as exc:
        module.fail_json(msg=f"{type(exc).__name__}: {exc}", created=schema.created)
    finally:
        cluster.shutdown()
    for warning in schema.warnings:
        module.warn(warning)
    module.exit_json(changed=bool(schema.created or schema.inserted), created=schema.created, inserted=schema.inserted)


if __name__ == "__main__":
    main()
