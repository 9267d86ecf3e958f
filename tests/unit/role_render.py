"""Render a role's variables with Ansible itself, for the unit tests of the roles' expressions:
a one-task play on localhost loads the role's defaults and vars, and writes one expression's
value as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def render(tmp_path: Path, role: str, expression: str, variables: dict, inventory: dict | None = None) -> Any:
    """The value of `expression` (a variable's name, or any Jinja expression) with `variables` set
    as the task's vars; `inventory` (as YAML data, with a localhost on the local connection) gives
    the play its groups, else localhost alone."""
    out = tmp_path / "rendered.json"
    playbook = tmp_path / "render.yml"
    role_dir = ROOT / "roles" / role
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": f"Render the {role} role's variables",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(role_dir / "defaults/main.yml"), str(role_dir / "vars/main.yml")],
                    "tasks": [
                        {
                            "name": "Write the value",
                            "ansible.builtin.copy": {
                                "content": "{{ (" + expression + ") | to_json }}",
                                "dest": str(out),
                                "mode": "0600",
                            },
                            "vars": variables,
                        }
                    ],
                }
            ]
        )
    )
    if inventory is None:
        hosts = ["-i", "localhost,", "-c", "local"]
    else:
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
        hosts = ["-i", str(tmp_path / "inventory.yml")]
    beside = Path(sys.executable).with_name("ansible-playbook")
    result = subprocess.run(
        [str(beside) if beside.exists() else "ansible-playbook", *hosts,
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", str(playbook)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads(out.read_text())
