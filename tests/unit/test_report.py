"""The migration report's pure parts: series from Prometheus answers, phase markers, journal totals,
and a chart drawn to a real PNG file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from zdmkit.report import CHARTS, PhaseMarker, Series, draw, journal_totals, phase_markers, series_name, to_series
from zdmkit.writer.journal import Attempt, Journal


def test_series_name_joins_the_label_values_in_order():
    assert series_name("cassandra", {"operation": "Write", "cluster": "origin"}) == "cassandra origin Write"
    assert series_name("demo app", {}) == "demo app"
    assert series_name("x", {"__name__": "up"}) == "x"


def test_nan_points_are_gaps_and_empty_series_are_dropped():
    result = [
        {"metric": {"cluster": "origin"}, "values": [[1, "1.5"], [2, "NaN"], [3, "2"]]},
        {"metric": {"cluster": "target"}, "values": [[1, "NaN"]]},
    ]
    series = to_series("c", result)
    assert [(s.name, s.times, s.values) for s in series] == [("c origin", [1.0, 3.0], [1.5, 2.0])]


def test_phase_markers_follow_the_history_and_skip_entries_without_time():
    history = [
        {"from": 0, "to": 1, "at": "2026-01-02T03:04:05Z"},
        {"from": 1, "to": 2, "at": ""},
        {"from": 2, "to": 4, "at": "2026-01-02T04:00:00Z", "forced": "ok"},
    ]
    markers = phase_markers(history)
    assert [(m.phase, m.at) for m in markers] == [(1, "2026-01-02T03:04:05Z"), (4, "2026-01-02T04:00:00Z")]
    assert markers[1].epoch - markers[0].epoch == 3600 - 245


def test_phase_markers_refuse_a_malformed_time():
    with pytest.raises(ValueError):
        phase_markers([{"to": 1, "at": "yesterday"}])


def _attempt(seq: int, code: int) -> Attempt:
    return Attempt(seq=seq, ts="2026-01-01T00:00:00Z", user="writer", status=f"s{seq}", code=code,
                   latency_ms=1.0, when="2026-01-01T00:00:00", error=None if code == 200 else "boom")  # fmt: skip


def test_journal_totals(tmp_path: Path):
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        for seq, code in enumerate([200, 201, 503, 200, 0]):
            journal.append(_attempt(seq, code))
    assert journal_totals(path) == {"attempts": 5, "acknowledged": 3, "failed": 2, "in_flight": 0}
    assert journal_totals(tmp_path / "missing.jsonl") is None
    assert journal_totals(None) is None


def test_journal_totals_of_a_running_writer(tmp_path: Path):
    # Read while the writer runs: the newest attempt has no outcome yet (in flight, not failed);
    # one begun long before the newest line never got one (the writer stopped during it).
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.begin(0, "2026-01-01T00:00:00.000Z", "writer", "s0")  # never answered
        journal.append(_attempt(1, 200))  # ts 00:00:00
        for seq in (2, 3):
            ts = f"2026-01-01T00:0{seq}:00.000Z"
            journal.begin(seq, ts, "writer", f"s{seq}")
            journal.append(dataclasses.replace(_attempt(seq, 200), ts=ts))
        journal.begin(4, "2026-01-01T00:03:00.500Z", "writer", "s4")  # still under way
    assert journal_totals(path) == {"attempts": 5, "acknowledged": 3, "failed": 1, "in_flight": 1}
    # with a writer limit longer than the 3 minutes since s0, s0 may still be under way too
    assert journal_totals(path, in_flight_s=200) == {"attempts": 5, "acknowledged": 3, "failed": 0, "in_flight": 2}


def test_a_chart_is_drawn_with_its_phase_markers(tmp_path: Path):
    series = [Series("cassandra origin Write", [1_700_000_000.0, 1_700_000_060.0], [3.0, 4.0])]
    out = tmp_path / "chart.png"
    draw(CHARTS[1], series, [PhaseMarker(1, "2023-11-14T22:13:50Z", 1_700_000_030.0)], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5_000


def test_every_chart_has_a_unique_slug_and_queries():
    assert len({c.slug for c in CHARTS}) == len(CHARTS)
    assert all(c.queries for c in CHARTS)


def test_each_dashboard_is_linked_by_its_perses_url_the_overview_first():
    from zdmkit.dashboards import source_dir
    from zdmkit.report import dashboard_links

    links = dashboard_links("http://127.0.0.1:3000/", source_dir())
    assert links[0].name == "migration"
    assert {link.name: link.url for link in links} == {
        name: f"http://127.0.0.1:3000/projects/zdmkit/dashboards/{name}"
        for name in ("migration", "zdm-proxy", "cassandra", "hosts", "demo-app")
    }
    assert links[0].title == "Migration overview"


def test_the_page_links_the_dashboards(tmp_path: Path, monkeypatch):
    import json

    import zdmkit.report as report

    # The page's composition only: every chart query answers "no data".
    monkeypatch.setattr(report, "query_range", lambda *args, **kwargs: [])
    assert report.main(["--prometheus", "http://127.0.0.1:1", "--perses", "http://127.0.0.1:3000",
                        "--out", str(tmp_path)]) == 0  # fmt: skip
    page = (tmp_path / "index.html").read_text()
    assert "<a href='http://127.0.0.1:3000/projects/zdmkit/dashboards/zdm-proxy'>ZDM proxy</a>" in page
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["dashboards"]["migration"]["url"] == "http://127.0.0.1:3000/projects/zdmkit/dashboards/migration"


def test_without_perses_the_page_has_no_dashboard_links(tmp_path: Path, monkeypatch):
    import zdmkit.report as report

    monkeypatch.setattr(report, "query_range", lambda *args, **kwargs: [])
    assert report.main(["--prometheus", "http://127.0.0.1:1", "--out", str(tmp_path)]) == 0
    assert "<h2>Dashboards</h2>" not in (tmp_path / "index.html").read_text()
