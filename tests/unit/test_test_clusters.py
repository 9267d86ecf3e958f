"""Test data and test-cluster options live in one place each: the lab's group_vars, linked by every
Molecule scenario that deploys Cassandra; the role's defaults and the production example never
carry the test-only switches."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAB_ALL = ROOT / "inventories/lab/group_vars/all"
OPTIONS = LAB_ALL / "cassandra_test_cluster.yml"
DATA = LAB_ALL / "zdmapp.yml"
TEST_ONLY = ("skip_wait_for_gossip_to_settle", "ring_delay_ms", "superuser_setup_delay_ms", "TieredStopAtLevel")


def scenarios_with_cassandra() -> list[Path]:
    """Scenarios that set the cassandra role's inputs inline or take the lab's group_vars for them."""
    return sorted(
        p.parent
        for p in (ROOT / "molecule").glob("*/molecule.yml")
        if "cassandra_cluster_group" in p.read_text()
        or (p.parent / "group_vars/origin").is_dir()
        or "inventories/lab/group_vars" in p.read_text()
    )


def test_options_are_cassandra_and_jvm_switches():
    options = yaml.safe_load(OPTIONS.read_text())
    assert set(options) == {"cassandra_jvm_extra_opts", "cassandra_config"}
    flags = options["cassandra_jvm_extra_opts"]
    assert all(flag.startswith(("-Dcassandra.", "-XX:")) for flag in flags), flags
    assert "-Dcassandra.skip_wait_for_gossip_to_settle=0" in flags
    # Serial GC only together with G1 switched off: the server's options select G1.
    assert flags.index("-XX:-UseG1GC") < flags.index("-XX:+UseSerialGC")


def test_role_defaults_and_production_example_have_none_of_them():
    defaults = yaml.safe_load((ROOT / "roles/cassandra/defaults/main.yml").read_text())
    assert defaults["cassandra_jvm_extra_opts"] == []
    assert defaults["cassandra_config"] == {}
    for path in [*(ROOT / "inventories/example").rglob("*.yml"), *(ROOT / "roles").rglob("*.yml")]:
        text = path.read_text()
        assert not any(flag in text for flag in TEST_ONLY), path


@pytest.mark.parametrize("scenario", scenarios_with_cassandra(), ids=lambda p: p.name)
def test_each_cassandra_scenario_links_the_options(scenario):
    if "group_vars: ../../inventories/lab/group_vars/" in (scenario / "molecule.yml").read_text():
        return  # the lab's own group_vars, this file among them
    link = scenario / "group_vars/all/cassandra_test_cluster.yml"
    assert link.is_symlink(), f"{link} should link {OPTIONS.relative_to(ROOT)}"
    assert link.resolve() == OPTIONS.resolve()


def test_seed_rows_are_kept_only_in_the_lab_data():
    for path in (ROOT / "molecule").rglob("*.yml"):
        if path.is_symlink():
            continue
        text = path.read_text()
        assert "{user: eva" not in text or path.name == "verify.yml", f"{path}: seed rows belong in {DATA.name}"
        if "cassandra_seed_rows:" in text:
            assert 'cassandra_seed_rows: "{{ zdmapp_seed_rows }}"' in text, path
    for scenario in ("cassandra", "demo_app", "tls"):
        link = ROOT / "molecule" / scenario / "group_vars/all/zdmapp.yml"
        assert link.resolve() == DATA.resolve(), link


def test_the_demo_app_checks_expect_the_seed_rows():
    rows = yaml.safe_load(DATA.read_text())["zdmapp_seed_rows"][0]["rows"]
    eva = sorted((r for r in rows if r["user"] == "eva"), key=lambda r: r["when"], reverse=True)
    as_api = [{**r, "when": r["when"].replace("Z", ".000")} for r in eva]
    verify = yaml.safe_load((ROOT / "molecule/demo_app/verify.yml").read_text())
    assert verify[0]["vars"]["__verify_seed_eva"] == as_api
    module = ast.parse((ROOT / "tests/integration/test_demo_app_api.py").read_text())
    [seed_eva] = [
        ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["SEED_EVA"]
    ]
    assert as_api == seed_eva


def test_lab_hosts_get_the_options():
    ansible_inventory = Path(sys.executable).with_name("ansible-inventory")
    out = subprocess.run(
        [str(ansible_inventory), "-i", str(ROOT / "inventories/lab/hosts.yml"), "--host", "cassandra-origin-1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    host = json.loads(out)
    assert "-Dcassandra.skip_wait_for_gossip_to_settle=0" in host["cassandra_jvm_extra_opts"]
    assert host["cassandra_seed_rows"] == "{{ zdmapp_seed_rows }}"
