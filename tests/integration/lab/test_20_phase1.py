"""Phase 1 under the writer's traffic: the three proxies deployed, the demo application moved
onto them with zero failed requests, every write now landing on both clusters."""

from __future__ import annotations

import json
import re
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
    prometheus,
    readiness,
    report,
    restart_monitoring_under_traffic,
    unit_starts,
    utc_now,
    wait_until,
    world_readable_files_holding,
)

PROXY_ROLE = "zdm_proxy_lab"
PROXY_SECRET = "Proxy-Secret-93be1c5a07"  # the proxies' Origin password, looked for in what they leave


def test_phase_1_moves_the_application_onto_the_proxies_with_no_failed_request(lab):
    start, started = utc_now(), time.monotonic()
    run = playbook(lab, "phase1.yml")
    assert run.returncode == 0, run.stdout[-4000:]
    time.sleep(3)  # the writer's next attempts go through the proxies
    took = time.monotonic() - started
    window = attempts_between(journal(lab), start)
    report("phase 1 switch", seconds=round(took), attempts=len(window), failed=len(failures(window)))
    # The writer sends 20 writes/s: at least three quarters of that all along the switch, however
    # long it took (a slow answer delays the next attempts; none may stop them).
    assert len(window) >= 15 * int(took), "the writer kept its rate of 20 writes/s during the switch"
    assert failures(window) == []
    lab.marks["phase1"] = start


def test_the_writer_follows_the_phase_with_its_prefix(lab):
    time.sleep(2)
    latest = journal(lab)[-20:]
    assert all(e["status"].startswith("ModeProxy_") for e in latest), [e["status"] for e in latest]


def test_every_proxy_is_ready_and_exports_its_metrics(lab):
    for proxy in lab.proxies:
        code, body = readiness(lab, proxy)
        sides = [body.get(side, {}).get("Status") for side in ("OriginStatus", "TargetStatus")]
        assert (code, body.get("Status"), sides) == (200, "UP", ["UP", "UP"]), (proxy, body)
        metrics = httpx.get(f"http://{lab.address[proxy]}:14001/metrics", timeout=5).text
        assert re.search(r"^zdm_proxy_request_duration_seconds_bucket\{", metrics, flags=re.M), proxy
        assert re.search(r"^zdm_client_connections_total [1-9]", metrics, flags=re.M), f"{proxy} serves no client"


def test_prometheus_scrapes_the_three_proxies(lab):
    def all_up():
        return len([r for r in prometheus(lab, 'up{job="zdm-proxy"} == 1')]) == 3

    wait_until(all_up, 60, 3, "three zdm-proxy targets up in Prometheus")
    instances = sorted(r["metric"]["instance"] for r in prometheus(lab, 'up{job="zdm-proxy"}'))
    assert instances == sorted(lab.proxies)


def test_a_post_lands_on_both_clusters(lab):
    user = f"phase1{uuid.uuid4().hex[:6]}"
    answer = httpx.post(f"{lab.app_url}/status/{user}/DualWritten", timeout=30)
    assert answer.status_code == 200, answer.text
    for host in (lab.origin, lab.target):
        with cql(lab.address[host]) as session:
            rows = list(session.execute("SELECT status FROM zdmapp.user_status WHERE user = %s", (user,)))
        assert [r.status for r in rows] == ["DualWritten"], host


def test_a_driver_at_its_defaults_writes_through_the_proxies_to_both_clusters(lab):
    # Protocol v5 is blocked on the proxies: the driver settles on v4 by itself.
    user = f"driver{uuid.uuid4().hex[:6]}"
    with cql(*[lab.address[p] for p in lab.proxies]) as session:
        session.execute("INSERT INTO zdmapp.user_status (user, when, status) VALUES (%s, toTimestamp(now()), 'x')",
                        (user,))
        assert session.cluster.protocol_version == 4
    with cql(lab.address[lab.proxies[0]], pin=True) as session:
        peers = {str(r.rpc_address) for r in session.execute("SELECT rpc_address FROM system.peers")}
        local = session.execute("SELECT rpc_address FROM system.local").one()
    assert peers | {str(local.rpc_address)} == {lab.address[p] for p in lab.proxies}, "the topology is the proxies"
    for host in (lab.origin, lab.target):
        with cql(lab.address[host]) as session:
            assert session.execute("SELECT count(*) FROM zdmapp.user_status WHERE user = %s", (user,)).one()[0] == 1


def test_each_proxy_runs_as_its_own_user_with_a_private_configuration(lab):
    for proxy in lab.proxies:
        owner = docker_exec(proxy, "stat", "-c", "%U %a", "/etc/zdm-proxy/active/zdm-proxy.yml").split()
        assert owner == ["zdm-proxy", "600"], (proxy, owner)
        user = docker_exec(proxy, "ps", "-o", "user=", "-C", "zdm-proxy").split()
        assert user == ["zdm-proxy"], (proxy, user)
        index = docker_exec(proxy, "sh", "-c", "grep -E '^proxy_topology_index:' /etc/zdm-proxy/active/zdm-proxy.yml")
        assert index.split()[-1] == str(lab.proxies.index(proxy))


def test_rerunning_phase_1_changes_nothing_and_restarts_nothing(lab):
    units = {p: ["zdm-proxy.service"] for p in lab.proxies} | {lab.client: ["zdmkit-demo-app.service"]}
    before = unit_starts(lab, units)
    started = time.monotonic()
    run = playbook(lab, "phase1.yml")
    took = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:]
    report("phase 1 re-run", seconds=round(took, 1))
    assert changed_hosts(run.stdout) == {}, run.stdout[-3000:]
    assert unit_starts(lab, units) == before


