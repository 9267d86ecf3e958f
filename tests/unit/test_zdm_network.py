"""The topology's addresses: IPv4 literals, host names resolved, anything else refused by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "filter_plugins"))
from zdm_network import zdm_ipv4, zdm_topology


def test_an_ipv4_literal_is_kept():
    assert zdm_ipv4("10.0.3.11") == "10.0.3.11"
    assert zdm_ipv4(" 172.30.89.31 ") == "172.30.89.31"


def test_a_host_name_is_resolved():
    assert zdm_ipv4("localhost") == "127.0.0.1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "service_address of zdm-proxy-2 is empty"),
        ("::1", "an IPv6 address"),
        ("no-such-host.invalid", "'no-such-host.invalid', which does not resolve"),
    ],
)
def test_bad_addresses_are_refused_naming_the_variable(value, message):
    with pytest.raises(AnsibleFilterError, match=message):
        zdm_ipv4(value, what="service_address of zdm-proxy-2")


def test_the_topology_keeps_the_group_order_and_names_the_host_that_fails():
    assert zdm_topology(["10.0.3.12", "localhost"], ["proxy-2", "proxy-1"]) == ["10.0.3.12", "127.0.0.1"]
    with pytest.raises(AnsibleFilterError, match=r"service_address of proxy-3 \(a proxy of the group proxies\)"):
        zdm_topology(["10.0.3.11", "nowhere.invalid"], ["proxy-1", "proxy-3"])
