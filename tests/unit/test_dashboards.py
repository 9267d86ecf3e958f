"""The Grafana dashboards in monitoring/dashboards/: structure, variables, and PromQL.

Every panel query must parse (checked offline with promtool, as recording rules) and may only
name metrics that something here exports: the demo application, the Cassandra metrics agent's
rules, the ZDM proxy, the migration phase. Running them against a live Prometheus is the
Molecule scenario `monitoring`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from test_prometheus_rules import ROOT, promtool

from zdmkit.demo_app.metrics import AppMetrics

DASHBOARDS = sorted((ROOT / "monitoring/dashboards").glob("*.json"))
EXPECTED = {
    "ZDM migration": "zdmkit-zdm-migration",
    "Cassandra clusters": "zdmkit-cassandra",
    "Hosts": "zdmkit-hosts",
    "Demo app": "zdmkit-demo-app",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

# Metrics of the ZDM proxy (prefix zdm), histograms with their series suffixes.
ZDM_PROXY_METRICS = {
    *(
        f"zdm_{name}{suffix}"
        for name in (
            "proxy_request_duration_seconds",
            "origin_request_duration_seconds",
            "target_request_duration_seconds",
            "async_request_duration_seconds",
        )
        for suffix in ("_bucket", "_sum", "_count")
    ),
    "zdm_proxy_inflight_requests_total",
    "zdm_proxy_failed_reads_total",
    "zdm_proxy_failed_writes_total",
    "zdm_proxy_failed_connections_total",
    "zdm_client_connections_total",
    "zdm_pscache_entries_total",
    "zdm_pscache_miss_total",
    "zdm_origin_requests_failed_total",
    "zdm_target_requests_failed_total",
    "zdm_async_requests_failed_total",
    "zdm_origin_connections_total",
    "zdm_target_connections_total",
    "zdm_async_connections_total",
    "zdm_async_inflight_requests_total",
}
# Written by the migration playbooks through the node exporter's textfile collector.
MIGRATION_METRICS = {"zdmkit_migration_phase"}
# The JVM collectors built into jmx_prometheus_javaagent.
JVM_METRICS = {"jvm_memory_used_bytes", "jvm_memory_max_bytes", "jvm_gc_collection_seconds_sum"}
CHECKED_PREFIX = re.compile(r"\b(?:zdm|zdmkit|cassandra|jvm)_[a-z0-9_]+\b")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def queries(board: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and of every query variable's series selector."""
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found.append((f"{board['uid']} / {panel['title']} / {target['refId']}", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"])
            assert match, f"{board['uid']} / ${variable['name']}: use label_values(selector, label)"
            found.append((f"{board['uid']} / ${variable['name']}", match.group(1)))
    return found


def substitute(expr: str) -> str:
    """Replace Grafana variables as Grafana would: built-ins by a value, multi-value variables by a regex."""
    expr = re.sub(r"\$(__\w+)", lambda m: GRAFANA_VARIABLES[m.group(1)], expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def exported_metrics() -> set[str]:
    names = set(ZDM_PROXY_METRICS | MIGRATION_METRICS | JVM_METRICS)
    for line in AppMetrics().render().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {f"{name}{s}" for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    agent = yaml.safe_load((ROOT / "roles/cassandra_exporter/vars/main.yml").read_text())
    names |= {rule["name"] for rule in agent["__cassandra_exporter_rules"]}
    return names


def test_the_four_dashboards_are_there():
    boards = [load(path) for path in DASHBOARDS]
    assert {board["title"]: board["uid"] for board in boards} == EXPECTED


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_structure(path: Path):
    board = load(path)
    assert isinstance(board["schemaVersion"], int)
    assert board["id"] is None, "exported dashboards carry no database id"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{panel['title']}: outside the 24 columns"
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, f"{panel['title']}: use the dashboard's data source variable"
        assert panel.get("description"), f"{panel['title']}: says what it shows"
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), f"{panel['title']}: unique refIds"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']}: empty query"
            assert target["datasource"] == DATASOURCE

    for where, expr in queries(board):
        for name in re.findall(r"\$\{?(\w+)\}?", expr):
            assert name in variables or name in GRAFANA_VARIABLES, f"{where}: ${name} is not a dashboard variable"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_queries_name_exported_metrics(path: Path):
    known = exported_metrics()
    for where, expr in queries(load(path)):
        # Label values and matchers are not metric names.
        bare = re.sub(r'"[^"]*"', '""', expr)
        for name in CHECKED_PREFIX.findall(bare):
            assert name in known, f"{where}: {name} is exported by nothing in this project"


def test_every_dashboard_query_parses(tmp_path: Path):
    rules = []
    for path in DASHBOARDS:
        for number, (where, expr) in enumerate(queries(load(path))):
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{number}", "expr": substitute(expr)})
            rules[-1]["labels"] = {"where": where}
    assert rules
    rules_file = tmp_path / "dashboards.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
