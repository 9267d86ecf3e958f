"""The phase-2 role's engine arguments, rendered by Ansible from its defaults and vars: TLS
options follow the clusters' inventory, and what the operator sets overrides them."""

from __future__ import annotations

from pathlib import Path

import pytest
from role_render import render

INVENTORY = {
    "all": {
        "hosts": {"localhost": {"ansible_connection": "local"}},
        "children": {
            "origin": {
                "hosts": {
                    "o1": {
                        "service_address": "10.0.0.1",
                        "cassandra_client_tls": True,
                        "cassandra_tls_ca_file": "/pki/origin-ca.pem",
                    }
                }
            },
            "target": {"hosts": {"t1": {"service_address": "10.0.1.1"}}},
        },
    }
}


def render_args(tmp_path: Path, variables: dict) -> list[str]:
    return render(
        tmp_path,
        "data_migration",
        "__data_migration_common_args",
        {"data_migration_keyspaces": ["zdmapp"], **variables},
        INVENTORY,
    )


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-migration")


def test_the_ca_of_a_cluster_with_client_tls_is_used_by_default(tmp):
    args = render_args(tmp, {})
    assert option(args, "--origin-ssl-ca") == "/pki/origin-ca.pem"
    assert "--target-ssl-ca" not in args and "--origin-ssl-cert" not in args
    assert option(args, "--origin-contact-points") == "10.0.0.1"


def test_operator_files_override_and_add_a_client_certificate(tmp):
    args = render_args(
        tmp,
        {
            "data_migration_origin_tls_ca_file": "/mine/ca.pem",
            "data_migration_target_tls_ca_file": "/mine/target-ca.pem",
            "data_migration_target_tls_cert_file": "/mine/client.pem",
            "data_migration_target_tls_key_file": "/mine/client.key",
        },
    )
    assert option(args, "--origin-ssl-ca") == "/mine/ca.pem"
    assert option(args, "--target-ssl-ca") == "/mine/target-ca.pem"
    assert option(args, "--target-ssl-cert") == "/mine/client.pem"
    assert option(args, "--target-ssl-key") == "/mine/client.key"
