"""A proxy killed (SIGKILL) under the writer's traffic and a driver client's: no client write
fails (the driver retries idempotent statements on another proxy), systemd brings the proxy
back, its readiness is UP again, and nothing is lost."""

from __future__ import annotations

import time

from labkit import (
    ClientLoad,
    attempts_between,
    cql,
    docker_exec,
    failures,
    firing,
    journal,
    readiness,
    report,
    utc_now,
)
from labkit import wait_until as until


def kill_a_proxy_under_load(lab, proxy: str, phase: str) -> None:
    pid_before = docker_exec(proxy, "systemctl", "show", "-p", "MainPID", "--value", "zdm-proxy").strip()
    start = utc_now()
    with ClientLoad([lab.address[p] for p in lab.proxies], rate=50) as load:
        time.sleep(5)
        docker_exec(proxy, "systemctl", "kill", "--signal=SIGKILL", "zdm-proxy")
        killed = time.monotonic()
        until(lambda: readiness(lab, proxy)[1].get("Status") == "UP", 90, 0.5, f"{proxy} ready again")
        back = time.monotonic() - killed
        time.sleep(10)
    pid_after = docker_exec(proxy, "systemctl", "show", "-p", "MainPID", "--value", "zdm-proxy").strip()
    window = attempts_between(journal(lab), start)
    report(f"{proxy} killed in {phase}", writer_attempts=len(window), writer_failed=len(failures(window)),
           client_ops=load.ops, client_errors=load.errors, ready_again_s=round(back, 1))
    assert pid_after not in ("0", pid_before), "systemd started a new process"
    assert failures(window) == [], failures(window)[:5]
    assert load.errors == 0, load.error_kinds
    with cql(lab.address[lab.origin]) as origin, cql(lab.address[lab.target]) as target:
        for session, where in ((origin, "Origin"), (target, "Target")):
            rows = {r.status for r in session.execute("SELECT status FROM zdmapp.user_status WHERE user = %s",
                                                      (load.user,))}
            lost = set(load.written) - rows
            assert not lost, f"{len(lost)} acknowledged client writes missing on {where}"


def test_a_proxy_killed_in_phase_1(lab):
    kill_a_proxy_under_load(lab, lab.proxies[1], "phase 1")


def test_a_stopped_proxy_fires_its_alert_and_the_alert_resolves(lab):
    proxy = lab.proxies[2]
    with ClientLoad([lab.address[p] for p in lab.proxies], rate=50) as load:
        docker_exec(proxy, "systemctl", "stop", "zdm-proxy")
        try:
            until(lambda: firing(lab, "ZdmProxyDown", proxy), 120, 3, f"ZdmProxyDown firing for {proxy}")
        finally:
            docker_exec(proxy, "systemctl", "start", "zdm-proxy")
        until(lambda: readiness(lab, proxy)[1].get("Status") == "UP", 90, 0.5, f"{proxy} ready again")
        until(lambda: not firing(lab, "ZdmProxyDown", proxy), 120, 3, "ZdmProxyDown resolved")
    report(f"{proxy} stopped, alert fired and resolved", client_ops=load.ops, client_errors=load.errors)
    assert load.errors == 0, load.error_kinds
