"""The files the perses role writes, rendered by Ansible from its templates for the lab and for
the example production inventory: sign-in off only in the lab, the service address, the plugin
folders, the provisioned project, datasource and administrator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from test_prometheus_rules import ROOT, ansible_playbook

ROLE = ROOT / "roles/perses"
TEMPLATES = {
    "config": ROLE / "templates/etc/perses/config.yaml.j2",
    "project": ROLE / "templates/etc/perses/provisioning/project.yaml.j2",
    "admin": ROLE / "templates/etc/perses/provisioning/admin.yaml.j2",
    "unit": ROLE / "templates/etc/systemd/system/perses.service.j2",
}


def render(tmp: Path, inventory: str, host: str, extra: dict | None = None) -> dict[str, str]:
    """Render the templates as the role does: its defaults and vars in a role beside the playbook,
    so that the inventory's variables rank above the defaults."""
    role = tmp / "roles/perses_render"
    (role / "tasks").mkdir(parents=True)
    for part in ("defaults", "vars"):
        (role / part).mkdir()
        (role / part / "main.yml").write_text((ROLE / part / "main.yml").read_text())
    out = {name: tmp / name for name in TEMPLATES}
    tasks = [
        {"name": f"Render {name}",
         "ansible.builtin.template": {"src": str(src), "dest": str(out[name]), "mode": "0600"}}
        for name, src in TEMPLATES.items()
    ]
    (role / "tasks/main.yml").write_text(yaml.safe_dump(tasks, sort_keys=False))
    playbook = tmp / "render.yml"
    play = {"name": "Render templates of the perses role", "hosts": host, "connection": "local",
            "gather_facts": False, "roles": ["perses_render"]}  # fmt: skip
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    # The vault's values, and the dashboards (the stand-in role is not beside the repository's).
    given = {"perses_dashboards_dir": str(ROOT / "monitoring/dashboards"), **(extra or {})}
    result = subprocess.run(
        # Rendered as the controller's user: the example's become (sudo over SSH) has no place here.
        [ansible_playbook(), "-i", inventory, "-e", "ansible_connection=local", "-e", "ansible_become=false",
         "-e", "ansible_python_interpreter={{ ansible_playbook_python }}", "-e", json.dumps(given), str(playbook)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return {name: path.read_text() for name, path in out.items()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return render(tmp_path_factory.mktemp("lab"), str(ROOT / "inventories/lab/hosts.yml"), "monitoring-1")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # The vault is not in the repository: stand-ins for its two values.
    vault = {"vault_perses_admin_password": "Example-Admin-Password", "vault_perses_encryption_key": "k" * 32}
    inventory = str(ROOT / "inventories/example/hosts.yml")
    return render(tmp_path_factory.mktemp("example"), inventory, "monitoring-1", vault)


def test_lab_perses_has_no_sign_in_and_serves_on_the_service_address(lab: dict[str, str]):
    config = yaml.safe_load(lab["config"])
    assert config["security"]["enable_auth"] is False
    assert config["security"]["encryption_key_file"] == "/etc/perses/encryption.key"
    assert config["database"] == {"file": {"folder": "/var/lib/perses/db", "extension": "json"}}
    assert config["plugin"] == {
        "path": "/var/lib/perses/plugins",
        "archive_paths": ["/opt/perses/current/plugins", "/opt/perses/plugins-extra"],
    }
    assert config["provisioning"] == {"interval": "15m", "folders": ["/etc/perses/provisioning"]}
    assert {d["dashboard"] for d in config["frontend"]["important_dashboards"]} == {
        "cassandra", "demo-app", "hosts", "migration", "zdm-proxy"
    }  # fmt: skip
    assert "--web.listen-address=172.30.89.41:3000" in lab["unit"]


def test_the_datasource_is_the_hosts_prometheus(lab: dict[str, str]):
    project, datasource = yaml.safe_load(lab["project"])
    assert project["kind"] == "Project" and project["metadata"]["name"] == "zdmkit"
    assert datasource["spec"]["default"] is True
    assert datasource["spec"]["plugin"]["spec"]["proxy"]["spec"]["url"] == "http://172.30.89.41:9090"


def test_example_perses_signs_in_with_the_vaults_administrator(example: dict[str, str]):
    config = yaml.safe_load(example["config"])
    assert config["security"]["enable_auth"] is True
    assert config["security"]["authentication"] == {"disable_sign_up": True, "providers": {"enable_native": True}}
    user, role, binding = yaml.safe_load(example["admin"])
    assert user["metadata"]["name"] == "admin"
    assert user["spec"]["nativeProvider"]["password"] == "Example-Admin-Password"
    assert role["spec"]["permissions"] == [{"actions": ["*"], "scopes": ["*"]}]
    assert binding["spec"] == {"role": "zdmkit-admin", "subjects": [{"kind": "User", "name": "admin"}]}
    assert "--web.listen-address=10.0.4.11:3000" in example["unit"]


def test_the_unit_is_hardened(lab: dict[str, str]):
    for line in ("User=perses", "NoNewPrivileges=true", "ProtectSystem=strict", "ReadWritePaths=/var/lib/perses",
                 "CapabilityBoundingSet=", "MemoryDenyWriteExecute=true", "SystemCallFilter=@system-service"):
        assert f"\n{line}\n" in lab["unit"], line


def test_defaults_pin_the_artifacts_digest():
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    manifest = yaml.safe_load((ROOT / "src/zdmkit/artifacts/manifest.yml").read_text())
    (entry,) = [e for e in manifest["artifacts"] if e["name"] == "perses"]
    assert defaults["perses_checksum"] == entry["verify"]["sha256"]
    assert defaults["perses_version"] == entry["version"]
