"""The playbooks operators type in the project root are thin entry points: each imports the
playbook of the same name from playbooks/, so both spellings run the same thing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = sorted(p.name for p in ROOT.glob("*.yml"))


def test_the_root_has_the_operators_entry_points():
    expected = {f"phase{n}.yml" for n in range(1, 6)} | {"rollback.yml", "status.yml", "teardown.yml"}
    assert expected <= set(ENTRY_POINTS)


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_each_entry_point_imports_its_playbook(name):
    plays = yaml.safe_load((ROOT / name).read_text())
    assert len(plays) == 1, name
    assert plays[0]["ansible.builtin.import_playbook"] == f"playbooks/{name}"
    assert (ROOT / "playbooks" / name).is_file()
