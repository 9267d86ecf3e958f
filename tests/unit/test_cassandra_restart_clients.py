"""The clients a rolling restart waits for, read by the cassandra role from `nodetool clientstats
--all` (rendered by Ansible from the role's defaults and vars): every connected client's address
once, the role's own admin connections left out, and the clients missing after the restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from role_render import render

HEADER = (
    "Address             SSL   Cipher                 Protocol Version User      Keyspace Requests "
    "Driver-Name                    Driver-Version"
)
APP = (
    "/172.30.90.21:47234 false undefined              undefined 5      zdmapp_rw          431      "
    "Apache Cassandra Python Driver 3.30.1"
)
APP_SECOND_CONNECTION = (
    "/172.30.90.21:47290 false undefined              undefined 5      zdmapp_rw zdmapp   12       "
    "Apache Cassandra Python Driver 3.30.1"
)
PROXY_TLS = "/172.30.90.31:51000 true  TLS_AES_256_GCM_SHA384 TLSv1.3  5       proxy     zdmapp   900      gocql v1.0"
IPV6 = "/0:0:0:0:0:0:0:1:52344 false undefined undefined 5 zdmapp_rw zdmapp 3 DataStax Java driver 4.17"
DEFAULT_SUPERUSER = "/172.30.90.22:40000 false undefined undefined 5 cassandra  7 Apache Cassandra Python Driver 3.30.1"
ADMIN = "/172.30.90.23:40001 false undefined undefined 5 dba  system 7 Apache Cassandra Python Driver 3.30.1"
FOOTER = ["", "Total connected clients: 5", "", "User      Connections", "zdmapp_rw 3"]


def render_clients(tmp_path: Path, before: list[str], now: list[str]) -> dict:
    return render(
        tmp_path,
        "cassandra",
        "{'before': __cassandra_client_addresses_before, 'now': __cassandra_client_addresses_now,"
        " 'missing': __cassandra_clients_missing}",
        {
            "cassandra_admin_user": "dba",
            "__cassandra_clients_before": {"stdout_lines": before},
            "__cassandra_clients_now": {"stdout_lines": now},
        },
    )


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("restart-clients")


def test_every_client_address_once_without_the_roles_own_connections(tmp):
    lines = [HEADER, APP, APP_SECOND_CONNECTION, PROXY_TLS, IPV6, DEFAULT_SUPERUSER, ADMIN, *FOOTER]
    clients = render_clients(tmp, lines, lines)
    assert clients["before"] == ["0:0:0:0:0:0:0:1", "172.30.90.21", "172.30.90.31"]
    assert clients["now"] == clients["before"]
    assert clients["missing"] == []


def test_the_clients_not_connected_again_are_missing(tmp):
    clients = render_clients(tmp, [HEADER, APP, PROXY_TLS, *FOOTER], [HEADER, APP_SECOND_CONNECTION, ADMIN, *FOOTER])
    assert clients["now"] == ["172.30.90.21"]
    assert clients["missing"] == ["172.30.90.31"]


def test_no_clients_before_means_nothing_to_wait_for(tmp):
    clients = render_clients(tmp, [HEADER, DEFAULT_SUPERUSER, "", "Total connected clients: 1"], [])
    assert clients["before"] == []
    assert clients["missing"] == []