def test_status_shows_each_proxy(lab):
    run = playbook(lab, "status.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "phase: 1 - dual writes" in run.text
    for proxy in lab.proxies:
        assert re.search(rf"{proxy} readiness UP, primary ORIGIN, read mode PRIMARY_ONLY, [1-9]\d* client connections",
                         run.text), run.stdout[-2000:]
    phase = json.loads((lab.state_dir / "phase.json").read_text())
    assert phase["phase"] == 1 and phase["history"][-1]["to"] == 1


def test_the_report_draws_every_chart_with_data(lab):
    before = journal(lab)
    run = playbook(lab, "report.yml", extra={"report_window": 900})
    after = journal(lab)
    assert run.returncode == 0, run.stdout[-3000:]
    out = ROOT / "reports" / "migration"
    record = json.loads((out / "report.json").read_text())
    for slug in ("client-ops", "ops-by-cluster", "failed-writes", "latency-p99"):
        chart = record["charts"][slug]
        assert chart["image"], f"{slug}: no data at all"
        assert (out / chart["image"]).stat().st_size > 10_000, slug
        assert chart["series"] and min(chart["series"].values()) >= 2, (slug, chart["series"])
    writes = record["charts"]["ops-by-cluster"]["series"]
    # phase 1: dual writes, so both clusters write
    assert any(n.startswith("cassandra origin Write") for n in writes), writes
    assert any(n.startswith("cassandra target Write") for n in writes), writes
    # the phase markers are the recorded phase changes: phase 1 so far
    history = json.loads((lab.state_dir / "phase.json").read_text())["history"]
    assert record["markers"] == [{"phase": h["to"], "at": h["at"]} for h in history]
    assert [m["phase"] for m in record["markers"]] == [1]
    # The report counts the journal as it was when it ran: every attempt and failure up to then
    # (zero failed writes is each step's own check, over its own window).
    failed_before, failed_after = failures(before), failures(after)
    totals = record["journal"]
    report("report's journal", **totals, failures=[(e["ts"], e["code"], e["error"]) for e in failed_after])
    # (an attempt sent but not answered when the report read the journal is in flight, not failed)
    assert len(before) <= totals["attempts"] - totals["in_flight"] <= len(after)
    assert len(failed_before) <= totals["failed"] <= len(failed_after), failed_after
    assert totals["acknowledged"] == totals["attempts"] - totals["failed"] - totals["in_flight"]
    assert totals["in_flight"] <= 2, totals
    assert "Migration report" in (out / "index.html").read_text()


def test_restarting_the_monitoring_host_leaves_traffic_alone(lab):
    restart_monitoring_under_traffic(lab, "phase 1")


def test_the_proxies_credentials_roll_and_never_show(lab, tmp_path):
    # The proxies log in to Origin with a role of their own, its password given the way an
    # operator's vault gives it; the clients keep sending Target's credentials (the proxy's rule
    # when both clusters ask for them). The run rolls the three proxies onto it at -vvvv.
    with cql(lab.address[lab.origin]) as origin:
        origin.execute(f"CREATE ROLE IF NOT EXISTS {PROXY_ROLE} WITH PASSWORD = '{PROXY_SECRET}' AND LOGIN = true")
        origin.execute(f"GRANT ALL PERMISSIONS ON KEYSPACE zdmapp TO {PROXY_ROLE}")
    secrets = tmp_path / "vault.json"
    secrets.touch(mode=0o600)
    secrets.write_text(json.dumps({"zdm_proxy_origin_username": PROXY_ROLE, "zdm_proxy_origin_password": PROXY_SECRET}))
    start = utc_now()
    run = playbook(lab, "phase1.yml", "-vvvv", "-e", f"@{secrets}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert PROXY_SECRET not in run.stdout + run.stderr
    rolled = list(dict.fromkeys(re.findall(r"(\S+) restarted on its new configuration in", run.text)))
    for proxy in lab.proxies:
        config = docker_exec(proxy, "sh", "-c", "stat -c '%U %a' /etc/zdm-proxy/active/zdm-proxy.yml; "
                             "grep -c '^origin_username: " + PROXY_ROLE + "' /etc/zdm-proxy/active/zdm-proxy.yml")
        assert config.split() == ["zdm-proxy", "600", "1"], (proxy, config)
        assert PROXY_SECRET not in docker_exec(proxy, "journalctl", "--no-pager", "-o", "cat", "--since", "-15min")
        assert PROXY_SECRET not in docker_exec(proxy, "ps", "-eo", "args")
        assert not world_readable_files_holding(proxy, PROXY_SECRET), proxy
    assert not world_readable_files_holding(lab.client, PROXY_SECRET)
    window = attempts_between(journal(lab), start)
    report("proxies' Origin credentials rolled", writer_attempts=len(window), writer_failed=len(failures(window)),
           rolled=",".join(rolled))
    assert rolled == lab.proxies, run.text[-3000:]
    assert failures(window) == []
    # and back onto the inventory's credentials, rolled again
    back = playbook(lab, "phase1.yml")
    assert back.returncode == 0, back.stdout[-3000:]
    for proxy in lab.proxies:
        assert docker_exec(proxy, "grep", "-c", f"^origin_username: {PROXY_ROLE}",
                           "/etc/zdm-proxy/active/zdm-proxy.yml", check=False).strip() == "0"
    assert failures(attempts_between(journal(lab), start)) == []
