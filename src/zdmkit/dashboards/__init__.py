"""The migration's dashboards: Perses dashboards in ``monitoring/dashboards/*.yaml`` are the one
source; this module checks them and exports each to Grafana's JSON format for people who run
their own Grafana (``monitoring/dashboards/grafana/*.json``, written by ``make dashboards``).

What Perses itself validates (the plugins' schemas) is checked by the running server before the
perses role installs a file; what it does not (whether a query parses) is checked against
Prometheus. This module adds the project's own rules: one project, names that match the files,
every panel described, laid out once inside the 24 columns, and only the plugins the lab ships.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "zdmkit"
GRID_COLUMNS = 24
# Panel kinds of the plugins the Perses artifact ships, and how Grafana calls the ones exported.
PANEL_KINDS = {
    "TimeSeriesChart": "timeseries",
    "StatChart": "stat",
    "GaugeChart": "gauge",
    "BarChart": "barchart",
    "Table": "table",
    "TimeSeriesTable": "table",
    "Markdown": "text",
}
QUERY_KIND = "PrometheusTimeSeriesQuery"
VARIABLE_KINDS = {"PrometheusLabelValuesVariable", "PrometheusPromQLVariable"}
# Perses unit -> Grafana unit, for the units these dashboards use.
UNITS = {
    "decimal": "short",
    "percent": "percent",
    "percent-decimal": "percentunit",
    "bytes": "bytes",
    "decbytes": "decbytes",
    "bytes/sec": "Bps",
    "bits/sec": "bps",
    "requests/sec": "reqps",
    "ops/sec": "ops",
    "reads/sec": "rps",
    "writes/sec": "wps",
    "nanoseconds": "ns",
    "microseconds": "µs",
    "milliseconds": "ms",
    "seconds": "s",
    "minutes": "m",
    "hours": "h",
    "days": "d",
}
# Perses calculation -> Grafana reducer.
CALCULATIONS = {
    "last": "last",
    "last-number": "lastNotNull",
    "first": "first",
    "first-number": "firstNotNull",
    "mean": "mean",
    "sum": "sum",
    "min": "min",
    "max": "max",
}
# Variables Perses (and Grafana) define themselves, and a value to put in their place when a
# query is parsed or run outside a dashboard.
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
VARIABLE_REF = re.compile(r"\$\{?(\w+)\}?")
GRAFANA_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


class DashboardError(ValueError):
    """A dashboard breaks a rule; str() names the dashboard and the place."""


@dataclass(frozen=True)
class Query:
    dashboard: str
    where: str  # "panel <key>", "variable <name>"
    expr: str


def source_dir() -> Path:
    """monitoring/dashboards of the checkout this package was installed from."""
    return Path(__file__).resolve().parents[3] / "monitoring" / "dashboards"


def sources(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    board = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(board, dict):
        raise DashboardError(f"{path.name}: not a YAML mapping")
    return board


def queries(board: dict[str, Any]) -> list[Query]:
    """Every PromQL expression of a dashboard: panel queries and the variables' selectors."""
    name = board["metadata"]["name"]
    found = []
    for key, panel in board["spec"].get("panels", {}).items():
        for query in panel["spec"].get("queries", []):
            found.append(Query(name, f"panel {key}", query["spec"]["plugin"]["spec"]["query"]))
    for variable in board["spec"].get("variables", []):
        plugin = variable["spec"].get("plugin", {})
        spec = plugin.get("spec", {})
        where = f"variable {variable['spec']['name']}"
        if plugin.get("kind") == "PrometheusLabelValuesVariable":
            found += [Query(name, where, matcher) for matcher in spec.get("matchers", [])]
        elif plugin.get("kind") == "PrometheusPromQLVariable":
            found.append(Query(name, where, spec["expr"]))
    return found


def substitute(expr: str) -> str:
    """The query as it can be parsed or run on its own: built-in variables by a typical value,
    the dashboard's own (multi-value, all by default) by a match-all regular expression."""

    def value(match: re.Match[str]) -> str:
        return BUILTIN_VARIABLES.get(match.group(1), ".*")

    return VARIABLE_REF.sub(value, expr)


