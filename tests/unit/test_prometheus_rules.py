"""The migration's alert rules, as the prometheus role installs them.

The rules file is rendered by Ansible from the role's own template and variables (defaults),
checked with `promtool check rules`, and every alert is unit-tested with `promtool test rules`
(monitoring/rules-tests/*.yml, written against the role's default thresholds).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
ROLE = ROOT / "roles/prometheus"
RULES_NAME = "zdm-migration.yml"
RULES_TEMPLATE = ROLE / "templates/etc/prometheus/rules" / f"{RULES_NAME}.j2"
TESTS_DIR = ROOT / "monitoring/rules-tests"
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: it comes with the Debian package `prometheus` "
            "(apt-get install --no-install-recommends prometheus), one of the host packages of make bootstrap",
            pytrace=False,
        )
    return path


def ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    return str(beside) if beside.exists() else shutil.which("ansible-playbook") or "ansible-playbook"


def render_role_templates(
    templates: dict[Path, Path], *, inventory: str = "localhost,", host: str = "localhost"
) -> dict[Path, Path]:
    """Render templates of the prometheus role (template -> destination) with its defaults and
    vars, through Ansible, in one run."""
    playbook = next(iter(templates.values())).parent / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render templates of the prometheus role",
                    "hosts": host,
                    "connection": "local",
                    "gather_facts": False,
                    "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
                    "tasks": [
                        {
                            "name": f"Render {template.name}",
                            "ansible.builtin.template": {"src": str(template), "dest": str(dest), "mode": "0644"},
                        }
                        for template, dest in templates.items()
                    ],
                }
            ],
            sort_keys=False,
        )
    )
    result = subprocess.run(
        [
            ansible_playbook(),
            "-i",
            inventory,
            # Local rendering: the controller's own Python, whatever the inventory says.
            "-e",
            "ansible_connection=local",
            "-e",
            "ansible_python_interpreter={{ ansible_playbook_python }}",
            str(playbook),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return templates


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rules")
    render_role_templates({RULES_TEMPLATE: directory / RULES_NAME})
    return directory


@pytest.fixture(scope="module")
def rules(rules_dir: Path) -> list[dict]:
    groups = yaml.safe_load((rules_dir / RULES_NAME).read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules(rules_dir: Path):
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules_dir / RULES_NAME)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_says_how_bad_and_what_happened(rules: list[dict]):
    alerts = [rule for rule in rules if "alert" in rule]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["annotations"].get("summary"), alert["alert"]
        assert alert["annotations"].get("description"), alert["alert"]


def test_every_alert_has_a_unit_test_that_fires_it(rules: list[dict]):
    fired: set[str] = set()
    for path in TEST_FILES:
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == [RULES_NAME], f"{path.name}: rule_files must be [{RULES_NAME}]"
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    alerts = {rule["alert"] for rule in rules if "alert" in rule}
    assert alerts - fired == set(), f"alerts no unit test fires: {sorted(alerts - fired)}"
    assert fired - alerts == set(), f"unit tests of alerts that do not exist: {sorted(fired - alerts)}"


@pytest.mark.parametrize("test_file", TEST_FILES, ids=[p.stem for p in TEST_FILES])
def test_rule_unit_tests(test_file: Path, rules_dir: Path):
    # promtool reads rule_files relative to the test file: run it beside the rendered rules.
    shutil.copy(test_file, rules_dir / test_file.name)
    result = subprocess.run(
        [promtool(), "test", "rules", test_file.name], cwd=rules_dir, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_unit_tests():
    assert TEST_FILES
