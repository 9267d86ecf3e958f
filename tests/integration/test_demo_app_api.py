"""The status API against a real Cassandra: the lab's calls, odd input, metrics.

Two ways to run it (both need a real cluster; nothing is mocked):

- against a deployed application: ``ZDMKIT_DEMO_APP_URL=http://10.0.0.5:8000``; the
  cluster must already hold the lab's schema and seed rows (the Molecule scenario
  ``demo_app`` deploys both and runs this file);
- in process, against a Cassandra node: ``ZDMKIT_TEST_CASSANDRA=host[:port]`` with
  ``ZDMKIT_TEST_CASSANDRA_USERNAME`` / ``ZDMKIT_TEST_CASSANDRA_PASSWORD`` when auth is on;
  the test creates the keyspace (replication factor 1) and the seed rows if missing.

Without either variable the tests are skipped.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from integration_env import need_module

pytestmark = pytest.mark.integration

URL = os.environ.get("ZDMKIT_DEMO_APP_URL", "")
CASSANDRA = os.environ.get("ZDMKIT_TEST_CASSANDRA", "")
USERNAME = os.environ.get("ZDMKIT_TEST_CASSANDRA_USERNAME", "")
PASSWORD = os.environ.get("ZDMKIT_TEST_CASSANDRA_PASSWORD", "")
MAX_ENTRIES = int(os.environ.get("ZDMKIT_TEST_MAX_ENTRIES", "100"))
MAX_STATUS_BYTES = int(os.environ.get("ZDMKIT_TEST_MAX_STATUS_BYTES", "4096"))

# The lab's seed rows, newest first.
SEED_EVA = [
    {"user": "eva", "when": "2022-10-10T14:00:00.000", "status": "Asleep"},
    {"user": "eva", "when": "2022-10-10T13:00:00.000", "status": "Away"},
    {"user": "eva", "when": "2022-10-10T12:00:00.000", "status": "Online"},
]
SCHEMA = [
    "CREATE KEYSPACE IF NOT EXISTS zdmapp WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    'CREATE TABLE IF NOT EXISTS zdmapp.user_status ("user" text, "when" timestamp, status text, '
    'PRIMARY KEY (("user"), "when")) WITH CLUSTERING ORDER BY ("when" DESC)',
]

need_module(bool(URL or CASSANDRA), "set ZDMKIT_DEMO_APP_URL or ZDMKIT_TEST_CASSANDRA to run against a real cluster")


def _prepare_cluster() -> None:
    """Create the lab's schema and seed rows (same keys and values: idempotent)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    host, _, port = CASSANDRA.partition(":")
    auth = PlainTextAuthProvider(USERNAME, PASSWORD) if USERNAME else None
    cluster = Cluster([host], port=int(port or 9042), auth_provider=auth)
    try:
        session = cluster.connect()
        for statement in SCHEMA:
            session.execute(statement)
        insert = session.prepare('INSERT INTO zdmapp.user_status ("user", "when", status) VALUES (?, ?, ?)')
        rows = [*SEED_EVA, {"user": "marco", "when": "2022-10-10T13:30:00.000", "status": "Awake"}]
        for row in rows:
            session.execute(insert, (row["user"], dt.datetime.fromisoformat(row["when"]), row["status"]))
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    if URL:
        with httpx.Client(base_url=URL, timeout=30) as client:
            yield client
        return
    from fastapi.testclient import TestClient

    from zdmkit.demo_app.api import create_app
    from zdmkit.demo_app.config import build_settings

    _prepare_cluster()
    host, _, port = CASSANDRA.partition(":")
    origin = {"contact_points": [host], "port": int(port or 9042)}
    if USERNAME:
        origin.update(username=USERNAME, password=PASSWORD)
    settings = build_settings({"mode": "CASSANDRA", "origin": origin}, {}, "integration")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/healthz").json()
            time.sleep(0.5)
        yield client


def fresh_user() -> str:
    return f"it-{uuid.uuid4().hex[:12]}"


def post(api: httpx.Client, user: str, status: str) -> httpx.Response:
    return api.post(f"/status/{quote(user, safe='')}/{quote(status, safe='')}")