def _layout_items(board: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    for number, layout in enumerate(board["spec"].get("layouts", [])):
        for item in layout["spec"].get("items", []):
            yield number, layout, item


def _panel_key(ref: str) -> str:
    prefix = "#/spec/panels/"
    if not ref.startswith(prefix):
        raise DashboardError(f"layout refers to {ref!r}; refer to a panel as {prefix}<key>")
    return ref[len(prefix) :]


def _check(board: dict[str, Any], stem: str) -> list[str]:
    problems: list[str] = []
    if board.get("kind") != "Dashboard":
        return [f"kind is {board.get('kind')!r}, expected 'Dashboard'"]
    meta, spec = board.get("metadata", {}), board.get("spec", {})
    if meta.get("name") != stem:
        problems.append(f"metadata.name is {meta.get('name')!r}: name the file after the dashboard ({stem}.yaml)")
    if meta.get("project") != PROJECT:
        problems.append(f"metadata.project is {meta.get('project')!r}, expected {PROJECT!r}")
    display = spec.get("display", {})
    if not display.get("name") or not display.get("description"):
        problems.append("spec.display needs a name and a description")
    if "datasources" in spec:
        problems.append("spec.datasources: the queries use the project's Prometheus datasource")

    defined = set(BUILTIN_VARIABLES)
    for variable in spec.get("variables", []):
        vspec = variable.get("spec", {})
        defined.add(vspec.get("name"))
        kind = vspec.get("plugin", {}).get("kind")
        if variable.get("kind") != "ListVariable" or kind not in VARIABLE_KINDS:
            problems.append(f"variable {vspec.get('name')}: a ListVariable with one of {sorted(VARIABLE_KINDS)}")
        if kind == "PrometheusLabelValuesVariable" and len(vspec["plugin"]["spec"].get("matchers", [])) != 1:
            problems.append(f"variable {vspec.get('name')}: one matcher (Grafana's label_values takes one)")

    panels = spec.get("panels", {})
    for key, panel in panels.items():
        pspec = panel.get("spec", {})
        kind = pspec.get("plugin", {}).get("kind")
        where = f"panel {key}"
        if kind not in PANEL_KINDS:
            problems.append(f"{where}: panel kind {kind!r} is none of the shipped plugins ({', '.join(PANEL_KINDS)})")
            continue
        if not pspec.get("display", {}).get("name") or not pspec.get("display", {}).get("description"):
            problems.append(f"{where}: display needs a name and a description (it says what the panel shows)")
        plugin_spec = pspec["plugin"].get("spec", {})
        unit = (plugin_spec.get("yAxis", {}).get("format") or plugin_spec.get("format") or {}).get("unit")
        if unit is not None and unit not in UNITS:
            problems.append(f"{where}: unit {unit!r} has no Grafana equivalent here ({', '.join(UNITS)})")
        if kind == "StatChart" and plugin_spec.get("calculation") not in CALCULATIONS:
            problems.append(f"{where}: calculation {plugin_spec.get('calculation')!r}")
        queries_ = pspec.get("queries", [])
        if kind != "Markdown" and not queries_:
            problems.append(f"{where}: no query")
        for query in queries_:
            qkind = query.get("spec", {}).get("plugin", {}).get("kind")
            qspec = query.get("spec", {}).get("plugin", {}).get("spec", {})
            if qkind != QUERY_KIND:
                problems.append(f"{where}: query kind {qkind!r}, expected {QUERY_KIND}")
            elif not str(qspec.get("query", "")).strip():
                problems.append(f"{where}: empty query")
            elif "datasource" in qspec:
                problems.append(f"{where}: leave the datasource out (the project's default is used)")
    for query in queries(board) if not problems else []:
        for name in VARIABLE_REF.findall(query.expr):
            if name not in defined:
                problems.append(f"{query.where}: ${name} is not a variable of the dashboard")

    placed: dict[str, int] = {}
    cells: dict[int, set[tuple[int, int]]] = {}
    for number, layout, item in _layout_items(board):
        if layout.get("kind") != "Grid" or not layout.get("spec", {}).get("display", {}).get("title"):
            problems.append(f"layout {number}: a Grid with a display title (a row in Grafana)")
        try:
            key = _panel_key(item.get("content", {}).get("$ref", ""))
        except DashboardError as exc:
            problems.append(f"layout {number}: {exc}")
            continue
        if key not in panels:
            problems.append(f"layout {number}: panel {key} does not exist")
        placed[key] = placed.get(key, 0) + 1
        x, y, w, h = (item.get(k) for k in ("x", "y", "width", "height"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 or w < 1 or h < 1:
            problems.append(f"layout {number}: panel {key} needs whole x, y, width and height")
            continue
        if x + w > GRID_COLUMNS:
            problems.append(f"layout {number}: panel {key} ends at column {x + w}, beyond {GRID_COLUMNS}")
        area = {(cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)}
        if area & cells.setdefault(number, set()):
            problems.append(f"layout {number}: panel {key} overlaps another panel")
        cells[number] |= area
    for key in panels:
        if placed.get(key, 0) != 1:
            problems.append(f"panel {key} is laid out {placed.get(key, 0)} times, expected once")
    return problems


def check(path: Path) -> dict[str, Any]:
    """Load a dashboard source and apply the project's rules; raise DashboardError naming each problem."""
    board = load(path)
    problems = _check(board, path.stem)
    if problems:
        raise DashboardError(f"{path.name}: " + "; ".join(problems))
    return board


def _grafana_unit(plugin_spec: dict[str, Any]) -> str | None:
    fmt = plugin_spec.get("yAxis", {}).get("format") or plugin_spec.get("format") or {}
    return UNITS[fmt["unit"]] if "unit" in fmt else None


def _grafana_thresholds(plugin_spec: dict[str, Any]) -> dict[str, Any] | None:
    thresholds = plugin_spec.get("thresholds")
    if not thresholds:
        return None
    steps = [{"color": thresholds.get("defaultColor", "green"), "value": None}]
    steps += [{"color": step.get("color", "red"), "value": step["value"]} for step in thresholds.get("steps", [])]
    return {"mode": thresholds.get("mode", "absolute"), "steps": steps}


def _grafana_panel(key: str, panel: dict[str, Any], number: int, grid: dict[str, int]) -> dict[str, Any]:
    spec = panel["spec"]
    kind = spec["plugin"]["kind"]
    plugin_spec = spec["plugin"].get("spec", {})
    out: dict[str, Any] = {
        "id": number,
        "type": PANEL_KINDS[kind],
        "title": spec["display"]["name"],
        "description": spec["display"].get("description", ""),
        "gridPos": grid,
    }
    if kind == "Markdown":
        out["options"] = {"mode": "markdown", "content": plugin_spec.get("text", "")}
        return out
    out["datasource"] = GRAFANA_DATASOURCE
    out["targets"] = [
        {
            "datasource": GRAFANA_DATASOURCE,
            "expr": query["spec"]["plugin"]["spec"]["query"],
            "legendFormat": query["spec"]["plugin"]["spec"].get("seriesNameFormat", "__auto"),
            "range": True,
            "refId": chr(ord("A") + index),
        }
        for index, query in enumerate(spec.get("queries", []))
    ]
    defaults: dict[str, Any] = {}
    if (unit := _grafana_unit(plugin_spec)) is not None:
        defaults["unit"] = unit
    fmt = plugin_spec.get("yAxis", {}).get("format") or plugin_spec.get("format") or {}
    if "decimalPlaces" in fmt:
        defaults["decimals"] = fmt["decimalPlaces"]
    for bound in ("min", "max"):
        if bound in plugin_spec.get("yAxis", {}):
            defaults[bound] = plugin_spec["yAxis"][bound]
    if (thresholds := _grafana_thresholds(plugin_spec)) is not None:
        defaults["thresholds"] = thresholds
        defaults["color"] = {"mode": "thresholds"}
    out["fieldConfig"] = {"defaults": defaults, "overrides": []}
    if kind == "TimeSeriesChart":
        legend = plugin_spec.get("legend")
        out["options"] = {
            "legend": {
                "showLegend": legend is not None,
                "displayMode": (legend or {}).get("mode", "list"),
                "placement": (legend or {}).get("position", "bottom"),
                "calcs": [],
            },
            "tooltip": {"mode": "multi", "sort": "none"},
        }
    elif kind == "StatChart":
        out["options"] = {
            "reduceOptions": {"calcs": [CALCULATIONS[plugin_spec["calculation"]]], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area" if "sparkline" in plugin_spec else "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    return out


def _grafana_variable(variable: dict[str, Any]) -> dict[str, Any]:
    spec = variable["spec"]
    plugin = spec["plugin"]
    if plugin["kind"] == "PrometheusLabelValuesVariable":
        (matcher,) = plugin["spec"]["matchers"]
        query = f"label_values({matcher}, {plugin['spec']['labelName']})"
    else:
        query = f"query_result({plugin['spec']['expr']})"
    out: dict[str, Any] = {
        "name": spec["name"],
        "label": spec.get("display", {}).get("name", spec["name"]),
        "type": "query",
        "datasource": GRAFANA_DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{spec['name']}-values"},
        "refresh": 2,
        "sort": 1,
        "multi": bool(spec.get("allowMultiple")),
        "includeAll": bool(spec.get("allowAllValue")),
        "current": {},
        "hide": 2 if spec.get("display", {}).get("hidden") else 0,
        "regex": "",
    }
    if spec.get("customAllValue"):
        out["allValue"] = spec["customAllValue"]
    return out


def _grafana_duration(duration: str) -> str:
    if not re.fullmatch(r"(\d+[smhdwy])+", duration):
        raise DashboardError(f"duration {duration!r} is not a Perses duration")
    return f"now-{duration}"


def to_grafana(board: dict[str, Any]) -> dict[str, Any]:
    """The dashboard in Grafana's JSON model: each Perses grid becomes a row, each panel keeps its
    place, queries and legend, units and thresholds; the data source is a dashboard variable."""
    name = board["metadata"]["name"]
    spec = board["spec"]
    panels: list[dict[str, Any]] = []
    number = 0
    top = 0
    for layout in spec.get("layouts", []):
        items = layout["spec"].get("items", [])
        number += 1
        panels.append(
            {
                "id": number,
                "type": "row",
                "title": layout["spec"]["display"]["title"],
                "collapsed": not layout["spec"]["display"].get("collapse", {}).get("open", True),
                "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": top},
                "panels": [],
            }
        )
        top += 1
        for item in sorted(items, key=lambda i: (i["y"], i["x"])):
            number += 1
            key = _panel_key(item["content"]["$ref"])
            grid = {"h": item["height"], "w": item["width"], "x": item["x"], "y": top + item["y"]}
            panels.append(_grafana_panel(key, spec["panels"][key], number, grid))
        top += max((i["y"] + i["height"] for i in items), default=0)
    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }
    return {
        "__comment": f"Generated from monitoring/dashboards/{name}.yaml by `make dashboards`: edit the source.",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": spec["display"].get("description", ""),
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": False,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "tags": [PROJECT],
                "targetBlank": False,
                "title": PROJECT,
                "type": "dashboards",
            }
        ],
        "panels": panels,
        "refresh": spec.get("refreshInterval", ""),
        "schemaVersion": 39,
        "tags": [PROJECT, name],
        "templating": {"list": [datasource] + [_grafana_variable(v) for v in spec.get("variables", [])]},
        "time": {"from": _grafana_duration(spec.get("duration", "1h")), "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": spec["display"]["name"],
        "uid": f"{PROJECT}-{name}",
        "version": 1,
        "weekStart": "",
    }


def render_grafana(board: dict[str, Any]) -> str:
    return json.dumps(to_grafana(board), indent=2, ensure_ascii=False) + "\n"


def export(source: Path, out: Path) -> list[Path]:
    """Write grafana/<name>.json for every source; remove exports whose source is gone."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    boards = {path.stem: check(path) for path in sources(source)}
    for stem, board in boards.items():
        target = out / f"{stem}.json"
        text = render_grafana(board)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    for stale in out.glob("*.json"):
        if stale.stem not in boards:
            stale.unlink()
            written.append(stale)
    return written


def stale_exports(source: Path, out: Path) -> list[str]:
    """Names of exports that differ from what export() would write (missing, changed or orphaned)."""
    boards = {path.stem: check(path) for path in sources(source)}
    stale = []
    for stem, board in boards.items():
        target = out / f"{stem}.json"
        if not target.exists() or target.read_text(encoding="utf-8") != render_grafana(board):
            stale.append(target.name)
    stale += [p.name for p in out.glob("*.json") if p.stem not in boards]
    return sorted(stale)
