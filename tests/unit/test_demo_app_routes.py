"""The status API's behaviour that needs no cluster: validation, errors, health, metrics.

The application is built with ``connect=False``: it never opens a CQL session, so
every request that passes validation is answered 503, and requests that fail
validation show their 4xx. Everything that touches data is tested against a real
Cassandra in tests/integration/test_demo_app_api.py.
"""

from __future__ import annotations

import logging
import ssl

import pytest
from fastapi.testclient import TestClient
from test_demo_app_config import write_pem_files

from zdmkit.demo_app.api import create_app
from zdmkit.demo_app.config import build_settings
from zdmkit.demo_app.db import IdempotentRetryPolicy, cluster_options, statements
from zdmkit.demo_app.logs import JsonFormatter
from zdmkit.migrate.connection import Endpoint as MigrateEndpoint
from zdmkit.migrate.connection import _ssl_context as migrate_ssl_context
from zdmkit.tls import client_context

SETTINGS = build_settings({"mode": "CASSANDRA", "origin": {"contact_points": ["127.0.0.1"], "port": 9}}, {}, "unit.yml")


@pytest.fixture
def client():
    with TestClient(create_app(SETTINGS, connect=False)) as c:
        yield c


def test_data_endpoints_answer_503_until_connected(client):
    response = client.get("/status/eva?entries=3")
    assert response.status_code == 503
    assert "not connected to the cluster (CASSANDRA)" in response.json()["detail"]
    assert response.headers["retry-after"] == "1"
    assert client.post("/status/eva/Online").status_code == 503


def test_healthz_reports_connecting(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "connecting"
    assert response.json()["mode"] == "CASSANDRA"


@pytest.mark.parametrize(
    ("method", "path", "code", "detail"),
    [
        ("post", "/status/eva/", 422, "status must not be empty"),
        ("post", "/status/eva/" + "x" * 10240, 422, "status is 10240 bytes long; the limit is 4096 bytes"),
        ("get", "/status/" + "u" * 300, 422, "user is 300 bytes long; the limit is 256 bytes"),
        ("post", "/status/eva/%C3%28", 400, "not valid UTF-8"),
        ("post", "/status//Online", 422, "user must not be empty"),
        ("get", "/status/", 422, "user must not be empty"),
        ("get", "/status/eva/", 404, "Not Found: the API serves GET /status/{user}"),
        ("post", "/status/eva/a/b", 404, "Not Found"),
        ("post", "/status/eva", 405, "Method Not Allowed"),
        ("get", "/status/eva/Online", 405, "Method Not Allowed"),
        ("get", "/nothing", 404, "Not Found"),
    ],
)
def test_odd_input_gets_a_clear_4xx(client, method, path, code, detail):
    response = getattr(client, method)(path)
    assert response.status_code == code
    assert detail in response.json()["detail"]


def test_method_not_allowed_names_the_right_method(client):
    assert client.post("/status/eva").headers["allow"] == "GET"
    assert client.get("/status/eva/Online").headers["allow"] == "POST"


def test_odd_input_that_is_valid_reaches_the_database_layer(client):
    # Quotes, unicode, spaces and escaped slashes pass validation (and would be stored as sent).
    for status in ('it\'s "quoted"', "✓ ünïcödé 🚀", "with space", "a;b--c", "a%2Fb"):
        assert client.post(f"/status/eva/{status}").status_code == 503
    assert client.get("/status/o%2Fbrien").status_code == 503


def test_metrics_count_requests_by_route_template(client):
    client.get("/status/eva")
    client.get("/status/marco")
    client.post("/status/eva/")
    text = client.get("/metrics").text
    assert 'zdmkit_demo_app_requests_total{method="GET",route="/status/{user}",code="503"} 2' in text
    assert 'zdmkit_demo_app_request_errors_total{method="GET",route="/status/{user}"} 2' in text
    assert 'zdmkit_demo_app_request_duration_seconds_count{method="GET",route="/status/{user}"} 2' in text
    assert 'route="/status/{user}/{status}",code="422"' in text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")


def test_one_json_log_line_per_request(client, caplog):
    logger = logging.getLogger("zdmkit.demo_app")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="zdmkit.demo_app"):
            client.post("/status/eva/" + "x" * 5000)
    finally:
        logger.removeHandler(caplog.handler)
    records = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "request"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert "\n" not in line
    assert '"status": 422' in line
    assert '"route": "/status/{user}/{status}"' in line
    assert "(+4" in line  # the long path is shortened in the log


