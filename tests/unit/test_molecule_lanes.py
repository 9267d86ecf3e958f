"""make test's Molecule lanes: every scenario runs once, and scenarios side by side never share a
Docker network (one lane's destroy would remove it under the other's create)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
DEFAULT_NETWORK, DEFAULT_SUBNET = "zdmkit-molecule", "172.30.90.0/24"


def _make_var(name: str) -> str:
    found = re.search(rf"^{name} \?= (.*)$", MAKEFILE, re.M)
    assert found, f"the Makefile sets no {name}"
    return found.group(1).strip()


def _lanes() -> list[list[str]]:
    return [lane.split() for lane in _make_var("LANES").split(",")]


def _network(scenario: str) -> tuple[str, ipaddress.IPv4Network, list[str]]:
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    env = config.get("provisioner", {}).get("env", {})
    subnet = ipaddress.ip_network(env.get("ZDMKIT_MOLECULE_SUBNET", DEFAULT_SUBNET))
    return env.get("ZDMKIT_MOLECULE_NETWORK", DEFAULT_NETWORK), subnet, [p["address"] for p in config["platforms"]]


def test_the_lanes_run_every_scenario_once():
    on_disk = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
    scenarios = _make_var("SCENARIOS").split()
    assert sorted(scenarios) == on_disk
    in_lanes = [s for lane in _lanes() for s in lane]
    assert sorted(in_lanes) == on_disk, "LANES must hold every scenario exactly once"


def test_lanes_side_by_side_use_networks_of_their_own():
    lanes = _lanes()
    assert len(lanes) > 1
    networks = [{_network(s)[0] for s in lane} for lane in lanes]
    for i, mine in enumerate(networks):
        for theirs in networks[i + 1:]:
            assert not mine & theirs, f"lanes side by side share the network(s) {mine & theirs}"
    subnets = {}
    for lane in lanes:
        for s in lane:
            name, subnet, addresses = _network(s)
            assert subnets.setdefault(name, subnet) == subnet, f"{name} has two subnets"
            for address in addresses:
                assert ipaddress.ip_address(address) in subnet, f"{s}: {address} is outside {subnet}"
    nets = list(subnets.values())
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            assert not a.overlaps(b), f"{a} overlaps {b}"


def test_every_address_is_unique_across_the_scenarios():
    addresses = [a for lane in _lanes() for s in lane for a in _network(s)[2]]
    assert len(addresses) == len(set(addresses))


def test_an_unknown_scenario_is_refused_before_anything_runs(tmp_path):
    run = subprocess.run([ROOT / "scripts" / "molecule-lanes.sh", "lab", "substrate nosuch"], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin", "SUITE_LOGS": str(tmp_path)}, check=False)
    assert run.returncode == 2
    assert "no scenario 'nosuch'" in run.stderr
    assert not list(tmp_path.iterdir())
