"""The migration report: one HTML page with PNG charts drawn from Prometheus, the phase history,
the last phase-2 validation, the writer's journal totals and a link to each dashboard in Perses.

    python -m zdmkit.report --prometheus http://10.0.4.11:9090 --state-dir inventories/lab/state \\
        --journal reports/journal.jsonl --perses http://127.0.0.1:3000 --out reports/migration

Each chart overlays every query that has data over the window; queries without data are named
under the chart, and a chart with no data at all is listed as such instead of drawn blank.
Phase changes from ``phase.json`` are drawn as vertical lines on every chart. ``report.json``
beside the page records, per chart, the series and their point counts, and the phase markers.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zdmkit import dashboards as _dashboards
from zdmkit.writer.journal import journal_text, parse_journal

RATE = "[1m]"
# The writer's limit for one attempt (demo_app_writer_timeout's default): an attempt with no
# outcome yet, begun less than this before the journal's newest line, may still be under way.
IN_FLIGHT_S = 90.0


@dataclass(frozen=True)
class Query:
    label: str  # legend prefix; the series' label values follow it
    expr: str


@dataclass(frozen=True)
class Chart:
    slug: str
    title: str
    unit: str
    queries: tuple[Query, ...]


CHARTS: tuple[Chart, ...] = (
    Chart(
        "client-ops",
        "Client requests per second",
        "requests/s",
        (
            Query(
                "demo app",
                f'sum by (route) (rate(zdmkit_demo_app_requests_total{{route!~"/metrics|/healthz"}}{RATE}))',
            ),
            # zero, not a gap, once the proxies are stopped (phase 5)
            Query("through the proxies", f"sum(rate(zdm_proxy_request_duration_seconds_count{RATE})) or vector(0)"),
        ),
    ),
    Chart(
        "ops-by-cluster",
        "Reads and writes by cluster",
        "requests/s",
        (
            Query(
                "cassandra",
                f'sum by (cluster, operation) (rate(cassandra_client_requests_total{{operation=~"Read|Write"}}{RATE}))',
            ),
            Query(
                "proxy",
                "sum by (type) (rate(zdm_proxy_request_duration_seconds_count"
                f'{{type=~"reads_origin|reads_target"}}{RATE}))',
            ),
        ),
    ),
    Chart(
        "failed-writes",
        "Failed writes",
        "failures/s",
        (
            Query("proxy, failed on", f"sum by (failed_on) (rate(zdm_proxy_failed_writes_total{RATE}))"),
            Query(
                "cassandra write errors",
                f'sum(rate(cassandra_client_request_errors_total{{operation="Write"}}{RATE})) or vector(0)',
            ),
            Query("demo app database failures", f"sum(rate(zdmkit_demo_app_db_failures_total{RATE})) or vector(0)"),
        ),
    ),
    Chart(
        "latency-p99",
        "p99 latency by cluster",
        "seconds",
        (
            Query(
                "cassandra",
                'max by (cluster, operation) (cassandra_client_request_latency_seconds{quantile="0.99", '
                'operation=~"Read|Write"})',
            ),
            Query(
                "proxy to origin",
                f"histogram_quantile(0.99, sum by (le) (rate(zdm_origin_request_duration_seconds_bucket{RATE})))",
            ),
            Query(
                "proxy to target",
                f"histogram_quantile(0.99, sum by (le) (rate(zdm_target_request_duration_seconds_bucket{RATE})))",
            ),
        ),
    ),
)


@dataclass
class Series:
    name: str
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class PrometheusError(RuntimeError):
    pass


def query_range(base: str, expr: str, start: float, end: float, step: float, timeout: float = 30) -> list[dict]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    url = f"{base.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 -- an operator-given http URL
            body = json.load(response)
    except OSError as exc:
        raise PrometheusError(f"Prometheus at {base} did not answer: {exc}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus refused {expr!r}: {body.get('error')}")
    return body["data"]["result"]


def series_name(label: str, metric: dict[str, str]) -> str:
    values = [v for k, v in sorted(metric.items()) if k != "__name__"]
    return " ".join([label, *values]) if values else label


def to_series(label: str, result: list[dict]) -> list[Series]:
    out = []
    for item in result:
        s = Series(series_name(label, item.get("metric", {})))
        for t, v in item.get("values", []):
            value = float(v)
            if value == value:  # NaN (no requests in a window) is a gap, not a point
                s.times.append(float(t))
                s.values.append(value)
        if s.times:
            out.append(s)
    return out


@dataclass
class PhaseMarker:
    phase: int
    at: str
    epoch: float


def phase_markers(history: list[dict]) -> list[PhaseMarker]:
    markers = []
    for entry in history:
        at = entry.get("at")
        if not at:
            continue
        epoch = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        markers.append(PhaseMarker(int(entry["to"]), at, epoch))
    return markers


def journal_totals(path: Path | None, in_flight_s: float = IN_FLIGHT_S) -> dict[str, int] | None:
    """The journal's attempts: acknowledged, failed (anything else), and in flight.

    The journal is read while the writer runs: its newest attempts may have been sent with no
    outcome journaled yet. An attempt without an outcome that began less than ``in_flight_s``
    before the newest line of the journal (the writer's own limit for one attempt) counts as
    in flight; an older one never got its answer (the writer stopped during it) and is failed.
    """
    if path is None or not path.exists():
        return None
    text = journal_text(path)
    finished = list(parse_journal(text, str(path), in_flight=False))
    unanswered = list(parse_journal(text, str(path)))[len(finished) :]
    stamps = [_journal_time(a.ts) for a in finished + unanswered]
    newest = max(stamps, default=0.0)
    in_flight = sum(1 for a in unanswered if _journal_time(a.ts) >= newest - in_flight_s)
    acknowledged = sum(1 for a in finished if a.acknowledged)
    return {
        "attempts": len(finished) + len(unanswered),
        "acknowledged": acknowledged,
        "failed": len(finished) - acknowledged + len(unanswered) - in_flight,
        "in_flight": in_flight,
    }


def _journal_time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class DashboardLink:
    name: str
    title: str
    url: str


def dashboard_links(perses: str, directory: Path) -> list[DashboardLink]:
    """The Perses URL of each dashboard of the directory, the migration overview first."""
    links = []
    for path in _dashboards.sources(directory):
        board = _dashboards.load(path)
        project, name = board["metadata"]["project"], board["metadata"]["name"]
        url = f"{perses.rstrip('/')}/projects/{urllib.parse.quote(project)}/dashboards/{urllib.parse.quote(name)}"
        links.append(DashboardLink(name, board["spec"]["display"]["name"], url))
    return sorted(links, key=lambda link: (link.name != "migration", link.title))


def draw(chart: Chart, series: list[Series], markers: list[PhaseMarker], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
    for s in series:
        ax.plot([datetime.fromtimestamp(t, UTC) for t in s.times], s.values, label=s.name, linewidth=1.4)
    for m in markers:
        ax.axvline(datetime.fromtimestamp(m.epoch, UTC), color="0.3", linestyle="--", linewidth=1)
        ax.annotate(
            f"phase {m.phase}",
            (datetime.fromtimestamp(m.epoch, UTC), 1),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    ax.set_title(chart.title)
    ax.set_ylabel(chart.unit)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def build(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = Path(args.state_dir) if args.state_dir else None
    phase = json.loads((state / "phase.json").read_text()) if state and (state / "phase.json").exists() else {}
    validation = (
        json.loads((state / "validation.json").read_text()) if state and (state / "validation.json").exists() else {}
    )
    markers = phase_markers(phase.get("history", []))
    end = args.end or time.time()
    start = end - args.window
    if markers and not args.window_given:
        start = min(start, markers[0].epoch - 300)
    step = max(5.0, (end - start) / 300)

    record: dict[str, Any] = {
        "start": start,
        "end": end,
        "phase": phase.get("phase", 0),
        "state_dir": str(state) if state else None,
        "markers": [{"phase": m.phase, "at": m.at} for m in markers],
        "charts": {},
        "validation": validation,
        "journal": journal_totals(Path(args.journal) if args.journal else None, args.writer_timeout),
        "dashboards": {},
    }
    links = dashboard_links(args.perses, Path(args.dashboards_dir)) if args.perses else []
    record["dashboards"] = {link.name: {"title": link.title, "url": link.url} for link in links}
    sections = []
    for chart in CHARTS:
        series: list[Series] = []
        empty = []
        for q in chart.queries:
            found = to_series(q.label, query_range(args.prometheus, q.expr, start, end, step))
            series += found
            if not found:
                empty.append(q.label)
        entry = {
            "series": {s.name: len(s.times) for s in series},
            "peak": {s.name: max(s.values) for s in series},
            "last": {s.name: s.values[-1] for s in series},
            "no_data": empty,
            "image": None,
        }
        title = f"<h2>{html.escape(chart.title)}</h2>"
        if series:
            image = f"{chart.slug}.png"
            draw(chart, series, markers, out / image)
            entry["image"] = image
            note = f"<p class=note>no data: {html.escape(', '.join(empty))}</p>" if empty else ""
            sections.append(f"{title}<img src='{image}' alt='{html.escape(chart.title)}'>{note}")
        else:
            sections.append(f"{title}<p class=note>no data for this window</p>")
        record["charts"][chart.slug] = entry

    history_rows = [(f"phase {h.get('from')} \u2192 {h.get('to')}", h.get("at", "")) for h in phase.get("history", [])]
    validation_rows = [(k, v) for k, v in validation.items() if k != "keyspaces"]
    journal = record["journal"]
    link_items = "".join(
        f"<li><a href='{html.escape(link.url, quote=True)}'>{html.escape(link.title)}</a></li>" for link in links
    )
    dashboards_html = (
        f"<h2>Dashboards</h2><p>Live in Perses at {html.escape(args.perses)}:</p><ul>{link_items}</ul>"
        if links
        else ""
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Migration report</title>
<style>body{{font-family:sans-serif;max-width:1040px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}
img{{max-width:100%}} .note{{color:#666;font-size:90%}}</style></head><body>
<h1>Migration report</h1>
<p>From {datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M} to {datetime.fromtimestamp(end, UTC):%Y-%m-%d %H:%M} UTC.
Current phase: <b>{record["phase"]}</b>.</p>
{dashboards_html}
<h2>Phases</h2>{_table(history_rows) if history_rows else "<p class=note>no phase change recorded</p>"}
<h2>Last phase-2 validation</h2>{_table(validation_rows) if validation_rows else "<p class=note>none recorded</p>"}
<h2>Writer journal</h2>{_table(list(journal.items())) if journal else "<p class=note>no journal given</p>"}
{"".join(sections)}
</body></html>
"""
    (out / "index.html").write_text(page)
    (out / "report.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zdmkit.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--prometheus", required=True, help="base URL of Prometheus, e.g. http://10.0.4.11:9090")
    p.add_argument("--state-dir", default=None, help="directory with phase.json and validation.json")
    p.add_argument("--journal", default=None, help="the writer's journal.jsonl")
    p.add_argument(
        "--writer-timeout",
        type=float,
        default=IN_FLIGHT_S,
        help="seconds one writer attempt may take (demo_app_writer_timeout): newer unanswered ones are in flight",
    )
    p.add_argument("--perses", default=None, help="URL people open Perses at, e.g. http://127.0.0.1:3000 (links)")
    p.add_argument(
        "--dashboards-dir", default=str(_dashboards.source_dir()), help="the Perses dashboards (*.yaml) to link"
    )
    p.add_argument("--out", required=True, help="directory for index.html, the PNG charts and report.json")
    p.add_argument("--window", type=float, default=None, help="seconds before --end to cover (default 3600)")
    p.add_argument("--end", type=float, default=None, help="end of the window, epoch seconds (default now)")
    args = p.parse_args(argv)
    args.window_given = args.window is not None
    args.window = args.window or 3600.0
    try:
        record = build(args)
    except PrometheusError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    drawn = [slug for slug, c in record["charts"].items() if c["image"]]
    print(
        f"report: {Path(args.out) / 'index.html'} ({len(drawn)} of {len(CHARTS)} charts with data, "
        f"{len(record['dashboards'])} dashboards linked)"
    )
    return 0