def test_statements_are_qualified_and_parameterised():
    select, insert = statements("zdmapp")
    assert select == 'SELECT "user", "when", "status" FROM zdmapp.user_status WHERE "user" = ? LIMIT ?'
    assert insert == 'INSERT INTO zdmapp.user_status ("user", "when", "status") VALUES (?, ?, ?) USING TIMESTAMP ?'


def test_cluster_options_per_mode():
    data = {
        "origin": {"contact_points": ["o1"], "username": "cassandra", "password": "p"},
        "target": {"contact_points": ["t1"], "username": "tu", "password": "tp", "local_datacenter": "dc2"},
        "proxy": {"contact_points": ["p1", "p2"], "port": 9042},
        "astra": {"secure_connect_bundle": "/b.zip", "client_id": "id", "client_secret": "s"},
    }
    proxy = cluster_options(build_settings({**data, "mode": "ZDM_PROXY"}, {}, "x"))
    assert proxy["contact_points"] == ["p1", "p2"]
    assert proxy["auth_provider"].username == "tu"
    target = cluster_options(build_settings({**data, "mode": "TARGET"}, {}, "x"))
    assert target["contact_points"] == ["t1"]
    profile = next(iter(target["execution_profiles"].values()))
    assert profile.load_balancing_policy._child_policy.local_dc == "dc2"
    assert isinstance(profile.retry_policy, IdempotentRetryPolicy)
    astra = cluster_options(build_settings({**data, "mode": "ASTRA_DB"}, {}, "x"))
    assert "contact_points" not in astra
    assert astra["cloud"] == {"secure_connect_bundle": "/b.zip"}
    assert astra["auth_provider"].username == "id"
    assert "ssl_context" not in proxy and "ssl_context" not in target


def test_cluster_options_with_tls_verify_against_the_ca(tmp_path):
    pem = write_pem_files(tmp_path)
    data = {
        "origin": {
            "contact_points": ["o1"],
            "tls": {"ca_file": str(pem["ca"]), "cert_file": str(pem["cert"]), "key_file": str(pem["key"])},
        },
        "proxy": {"contact_points": ["p1"], "tls": {"cert_file": str(pem["cert"]), "key_file": str(pem["key"])}},
        "target": {"contact_points": ["t1"], "tls": {"ca_file": str(pem["ca"]), "verify_hostname": True}},
        "astra": {"secure_connect_bundle": "/b.zip", "client_id": "id", "client_secret": "s"},
    }
    origin = cluster_options(build_settings({**data, "mode": "CASSANDRA"}, {}, "x"))["ssl_context"]
    assert isinstance(origin, ssl.SSLContext)
    assert origin.verify_mode == ssl.CERT_REQUIRED
    assert origin.check_hostname is False
    assert [ca["subject"] for ca in origin.get_ca_certs()] == [((("commonName", "zdmkit test CA"),),)]
    target = cluster_options(build_settings({**data, "mode": "TARGET"}, {}, "x"))["ssl_context"]
    assert (target.verify_mode, target.check_hostname) == (ssl.CERT_REQUIRED, True)
    proxy = cluster_options(build_settings({**data, "mode": "ZDM_PROXY"}, {}, "x"))["ssl_context"]
    assert (proxy.verify_mode, proxy.check_hostname) == (ssl.CERT_NONE, False)
    assert "ssl_context" not in cluster_options(build_settings({**data, "mode": "ASTRA_DB"}, {}, "x"))


def test_migrate_and_the_demo_app_build_the_same_tls_context(tmp_path):
    pem = write_pem_files(tmp_path)
    assert client_context(None) is None
    assert client_context("", None, None, verify_hostname=True) is None
    endpoint = MigrateEndpoint("Origin", ("o1",), ssl_ca=str(pem["ca"]), ssl_verify_hostname=True)
    context = migrate_ssl_context(endpoint)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    endpoint = MigrateEndpoint("Target", ("t1",), ssl_cert=str(pem["cert"]), ssl_key=str(pem["key"]))
    context = migrate_ssl_context(endpoint)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
