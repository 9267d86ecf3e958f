"""The dashboards: Perses sources in monitoring/dashboards/*.yaml, their Grafana exports in
monitoring/dashboards/grafana/, and their PromQL.

Every panel query must parse (checked offline with promtool, as recording rules) and may only
name metrics that something here exports: the demo application, the writer, the Cassandra
metrics agent's rules, the ZDM proxy, the migration phase. The exports must be exactly what the
generator writes from the sources. Running the dashboards in Perses against a live Prometheus
is the Molecule scenario `monitoring` (tests/integration/test_perses_dashboards.py).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_prometheus_rules import ROOT, promtool

from zdmkit import dashboards as d
from zdmkit.dashboards.__main__ import main as dashboards_cli
from zdmkit.demo_app.metrics import AppMetrics
from zdmkit.writer.traffic import Counters

SOURCE = ROOT / "monitoring/dashboards"
EXPORTS = SOURCE / "grafana"
SOURCES = d.sources(SOURCE)
EXPECTED = {
    "zdm-proxy": "ZDM proxy",
    "migration": "Migration overview",
    "cassandra": "Cassandra nodes",
    "hosts": "Hosts",
    "demo-app": "Demo app",
}

# Metrics of the ZDM proxy 2.4 (prefix zdm), histograms with their series suffixes.
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
    *(
        f"zdm_{side}_{name}"
        for side in ("origin", "target", "async")
        for name in ("requests_failed_total", "connections_total", "failed_connections_total", "used_stream_ids_total")
    ),
    "zdm_async_inflight_requests_total",
}
# Written by the migration playbooks through the node exporter's textfile collector.
MIGRATION_METRICS = {"zdmkit_migration_phase"}
# The JVM collectors built into jmx_prometheus_javaagent.
JVM_METRICS = {"jvm_memory_used_bytes", "jvm_memory_max_bytes", "jvm_gc_collection_seconds_sum"}
CHECKED_PREFIX = re.compile(r"\b(?:zdm|zdmkit|cassandra|jvm)_[a-z0-9_]+\b")


def exported_metrics() -> set[str]:
    names = set(ZDM_PROXY_METRICS | MIGRATION_METRICS | JVM_METRICS)
    for text in (AppMetrics().render(), Counters().prometheus()):
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                names |= {f"{name}{s}" for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    agent = yaml.safe_load((ROOT / "roles/cassandra_exporter/vars/main.yml").read_text())
    names |= {rule["name"] for rule in agent["__cassandra_exporter_rules"]}
    return names


def test_the_five_dashboards_are_there():
    boards = {path.stem: d.load(path)["spec"]["display"]["name"] for path in SOURCES}
    assert boards == EXPECTED


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_dashboard_source_follows_the_rules(path: Path):
    board = d.check(path)
    assert board["metadata"]["project"] == "zdmkit"
    assert d.queries(board), "a dashboard without a query"


def _broken(change) -> dict:
    board = copy.deepcopy(d.load(SOURCE / "hosts.yaml"))
    change(board)
    return board


def _set_kind(board):
    board["spec"]["panels"]["cpu_busy"]["spec"]["plugin"]["kind"] = "FancyChart"


def _overlap(board):
    board["spec"]["layouts"][0]["spec"]["items"][1]["x"] = 6


def _undefined_variable(board):
    board["spec"]["panels"]["cpu_busy"]["spec"]["queries"][0]["spec"]["plugin"]["spec"]["query"] = 'up{job=~"$job"}'


def _no_description(board):
    del board["spec"]["panels"]["cpu_busy"]["spec"]["display"]["description"]


def _unknown_unit(board):
    board["spec"]["panels"]["cpu_busy"]["spec"]["plugin"]["spec"]["yAxis"]["format"]["unit"] = "furlongs"


def _unplaced(board):
    del board["spec"]["layouts"][0]["spec"]["items"][1]


def _wide(board):
    board["spec"]["layouts"][0]["spec"]["items"][1]["width"] = 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_kind, "panel kind 'FancyChart' is none of the shipped plugins"),
        (_overlap, "overlaps another panel"),
        (_undefined_variable, "$job is not a variable of the dashboard"),
        (_no_description, "display needs a name and a description"),
        (_unknown_unit, "unit 'furlongs' has no Grafana equivalent"),
        (_unplaced, "panel cpu_busy is laid out 0 times"),
        (_wide, "ends at column 30, beyond 24"),
    ],
)
def test_the_rules_refuse_a_broken_dashboard(tmp_path: Path, change, message):
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(_broken(change)))
    with pytest.raises(d.DashboardError) as err:
        d.check(path)
    assert message in str(err.value)
    assert str(err.value).startswith("hosts.yaml: ")


def test_a_file_named_unlike_its_dashboard_is_refused(tmp_path: Path):
    path = tmp_path / "nodes.yaml"
    shutil.copy(SOURCE / "hosts.yaml", path)
    with pytest.raises(d.DashboardError, match=r"metadata.name is 'hosts': name the file after the dashboard"):
        d.check(path)


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_dashboard_queries_name_exported_metrics(path: Path):
    known = exported_metrics()
    for query in d.queries(d.load(path)):
        # Label values and matchers are not metric names.
        bare = re.sub(r'"[^"]*"', '""', query.expr)
        for name in CHECKED_PREFIX.findall(bare):
            assert name in known, f"{query.dashboard} / {query.where}: {name} is exported by nothing in this project"


def test_every_dashboard_query_parses(tmp_path: Path):
    rules = []
    for path in SOURCES:
        for number, query in enumerate(d.queries(d.load(path))):
            rules.append(
                {
                    "record": f"dashboard:{path.stem.replace('-', '_')}:{number}",
                    "expr": d.substitute(query.expr),
                    "labels": {"where": f"{query.dashboard} / {query.where}"},
                }
            )
    assert len(rules) > 50
    rules_file = tmp_path / "dashboards.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_substitute_replaces_builtins_and_dashboard_variables():
    expr = 'rate(x{instance=~"$instance", cluster=~"${cluster}"}[$__rate_interval])'
    assert d.substitute(expr) == 'rate(x{instance=~".*", cluster=~".*"}[1m])'


def test_a_query_promtool_refuses_is_found(tmp_path: Path):
    # The parse check above can fail: the same promtool run on a broken expression.
    rules_file = tmp_path / "broken.yml"
    broken = {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(up[5m]"}]}]}
    rules_file.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


# -- Grafana exports -------------------------------------------------------------------------


def test_committed_grafana_exports_equal_what_the_generator_writes(tmp_path: Path):
    assert d.stale_exports(SOURCE, EXPORTS) == []
    written = d.export(SOURCE, tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in EXPORTS.glob("*.json"))
    for path in written:
        assert path.read_bytes() == (EXPORTS / path.name).read_bytes(), f"{path.name}: run `make dashboards`"


def test_an_edited_source_makes_its_export_stale(tmp_path: Path, capsys):
    source = tmp_path / "dashboards"
    shutil.copytree(SOURCE, source)
    board = d.load(source / "hosts.yaml")
    board["spec"]["display"]["name"] = "Hosts, renamed"
    (source / "hosts.yaml").write_text(yaml.safe_dump(board, sort_keys=False))
    (source / "grafana" / "gone.json").write_text("{}")
    assert d.stale_exports(source, source / "grafana") == ["gone.json", "hosts.json"]
    assert dashboards_cli(["check", "--source", str(source)]) == 1
    assert "exports not current" in capsys.readouterr().err
    assert dashboards_cli(["export", "--source", str(source)]) == 0
    assert not (source / "grafana" / "gone.json").exists()
    assert dashboards_cli(["check", "--source", str(source)]) == 0


def _grafana(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_grafana_export_structure(path: Path):
    board = _grafana(EXPORTS / f"{path.stem}.json")
    assert board["uid"] == f"zdmkit-{path.stem}"
    assert board["title"] == EXPECTED[path.stem]
    assert board["id"] is None, "exported dashboards carry no database id"
    assert isinstance(board["schemaVersion"], int)
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
        assert panel["datasource"] == d.GRAFANA_DATASOURCE
        assert panel["description"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), f"{panel['title']}: unique refIds"
        for target in panel["targets"]:
            assert target["datasource"] == d.GRAFANA_DATASOURCE
            for name in d.VARIABLE_REF.findall(target["expr"]):
                assert name in variables or name in d.BUILTIN_VARIABLES, f"{panel['title']}: ${name}"
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"]["query"]), variable["name"]


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_grafana_export_keeps_every_panel_query_and_legend(path: Path):
    source = d.load(path)
    exported = _grafana(EXPORTS / f"{path.stem}.json")
    perses = sorted(
        (p["spec"]["display"]["name"], q["spec"]["plugin"]["spec"]["query"],
         q["spec"]["plugin"]["spec"]["seriesNameFormat"])
        for p in source["spec"]["panels"].values()
        for q in p["spec"]["queries"]
    )  # fmt: skip
    grafana = sorted(
        (p["title"], t["expr"], t["legendFormat"])
        for p in exported["panels"]
        if p["type"] != "row"
        for t in p["targets"]
    )
    assert grafana == perses
    rows = [p["title"] for p in exported["panels"] if p["type"] == "row"]
    assert rows == [layout["spec"]["display"]["title"] for layout in source["spec"]["layouts"]]


def test_units_and_thresholds_reach_grafana():
    board = d.to_grafana(d.load(SOURCE / "hosts.yaml"))
    panels = {p["title"]: p for p in board["panels"]}
    assert panels["CPU busy"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert panels["Disk throughput"]["fieldConfig"]["defaults"]["unit"] == "Bps"
    steps = panels["Host metrics"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps == [{"color": "green", "value": None}, {"color": "red", "value": 0}, {"color": "green", "value": 1}]
    assert panels["Host metrics"]["options"]["reduceOptions"]["calcs"] == ["lastNotNull"]
    variable = board["templating"]["list"][1]
    assert variable["query"]["query"] == 'label_values(up{job="node"}, instance)'
    assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
