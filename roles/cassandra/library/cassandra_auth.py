#!/usr/bin/python
# Superuser password, system_auth replication, application roles and their permissions.

from __future__ import annotations

import re
import time
from collections import Counter

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.cassandra_client import (
    CONNECTION_ARGS,
    LoginRefused,
    can_login,
    connect,
    open_session,
    quote_ident,
    quote_literal,
    require_driver,
)

DOCUMENTATION = r"""
module: cassandra_auth
short_description: Set the admin password, system_auth replication, roles and grants
description:
  - Logs in as O(admin_user). When that login is refused and the fallback (default superuser)
    login works, sets the admin password (creating O(admin_user) first when it is another role).
  - Puts system_auth on O(system_auth_replication) when it differs.
  - Creates the O(roles) that are missing, corrects their login and superuser flags, sets the
    password of a role only when a login with it is refused, and grants missing permissions.
    Nothing is revoked.
  - Reports changed only when something was created, altered or granted; supports check mode.
options:
  admin_user:
    description: Superuser the cluster is administered with.
    type: str
    required: true
  admin_password:
    description: Its password.
    type: str
    required: true
  system_auth_replication:
    description: Replication map of system_auth, e.g. C({class: NetworkTopologyStrategy, dc1: 3}); empty leaves it,
      unless O(system_auth_auto).
    type: dict
    default: {}
  system_auth_auto:
    description: When O(system_auth_replication) is empty, replicate system_auth to every data centre of the
      live cluster with min(3, its node count).
    type: bool
    default: false
  roles:
    description: Roles, each C({name, password, login, superuser, permissions}); C(permissions) items are
      C({permission, resource}) with resources such as C(KEYSPACE ks), C(TABLE ks.t), C(ALL KEYSPACES).
    type: list
    elements: dict
    default: []
  # connection options: see module_utils/cassandra_client.py CONNECTION_DOC; login_user and
  # login_password are the admin's, fallback_* the default superuser's.
requirements: [cassandra-driver]
"""

EXAMPLES = r"""
- name: Set the admin password and the application role
  cassandra_auth:
    hosts: [172.30.90.11, 172.30.90.12]
    login_user: admin
    login_password: "{{ vault_admin_password }}"
    fallback_user: cassandra
    fallback_password: cassandra
    admin_user: admin
    admin_password: "{{ vault_admin_password }}"
    roles:
      - name: zdmapp
        password: "{{ vault_zdmapp_password }}"
        permissions:
          - {permission: SELECT, resource: KEYSPACE zdmapp}
          - {permission: MODIFY, resource: KEYSPACE zdmapp}
"""

RETURN = r"""
actions:
  description: What was done (or would be done in check mode), without secrets.
  type: list
  elements: str
  returned: always
system_auth_altered:
  description: Whether the replication of system_auth changed (a repair of system_auth should follow).
  type: bool
  returned: always
"""

# Permissions GRANT ALL gives on each kind of resource (Cassandra 5.0).
_ALL = {
    "all keyspaces": {"CREATE", "ALTER", "DROP", "SELECT", "MODIFY", "AUTHORIZE", "UNMASK", "SELECT_MASKED"},
    "keyspace": {"CREATE", "ALTER", "DROP", "SELECT", "MODIFY", "AUTHORIZE", "UNMASK", "SELECT_MASKED"},
    "table": {"ALTER", "DROP", "SELECT", "MODIFY", "AUTHORIZE", "UNMASK", "SELECT_MASKED"},
    "all roles": {"CREATE", "ALTER", "DROP", "AUTHORIZE", "DESCRIBE"},
    "role": {"ALTER", "DROP", "AUTHORIZE"},
}
_RESOURCE = re.compile(r"^\s*(ALL\s+KEYSPACES|ALL\s+ROLES|KEYSPACE\s+(\S+)|TABLE\s+(\S+)|ROLE\s+(\S+))\s*$", re.I)


def _resource(text):
    """('KEYSPACE zdmapp') -> (cql, listed form, kind): ('KEYSPACE "zdmapp"', '<keyspace zdmapp>', 'keyspace')."""
    match = _RESOURCE.match(text)
    if not match:
        raise ValueError(f"unknown resource {text!r} (use ALL KEYSPACES, KEYSPACE ks, TABLE ks.t, ALL ROLES, ROLE r)")
    head = " ".join(match.group(1).split()[:2]).lower()
    if head in ("all keyspaces", "all roles"):
        return head.upper(), f"<{head}>", head
    if match.group(2):
        return f"KEYSPACE {quote_ident(match.group(2))}", f"<keyspace {match.group(2)}>", "keyspace"
    if match.group(3):
        keyspace, _, table = match.group(3).partition(".")
        if not table:
            raise ValueError(f"table resource {text!r} needs keyspace.table")
        return (f"TABLE {quote_ident(keyspace)}.{quote_ident(table)}", f"<table {keyspace}.{table}>", "table")
    return f"ROLE {quote_ident(match.group(4))}", f"<role {match.group(4)}>", "role"


