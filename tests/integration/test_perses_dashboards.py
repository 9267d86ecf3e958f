"""The dashboards as a person sees them: a running Perses with the repository's dashboards, its
plugins and its Prometheus datasource, the queries answered by the live Prometheus through
Perses, and every dashboard opened in headless Chromium, read, and photographed.

    ZDMKIT_PERSES_URL=http://10.0.4.11:3000 ZDMKIT_PROMETHEUS_URL=http://10.0.4.11:9090 \\
    ZDMKIT_DASHBOARDS_WITH_DATA=cassandra,hosts pytest tests/integration/test_perses_dashboards.py

Environment:

- ``ZDMKIT_PERSES_URL``, ``ZDMKIT_PROMETHEUS_URL`` (required): the server and the Prometheus its
  datasource must point at;
- ``ZDMKIT_PERSES_USERNAME`` / ``ZDMKIT_PERSES_PASSWORD``: sign in first (sign-in on);
- ``ZDMKIT_DASHBOARDS_WITH_DATA``: comma-separated dashboards (file names without .yaml) whose
  every panel and query must have data; the others must load without an error;
- ``ZDMKIT_DASHBOARDS_DIR``: the dashboards expected (default: the repository's);
- ``ZDMKIT_DASHBOARD_SCREENSHOTS``: where the screenshots go (default ``reports/dashboards``).

Any scenario with its own Perses and Prometheus can run it; without the URLs the tests are
skipped, and with ``ZDMKIT_REQUIRE_INTEGRATION=1`` that is a failure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import Browser

from zdmkit import dashboards

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PERSES = os.environ.get("ZDMKIT_PERSES_URL", "").rstrip("/")
PROMETHEUS = os.environ.get("ZDMKIT_PROMETHEUS_URL", "").rstrip("/")
USERNAME = os.environ.get("ZDMKIT_PERSES_USERNAME", "")
PASSWORD = os.environ.get("ZDMKIT_PERSES_PASSWORD", "")
WITH_DATA = {name.strip() for name in os.environ.get("ZDMKIT_DASHBOARDS_WITH_DATA", "").split(",") if name.strip()}
SOURCE = Path(os.environ.get("ZDMKIT_DASHBOARDS_DIR") or ROOT / "monitoring/dashboards")
SCREENSHOTS = Path(os.environ.get("ZDMKIT_DASHBOARD_SCREENSHOTS") or ROOT / "reports/dashboards")
PROJECT = dashboards.PROJECT
DATASOURCE = "prometheus"
# How long a page may take to show every panel with its data, and the window queries cover.
RENDER_TIMEOUT = float(os.environ.get("ZDMKIT_DASHBOARD_RENDER_TIMEOUT", "60"))
QUERY_WINDOW = 600

if not (PERSES and PROMETHEUS) and os.environ.get("ZDMKIT_REQUIRE_INTEGRATION") == "1":
    raise RuntimeError("ZDMKIT_REQUIRE_INTEGRATION=1 but ZDMKIT_PERSES_URL or ZDMKIT_PROMETHEUS_URL is not set")
if not (PERSES and PROMETHEUS):
    pytest.skip("set ZDMKIT_PERSES_URL and ZDMKIT_PROMETHEUS_URL to run against a Perses", allow_module_level=True)

BOARDS = {path.stem: dashboards.load(path) for path in dashboards.sources(SOURCE)}
if unknown := WITH_DATA - set(BOARDS):
    raise RuntimeError(f"ZDMKIT_DASHBOARDS_WITH_DATA names {sorted(unknown)}, not dashboards of {SOURCE}")


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    headers = {}
    if USERNAME:
        answer = httpx.post(
            f"{PERSES}/api/auth/providers/native/login", json={"login": USERNAME, "password": PASSWORD}, timeout=30
        )
        assert answer.status_code == 200, f"sign-in as {USERNAME}: HTTP {answer.status_code} {answer.text[:200]}"
        headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    with httpx.Client(base_url=PERSES, headers=headers, timeout=30) as client:
        yield client


def test_every_plugin_is_loaded(api: httpx.Client):
    modules = api.get("/api/v1/plugins").raise_for_status().json()
    assert modules, "the server loaded no plugin"
    not_loaded = [m["metadata"]["name"] for m in modules if not m["status"]["isLoaded"]]
    assert not_loaded == [], f"plugins not loaded: {not_loaded}"
    kinds = {plugin["spec"]["name"] for m in modules for plugin in m["spec"]["plugins"]}
    used = {panel["spec"]["plugin"]["kind"] for board in BOARDS.values() for panel in board["spec"]["panels"].values()}
    used |= {"PrometheusDatasource", "PrometheusTimeSeriesQuery", "PrometheusLabelValuesVariable"}
    assert used <= kinds, f"the dashboards use {sorted(used - kinds)}, which no loaded plugin provides"


def test_the_datasource_is_the_live_prometheus(api: httpx.Client):
    source = api.get(f"/api/v1/projects/{PROJECT}/datasources/{DATASOURCE}").raise_for_status().json()
    assert source["spec"]["default"] is True
    assert source["spec"]["plugin"]["spec"]["proxy"]["spec"]["url"].rstrip("/") == PROMETHEUS
    answer = _query(api, "up")
    assert answer["status"] == "success" and answer["data"]["result"], answer


def test_every_dashboard_is_provisioned_as_in_the_repository(api: httpx.Client):
    listed = api.get(f"/api/v1/projects/{PROJECT}/dashboards").raise_for_status().json()
    served = {d["metadata"]["name"] for d in listed}
    assert set(BOARDS) <= served, f"not provisioned: {sorted(set(BOARDS) - served)}"
    for name, board in BOARDS.items():
        spec = api.get(f"/api/v1/projects/{PROJECT}/dashboards/{name}").raise_for_status().json()["spec"]
        assert json.loads(json.dumps(spec)) == json.loads(json.dumps(board["spec"])), f"{name}: served differs"


def _query(api: httpx.Client, expr: str) -> dict[str, Any]:
    """A range query over the last minutes, through the Perses datasource proxy (what panels do)."""
    end = time.time()
    answer = api.post(
        f"/proxy/projects/{PROJECT}/datasources/{DATASOURCE}/api/v1/query_range",
        data={"query": expr, "start": end - QUERY_WINDOW, "end": end, "step": 15},
    )
    try:
        return answer.json()
    except ValueError:
        return {"status": "error", "error": f"HTTP {answer.status_code}: {answer.text[:200]}"}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_query_runs_through_perses(api: httpx.Client, name: str):
    failed, empty = [], []
    for query in dashboards.queries(BOARDS[name]):
        answer = _query(api, dashboards.substitute(query.expr))
        if answer.get("status") != "success":
            failed.append(f"{query.where}: {answer.get('error')}")
        elif not answer["data"]["result"]:
            empty.append(f"{query.where}: {query.expr}")
    assert failed == [], f"{name}: queries refused: {failed}"
    if name in WITH_DATA:
        assert empty == [], f"{name}: queries without data: {empty}"


# -- In the browser --------------------------------------------------------------------------

# For every panel on the page: its title, whether it shows an error or "No data", how many
# legend entries (series) and canvases it draws, and the rest of its text.
READ_PANELS = """
return Array.from(document.querySelectorAll('[data-testid="panel"]')).map(p => {
  const lines = p.innerText.split('\\n').map(s => s.trim()).filter(s => s.length > 0);
  const alert = p.querySelector('[role="alert"]');
  return {
    title: lines[0] || '',
    text: lines.slice(1),
    error: alert ? (alert.innerText || 'error') : null,
    noData: /\\bNo data\\b/.test(p.innerText),
    legend: p.querySelectorAll('[role="listitem"]').length,
    canvases: p.querySelectorAll('canvas').length,
    loading: p.querySelector('[role="progressbar"], .MuiSkeleton-root') !== null,
  };
});
"""
READ_PAGE = """
const alerts = Array.from(document.querySelectorAll('[role="alert"]'))
  .filter(a => !a.closest('[data-testid="panel"]')).map(a => a.innerText);
