"""The shipped inventories parse, name the groups the playbooks use, give every host an IP
service address, and keep secrets out of the example (vault variables only)."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ["lab", "example"]
GROUPS = {"origin", "target", "proxies", "monitoring", "clients"}


def inventory(name: str) -> dict:
    ansible_inventory = Path(sys.executable).with_name("ansible-inventory")
    out = subprocess.run(
        [str(ansible_inventory), "-i", str(ROOT / "inventories" / name / "hosts.yml"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


@pytest.mark.parametrize("name", INVENTORIES)
def test_groups_and_service_addresses(name):
    data = inventory(name)
    assert set(data) >= GROUPS, sorted(GROUPS - set(data))
    hostvars = data["_meta"]["hostvars"]
    for group in GROUPS:
        for host in data[group]["hosts"]:
            ipaddress.ip_address(hostvars[host]["service_address"])


def test_example_secrets_come_from_the_vault():
    for path in (ROOT / "inventories/example").rglob("*.yml"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(\w*password\w*|\w*secret\w*):\s*(.+)$", line)
            if match:
                assert re.fullmatch(r'"\{\{ vault_\w+ \}\}"', match.group(2)), f"{path}: {line.strip()}"
