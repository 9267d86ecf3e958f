"""Every role's public inputs: defaults/main.yml and meta/argument_specs.yml name the same keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).parents[2] / "roles").iterdir() if (p / "defaults/main.yml").exists())


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_argument_specs_match_defaults(role: Path):
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(specs), (
        f"only in defaults: {sorted(set(defaults) - set(specs))}; only in specs: {sorted(set(specs) - set(defaults))}"
    )
    for name, spec in specs.items():
        assert name.startswith(f"{role.name}_"), f"{name}: public inputs are prefixed {role.name}_"
        assert spec.get("description"), f"{name}: no description"
        assert spec.get("type"), f"{name}: no type"


def test_there_are_roles():
    assert ROLES
