"""Addresses as the ZDM proxy's topology needs them: IPv4 literals."""

from __future__ import annotations

DOCUMENTATION = r"""
name: zdm_ipv4
short_description: An IPv4 literal for an address or host name
description:
  - Returns the value when it is an IPv4 literal, else the first IPv4 address the controller's
    resolver gives for it. Fails, naming O(what), when it is empty, IPv6 only or does not resolve.
options:
  what:
    description: What the value is, for the error message (the variable to change).
    type: str
notes:
  - C(zdm_topology) does the same for the service addresses of a group's hosts, in order, naming
    the host whose address does not resolve.
"""

EXAMPLES = r"""
- name: The topology of the proxies group, in its order
  ansible.builtin.debug:
    msg: "{{ groups.proxies | map('extract', hostvars, 'service_address') | zdm_topology(groups.proxies) }}"

- name: Resolve the proxies' addresses for the topology
  ansible.builtin.debug:
    msg: "{{ ['zdm-proxy-1.example', '10.0.3.12'] | map('zdm_ipv4', what='service_address') | list }}"
"""

import ipaddress
import socket

from ansible.errors import AnsibleFilterError


def zdm_ipv4(value, what: str = "the address") -> str:
    text = str(value or "").strip()
    if not text:
        raise AnsibleFilterError(f"{what} is empty: set it to the IPv4 address or host name clients use")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        if address.version != 4:
            raise AnsibleFilterError(f"{what} is {text}, an IPv6 address: the ZDM proxy's topology takes IPv4 only")
        return str(address)
    try:
        infos = socket.getaddrinfo(text, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AnsibleFilterError(f"{what} is '{text}', which does not resolve to an IPv4 address ({exc})") from None
    return infos[0][4][0]


def zdm_topology(addresses, hosts, group: str = "proxies") -> list[str]:
    """The IPv4 literals of the proxies, in the order of their group, each host's address resolved."""
    addresses, hosts = list(addresses), list(hosts)
    if len(addresses) != len(hosts):
        raise AnsibleFilterError(f"{len(addresses)} addresses for {len(hosts)} hosts of {group}")
    return [
        zdm_ipv4(address, what=f"service_address of {host} (a proxy of the group {group})")
        for address, host in zip(addresses, hosts, strict=True)
    ]


class FilterModule:
    def filters(self):
        return {"zdm_ipv4": zdm_ipv4, "zdm_topology": zdm_topology}