def test_healthz_reaches_the_cluster(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["release_version"]


def test_seed_entries_come_newest_first(api):
    entries = api.get("/status/eva", params={"entries": MAX_ENTRIES}).json()
    whens = [e["when"] for e in entries]
    assert whens == sorted(whens, reverse=True)
    if len(entries) == MAX_ENTRIES:
        pytest.skip("eva has more entries than one GET returns; the seed rows are out of reach")
    # Every status written through the API is newer than the seed rows: they come last.
    assert [e["status"] for e in entries[-3:]] == [s["status"] for s in SEED_EVA]
    if not URL:
        assert entries[-3:] == SEED_EVA


def test_post_then_get_returns_the_new_status(api):
    user = fresh_user()
    created = post(api, user, "Online")
    assert created.status_code == 200
    body = created.json()
    assert list(body) == ["user", "when", "status"]
    assert (body["user"], body["status"]) == (user, "Online")
    dt.datetime.fromisoformat(body["when"])
    assert len(body["when"]) == len("2022-10-10T12:00:00.000")
    assert api.get(f"/status/{user}").json() == [body]


def test_unknown_user_gives_an_empty_list(api):
    response = api.get(f"/status/{fresh_user()}", params={"entries": 5})
    assert response.status_code == 200
    assert response.json() == []


def test_entries_parsing_and_ordering(api):
    user = fresh_user()
    written = [post(api, user, f"S{i}").json() for i in range(5)]
    newest_first = list(reversed(written))
    assert api.get(f"/status/{user}", params={"entries": 3}).json() == newest_first[:3]
    assert api.get(f"/status/{user}").json() == newest_first[:1]
    for bad in ("0", "-2", "abc", "2.5", ""):
        assert api.get(f"/status/{user}", params={"entries": bad}).json() == newest_first[:1], bad
    assert api.get(f"/status/{user}", params={"entries": 50}).json() == newest_first


def test_entries_above_the_cap_are_capped(api):
    user = fresh_user()
    for i in range(MAX_ENTRIES + 3):
        assert post(api, user, f"C{i}").status_code == 200
    entries = api.get(f"/status/{user}", params={"entries": 100000}).json()
    assert len(entries) == MAX_ENTRIES
    assert entries[0]["status"] == f"C{MAX_ENTRIES + 2}"


@pytest.mark.parametrize(
    "status",
    [
        'it\'s "quoted"',
        "✓ ünïcödé 🚀 日本語",
        "spaces  and\ttab",
        "percent %41 and plus+",
        "semi;colon--comment/*x*/ and a/slash",
        "x" * (MAX_STATUS_BYTES - 1),
        "é" * (MAX_STATUS_BYTES // 2),
        "line\nbreak",
    ],
    ids=["quotes", "unicode", "whitespace", "percent", "cql-like", "at-limit", "at-limit-2-byte", "newline"],
)
def test_odd_but_valid_statuses_are_stored_and_read_back_exactly(api, status):
    user = fresh_user()
    created = post(api, user, status)
    assert created.status_code == 200, created.text
    assert created.json()["status"] == status
    assert api.get(f"/status/{quote(user, safe='')}").json() == [created.json()]


def test_odd_users_are_stored_and_read_back_exactly(api):
    user = f'o\'brien/"ü" {uuid.uuid4().hex[:6]}'
    created = post(api, user, "Online")
    assert created.status_code == 200
    assert api.get(f"/status/{quote(user, safe='')}").json() == [created.json()]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/status/eva/" + "x" * 10240, 422),
        ("/status/eva/", 422),
        ("/status/eva/%FF%FE", 400),
        ("/status//Online", 422),
        ("/status/eva", 405),
        ("/status/eva/a/b", 404),
    ],
    ids=["10kB", "empty-status", "bad-utf8", "empty-user", "missing-status", "extra-segment"],
)
def test_refused_input_gets_a_clear_4xx_and_the_service_stays_up(api, path, code):
    response = api.post(path)
    assert response.status_code == code
    assert response.json()["detail"]
    assert api.get("/healthz").status_code == 200


def test_metrics_show_requests_errors_and_latency(api):
    api.get("/status/eva")
    text = api.get("/metrics").text
    assert 'zdmkit_demo_app_requests_total{method="GET",route="/status/{user}",code="200"}' in text
    assert 'zdmkit_demo_app_request_duration_seconds_bucket{method="GET",route="/status/{user}",le="+Inf"}' in text
    assert "# TYPE zdmkit_demo_app_request_errors_total counter" in text
    assert 'zdmkit_demo_app_cluster_connected{mode="' in text
