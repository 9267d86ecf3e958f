"""The Prometheus configuration the prometheus role generates from an inventory.

Rendered by Ansible from the role's template for the lab inventory and for an inventory with a
cluster someone else runs, then checked with `promtool check config`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from test_prometheus_rules import ROLE, ROOT, promtool, render_role_templates

CONFIG_TEMPLATE = ROLE / "templates/etc/prometheus/prometheus.yml.j2"
ARGS_TEMPLATE = ROLE / "templates/etc/default/prometheus.j2"
LAB_INVENTORY = ROOT / "inventories/lab/hosts.yml"

# Origin run by someone else (no agent on its nodes), no proxies yet, no clients.
UNMANAGED_INVENTORY = {
    "all": {
        "children": {
            "origin": {
                "hosts": {"origin-a": {"service_address": "10.1.0.1"}, "origin-b": {"service_address": "10.1.0.2"}},
                "vars": {"cassandra_managed": False},
            },
            "target": {"hosts": {"target-a": {"service_address": "10.2.0.1"}}},
            "monitoring": {"hosts": {"monitoring-a": {"service_address": "10.3.0.1"}}},
        }
    }
}


def check_config(path: Path) -> None:
    result = subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def targets(job: dict) -> dict[str, dict]:
    """instance -> {target, labels} of a static job."""
    found = {}
    for static in job["static_configs"]:
        assert len(static["targets"]) == 1
        found[static["labels"]["instance"]] = {"target": static["targets"][0], "labels": static["labels"]}
    return found


@pytest.fixture(scope="module")
def lab_files(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    directory = tmp_path_factory.mktemp("lab")
    return render_role_templates(
        {CONFIG_TEMPLATE: directory / "prometheus.yml", ARGS_TEMPLATE: directory / "prometheus"},
        inventory=str(LAB_INVENTORY),
        host="monitoring-1",
    )


@pytest.fixture(scope="module")
def lab_config(lab_files: dict[Path, Path]) -> Path:
    return lab_files[CONFIG_TEMPLATE]


def test_lab_config_passes_promtool(lab_config: Path):
    check_config(lab_config)


def test_lab_config_scrapes_every_component_at_its_service_address(lab_config: Path):
    config = yaml.safe_load(lab_config.read_text())
    by_name = jobs(config)
    assert set(by_name) == {
        "prometheus",
        "zdm-proxy",
        "zdm-proxy-readiness",
        "cassandra",
        "cassandra-cql",
        "node",
        "demo-app",
        "writer",
    }
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]

    proxies = targets(by_name["zdm-proxy"])
    assert {name: t["target"] for name, t in proxies.items()} == {
        "zdm-proxy-1": "172.30.89.31:14001",
        "zdm-proxy-2": "172.30.89.32:14001",
        "zdm-proxy-3": "172.30.89.33:14001",
    }
    readiness = by_name["zdm-proxy-readiness"]
    assert targets(readiness)["zdm-proxy-2"]["target"] == "http://172.30.89.32:14001/health/readiness"
    assert readiness["metrics_path"] == "/probe"
    assert readiness["params"] == {"module": ["zdm_readiness"]}
    assert {"target_label": "__address__", "replacement": "127.0.0.1:9115"} in readiness["relabel_configs"]

    cassandra = targets(by_name["cassandra"])
    assert cassandra["cassandra-origin-1"] == {
        "target": "172.30.89.11:7070",
        "labels": {"instance": "cassandra-origin-1", "cluster": "origin"},
    }
    assert cassandra["cassandra-target-1"]["labels"]["cluster"] == "target"
    cql = targets(by_name["cassandra-cql"])
    assert cql["cassandra-target-1"]["target"] == "172.30.89.21:9042"

    lab_hosts = _lab_hosts()
    assert set(targets(by_name["node"])) == lab_hosts
    assert targets(by_name["node"])["monitoring-1"]["target"] == "172.30.89.41:9100"
    assert targets(by_name["demo-app"]) == {
        "client-1": {"target": "172.30.89.51:8000", "labels": {"instance": "client-1"}}
    }
    # The lab's client runs the writer (demo_app_writer_enabled): its metrics are scraped too.
    writer = {"client-1": {"target": "172.30.89.51:8001", "labels": {"instance": "client-1"}}}
    assert targets(by_name["writer"]) == writer
    assert targets(by_name["prometheus"])["monitoring-1"]["target"] == "172.30.89.41:9090"


def _lab_hosts() -> set[str]:
    def walk(group: dict) -> set[str]:
        names = set((group.get("hosts") or {}).keys())
        for child in (group.get("children") or {}).values():
            names |= walk(child)
        return names

    return walk(yaml.safe_load(LAB_INVENTORY.read_text())["all"])


def test_lab_prometheus_listens_on_the_service_address(lab_files: dict[Path, Path]):
    args = lab_files[ARGS_TEMPLATE]
    line = next(line for line in args.read_text().splitlines() if line.startswith("ARGS="))
    assert "--web.listen-address=172.30.89.41:9090" in line
    assert "--storage.tsdb.retention.time=15d" in line
    assert "retention.size" not in line


def test_unmanaged_cluster_is_probed_but_not_scraped(tmp_path: Path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump(UNMANAGED_INVENTORY))
    config_path = tmp_path / "prometheus.yml"
    render_role_templates({CONFIG_TEMPLATE: config_path}, inventory=str(inventory), host="monitoring-a")
    check_config(config_path)
    by_name = jobs(yaml.safe_load(config_path.read_text()))
    # No proxies and no clients in the inventory: no jobs for them.
    assert set(by_name) == {"prometheus", "cassandra", "cassandra-cql", "node"}
    assert set(targets(by_name["cassandra"])) == {"target-a"}
    assert {name: t["labels"]["cluster"] for name, t in targets(by_name["cassandra-cql"]).items()} == {
        "origin-a": "origin",
        "origin-b": "origin",
        "target-a": "target",
    }