return {alerts: alerts, height: document.documentElement.scrollHeight, view: window.innerHeight,
        title: document.title,
        text: document.body.innerText.slice(0, 300)};
"""
SIGN_IN = """
const answer = await fetch('/api/auth/providers/native/login', {
  method: 'POST', headers: {'Content-Type': 'application/json'}, credentials: 'same-origin',
  body: JSON.stringify({login: arguments[0], password: arguments[1]})});
return answer.status;
"""


def _kinds(board: dict[str, Any]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for panel in board["spec"]["panels"].values():
        title = panel["spec"]["display"]["name"]
        assert title not in titles, f"two panels are titled {title!r}: the page cannot tell them apart"
        titles[title] = panel["spec"]["plugin"]["kind"]
    return titles


def _has_data(panel: dict[str, Any], kind: str) -> bool:
    if panel["error"] or panel["noData"]:
        return False
    if kind in ("TimeSeriesChart", "BarChart"):
        return panel["legend"] > 0 and panel["canvases"] > 0
    return len(panel["text"]) > 0


def _settled(panel: dict[str, Any], kind: str) -> bool:
    """Done: an error, data or "No data" shown (a panel refreshing shows a progress mark over
    what it shows, for long on a busy machine), or a chart drawn once no longer loading."""
    if panel["error"] is not None or panel["noData"] or _has_data(panel, kind):
        return True
    drawn = panel["canvases"] > 0 if kind in ("TimeSeriesChart", "BarChart") else False
    return not panel["loading"] and drawn


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as chromium:
        if USERNAME:
            chromium.open(f"{PERSES}/")
            status = chromium.run(SIGN_IN, USERNAME, PASSWORD)
            assert status == 200, f"sign-in in the browser: {status}"
        yield chromium


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_renders_in_the_browser(browser: Browser, name: str):
    kinds = _kinds(BOARDS[name])
    browser.resize(1400, 1000)
    browser.open(f"{PERSES}/projects/{PROJECT}/dashboards/{name}")
    deadline = time.monotonic() + RENDER_TIMEOUT
    panels: list[dict[str, Any]] = []
    height = 1000
    steady = 0  # polls in a row with every panel settled: a page that stays so is done
    while time.monotonic() < deadline:
        # Perses draws panels (and groups) only once they are in view: grow the window until the
        # whole dashboard is the view.
        page = browser.run(READ_PAGE)
        if page["height"] > page["view"]:
            height += page["height"] - page["view"] + 600
            browser.resize(1400, height)
            time.sleep(0.5)
            continue
        panels = browser.run(READ_PANELS)
        settled = len(panels) == len(kinds) and all(_settled(p, kinds.get(p["title"], "")) for p in panels)
        steady = steady + 1 if settled else 0
        if name in WITH_DATA and settled and all(_has_data(p, kinds.get(p["title"], "")) for p in panels):
            break
        if name not in WITH_DATA and steady >= 3:
            break
        time.sleep(1)
    page = browser.run(READ_PAGE)
    shot = browser.screenshot(SCREENSHOTS / f"{name}.png")
    assert len(panels) == len(kinds), f"{name}: {len(panels)} panels on the page, expected {len(kinds)}: {page['text']}"
    assert {p["title"] for p in panels} == set(kinds), f"{name}: panel titles differ from the dashboard's"
    assert page["alerts"] == [], f"{name}: the page shows {page['alerts']} (see {shot})"
    errors = {p["title"]: p["error"] for p in panels if p["error"]}
    assert errors == {}, f"{name}: panels show errors (see {shot})"
    loading = [p["title"] for p in panels if not _settled(p, kinds[p["title"]])]
    assert loading == [], f"{name}: panels still loading after {RENDER_TIMEOUT:.0f} s (see {shot})"
    if name in WITH_DATA:
        without = [p["title"] for p in panels if not _has_data(p, kinds[p["title"]])]
        assert without == [], f"{name}: panels without data after {RENDER_TIMEOUT:.0f} s (see {shot})"
