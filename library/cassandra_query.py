#!/usr/bin/python
# Read-only CQL query through cassandra-driver: health probes and verification.

from __future__ import annotations

import datetime
import decimal
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.cassandra_client import CONNECTION_ARGS, connect, require_driver

DOCUMENTATION = r"""
module: cassandra_query
short_description: Run a read-only CQL query and return its rows
description:
  - Logs in (falling back to a second role when the first is refused), runs one SELECT and
    returns the rows. Never changes anything, so it also runs in check mode.
  - With O(pin_first_host) the query is coordinated by the first host only, which makes it a
    probe of that node's CQL readiness.
options:
  query:
    description: A SELECT statement; C(%s) placeholders take O(parameters).
    type: str
    required: true
  parameters:
    description: Values for the placeholders.
    type: list
    elements: raw
    default: []
  consistency:
    description: Consistency level of the query.
    type: str
    default: LOCAL_ONE
    choices: [ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ALL]
  # connection options: see module_utils/cassandra_client.py CONNECTION_DOC
requirements: [cassandra-driver]
"""

EXAMPLES = r"""
- name: Read the release version from node 1
  cassandra_query:
    hosts: [172.30.90.11]
    pin_first_host: true
    login_user: cassandra
    login_password: "{{ cassandra_admin_password }}"
    query: SELECT release_version FROM system.local
"""

RETURN = r"""
rows:
  description: The rows, each a dict; values that are not JSON types are strings.
  type: list
  returned: success
coordinator:
  description: Address of the node that coordinated the query.
  type: str
  returned: success
login:
  description: Which credentials worked, C(login) or C(fallback).
  type: str
  returned: success
"""


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__iter__"):  # lists, tuples, sets and the driver's SortedSet
        return [_plain(v) for v in value]
    return str(value)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CONNECTION_ARGS,
            query=dict(type="str", required=True),
            parameters=dict(type="list", elements="raw", default=[]),
            consistency=dict(
                type="str", default="LOCAL_ONE", choices=["ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "ALL"]
            ),
        ),
        supports_check_mode=True,
    )
    require_driver(module)
    query = module.params["query"].strip().rstrip(";")
    if not query.lower().startswith("select"):
        module.fail_json(msg=f"cassandra_query runs SELECT statements only, not: {query[:60]}")
    from cassandra.query import dict_factory

    cluster, session, which = connect(module, consistency=module.params["consistency"], row_factory=dict_factory)
    try:
        result = session.execute(query, module.params["parameters"] or None)
        rows = [{key: _plain(val) for key, val in row.items()} for row in result]
        coordinator = str(result.response_future.coordinator_host)
    except Exception as exc:
        module.fail_json(msg=f"query failed: {exc}", query=query)
    finally:
        cluster.shutdown()
    module.exit_json(changed=False, rows=rows, coordinator=coordinator, login=which)


if __name__ == "__main__":
    main()
