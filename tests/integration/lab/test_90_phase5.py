"""Phase 5: the application straight to Target with zero failed requests, the writer's
statuses ModeTarget_, the proxies stopped and disabled, Origin receiving no more writes, and no
way back."""

from __future__ import annotations

import time
import uuid

import httpx
from labkit import (
    ROOT,
    attempts_between,
    changed_hosts,
    cql,
    docker_exec,
    failures,
    journal,
    playbook,
    report,
    utc_now,
    wait_until,
    writer_rows,
)


def test_phase_5_moves_the_application_to_target_with_no_failed_request(lab):
    start = utc_now()
    run = playbook(lab, "phase5.yml")
    assert run.returncode == 0, run.stdout[-4000:]
    time.sleep(3)
    window = attempts_between(journal(lab), start)
    report("phase 5 switch", writer_attempts=len(window), writer_failed=len(failures(window)))
    assert failures(window) == []
    lab.marks["phase5"] = start
    latest = journal(lab)[-20:]
    assert all(e["status"].startswith("ModeTarget_") for e in latest), [e["status"] for e in latest]


def test_the_proxies_are_stopped_and_disabled(lab):
    for proxy in lab.proxies:
        state = docker_exec(proxy, "systemctl", "show", "-p", "ActiveState,UnitFileState", "zdm-proxy").split()
        assert state == ["ActiveState=inactive", "UnitFileState=disabled"], (proxy, state)


def test_after_phase_5_a_post_lands_on_target_only_and_origin_gets_no_more_writes(lab):
    origin_before = writer_rows(lab, lab.origin)
    user = f"phase5{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{lab.app_url}/status/{user}/TargetOnly", timeout=30).status_code == 200
    with cql(lab.address[lab.target]) as session:
        assert session.execute("SELECT count(*) FROM zdmapp.user_status WHERE user = %s", (user,)).one()[0] == 1
    with cql(lab.address[lab.origin]) as session:
        assert session.execute("SELECT count(*) FROM zdmapp.user_status WHERE user = %s", (user,)).one()[0] == 0
    time.sleep(5)
    assert writer_rows(lab, lab.origin) == origin_before, "the writer's rows no longer reach Origin"
    assert any(s.startswith("ModeTarget_") for s in writer_rows(lab, lab.target))


def test_the_status_reports_phase_5(lab):
    run = playbook(lab, "status.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "phase: 5 - the application uses Target directly" in run.text
    assert "demo app: ok, mode TARGET" in run.text
    for proxy in lab.proxies:
        assert f"{proxy} stopped" in run.text


def test_no_rollback_from_phase_5(lab):
    run = playbook(lab, "rollback.yml", extra={"to_phase": 4})
    assert run.returncode != 0
    assert "the migration is in phase 5" in run.text and "Origin no longer receives writes" in run.text
    assert changed_hosts(run.stdout) == {}


def test_rerunning_phase_5_changes_nothing(lab):
    run = playbook(lab, "phase5.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed_hosts(run.stdout) == {}


def test_the_proxy_dashboard_shows_request_rates_falling_to_zero(lab):
    """The proxy dashboard's request-rate panel, over the last minutes, as Perses asks Prometheus."""
    import yaml

    board = yaml.safe_load((ROOT / "monitoring" / "dashboards" / "zdm-proxy.yaml").read_text())
    panel = board["spec"]["panels"]["requests_per_second"]["spec"]
    expr = panel["queries"][0]["spec"]["plugin"]["spec"]["query"]
    expr = expr.replace("$instance", ".*").replace("$__rate_interval", "30s")
    end = time.time()

    def values() -> list[float]:
        answer = httpx.get(f"{lab.prometheus_url}/api/v1/query_range",
                           params={"query": expr, "start": end - 900, "end": time.time(), "step": 5}, timeout=10).json()
        return [float(v) for _, v in answer["data"]["result"][0]["values"]]

    wait_until(lambda: values()[-1] == 0, 120, 5, "the proxies' request rate at zero")
    series = values()
    report("proxy request rate after phase 5", peak=round(max(series), 1), last=series[-1])
    assert max(series) > 5, "requests went through the proxies before phase 5"