class Auth:
    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.actions = []
        self.changed = False
        self.session = None

    def run(self, statement, action, params=None):
        self.actions.append(action)
        self.changed = True
        if not self.check:
            self.session.execute(statement, params)

    def ensure_admin(self):
        p = self.module.params
        params = dict(p, login_user=p["admin_user"], login_password=p["admin_password"])
        self.module.params = params
        cluster, session, which = connect(self.module)
        self.session = session
        if which == "login":
            return cluster
        admin = quote_ident(p["admin_user"])
        exists = (
            p["admin_user"] == p["fallback_user"]
            or self.session.execute("SELECT role FROM system_auth.roles WHERE role = %s", [p["admin_user"]]).one()
        )
        if exists:
            self.run(
                f"ALTER ROLE {admin} WITH PASSWORD = %s",
                f"set the password of the admin role {p['admin_user']}",
                [p["admin_password"]],
            )
        else:
            # One statement: Cassandra refuses a second password change within seconds.
            self.run(
                f"CREATE ROLE {admin} WITH SUPERUSER = true AND LOGIN = true AND PASSWORD = %s",
                f"create the admin role {p['admin_user']}",
                [p["admin_password"]],
            )
        if self.check:
            return cluster
        # Continue as the admin. Other nodes may hold the old password in their credentials
        # cache for a few seconds (credentials_validity), so the new login is retried.
        cluster.shutdown()
        for attempt in range(15):
            try:
                cluster, self.session = open_session(p, p["admin_user"], p["admin_password"])
                return cluster
            except LoginRefused:
                if attempt == 14:
                    raise
                time.sleep(2)
        return cluster

    def ensure_system_auth(self, cluster):
        wanted = {str(k): str(v) for k, v in self.module.params["system_auth_replication"].items()}
        if not wanted and self.module.params["system_auth_auto"]:
            sizes = Counter(host.datacenter for host in cluster.metadata.all_hosts() if host.datacenter)
            wanted = {"class": "NetworkTopologyStrategy", **{dc: str(min(3, n)) for dc, n in sizes.items()}}
        if not wanted:
            return False
        row = self.session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'system_auth'"
        ).one()
        current = dict(row.replication)
        current_class = current.pop("class", "").rsplit(".", 1)[-1]
        wanted_class = wanted.pop("class", "NetworkTopologyStrategy").rsplit(".", 1)[-1]
        if current_class == wanted_class and current == wanted:
            return False
        replication = dict({"class": wanted_class}, **wanted)
        self.run(
            f"ALTER KEYSPACE system_auth WITH replication = {quote_literal(replication)}",
            f"set system_auth replication to {replication}",
        )
        return True

    def ensure_role(self, spec):
        name = spec["name"]
        login = bool(spec.get("login", True))
        superuser = bool(spec.get("superuser", False))
        password = spec.get("password")
        if login and not password:
            self.module.fail_json(msg=f"role {name}: login roles need a password")
        row = self.session.execute(
            "SELECT can_login, is_superuser FROM system_auth.roles WHERE role = %s", [name]
        ).one()
        ident = quote_ident(name)
        if row is None:
            options = [f"LOGIN = {quote_literal(login)}", f"SUPERUSER = {quote_literal(superuser)}"]
            params = []
            if password:
                options.append("PASSWORD = %s")
                params.append(password)
            self.run(f"CREATE ROLE IF NOT EXISTS {ident} WITH {' AND '.join(options)}", f"create role {name}", params)
        else:
            if (row.can_login, row.is_superuser) != (login, superuser):
                self.run(
                    f"ALTER ROLE {ident} WITH LOGIN = {quote_literal(login)} "
                    f"AND SUPERUSER = {quote_literal(superuser)}",
                    f"set login={login} superuser={superuser} on role {name}",
                )
            # A refused login is the only way to learn that a password differs.
            if login and password and not can_login(self.module.params, name, password):
                self.run(f"ALTER ROLE {ident} WITH PASSWORD = %s", f"set the password of role {name}", [password])
        self.ensure_permissions(name, spec.get("permissions") or [], exists=row is not None)

    def ensure_permissions(self, name, permissions, exists):
        granted = set()
        if exists:
            for row in self.session.execute(f"LIST ALL PERMISSIONS OF {quote_ident(name)} NORECURSIVE"):
                granted.add((row.resource, row.permission))
        for item in permissions:
            try:
                cql_resource, listed, kind = _resource(item["resource"])
            except (KeyError, ValueError) as exc:
                self.module.fail_json(msg=f"role {name}: {exc}")
            permission = str(item.get("permission", "")).upper()
            wanted = _ALL[kind] if permission in ("ALL", "ALL PERMISSIONS") else {permission}
            missing = {perm for perm in wanted if (listed, perm) not in granted}
            if not missing:
                continue
            grant = "ALL PERMISSIONS" if permission.startswith("ALL") else permission
            self.run(
                f"GRANT {grant} ON {cql_resource} TO {quote_ident(name)}",
                f"grant {grant} on {item['resource']} to {name}",
            )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            admin_user=dict(type="str", required=True),
            admin_password=dict(type="str", required=True, no_log=True),
            system_auth_replication=dict(type="dict", default={}),
            system_auth_auto=dict(type="bool", default=False),
            roles=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    password=dict(type="str", no_log=True),
                    login=dict(type="bool", default=True),
                    superuser=dict(type="bool", default=False),
                    permissions=dict(
                        type="list",
                        elements="dict",
                        default=[],
                        options=dict(
                            permission=dict(type="str", required=True),
                            resource=dict(type="str", required=True),
                        ),
                    ),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    require_driver(module)
    auth = Auth(module)
    cluster = auth.ensure_admin()
    try:
        altered = auth.ensure_system_auth(cluster)
        for spec in module.params["roles"]:
            auth.ensure_role(spec)
    except Exception as exc:
        module.fail_json(msg=f"{type(exc).__name__}: {exc}", actions=auth.actions)
    finally:
        cluster.shutdown()
    module.exit_json(changed=auth.changed, actions=auth.actions, system_auth_altered=altered)


if __name__ == "__main__":
    main()
