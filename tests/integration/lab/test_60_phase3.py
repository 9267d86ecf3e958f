"""Phase 3 (reads also to Target, asynchronously), reached the hard way: the playbook is killed
half-way through its roll (never two proxies down at once; the recorded phase stays 2; a
re-run finishes the roll). Then the monitoring host restarts under traffic, and a proxy
changed by hand is found as drift before the next move changes anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

from labkit import (
    ROOT,
    attempts_between,
    changed_hosts,
    docker_exec,
    failures,
    journal,
    playbook,
    readiness,
    report,
    restart_monitoring_under_traffic,
    unit_starts,
    utc_now,
    wait_until,
)


def active_read_mode(proxy: str) -> str:
    line = docker_exec(proxy, "sh", "-c", "grep -E '^read_mode:' /etc/zdm-proxy/active/zdm-proxy.yml || true")
    return line.split()[-1]


def recorded_phase(lab) -> int:
    return json.loads((lab.state_dir / "phase.json").read_text())["phase"]


def test_phase_3_in_check_mode_shows_the_roll_and_changes_nothing(lab):
    starts = unit_starts(lab, {p: ["zdm-proxy.service"] for p in lab.proxies})
    run = playbook(lab, "phase3.yml", "--check", "--diff")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "would restart, one at a time: " + ", ".join(lab.proxies) in run.text, run.text[-3000:]
    assert [active_read_mode(p) for p in lab.proxies] == ["PRIMARY_ONLY"] * 3
    assert unit_starts(lab, {p: ["zdm-proxy.service"] for p in lab.proxies}) == starts
    assert recorded_phase(lab) == 2


def test_an_interrupted_roll_never_takes_two_proxies_down_and_a_rerun_finishes_it(lab):
    start = utc_now()
    down_at_once, samples, stop = [0], [0], threading.Event()

    def watch() -> None:  # bounded: stops with the test, at most 15 minutes
        deadline = time.monotonic() + 900
        while not stop.is_set() and time.monotonic() < deadline:
            down = sum(1 for p in lab.proxies if readiness(lab, p)[0] != 200)
            down_at_once[0] = max(down_at_once[0], down)
            samples[0] += 1
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.Popen(["ansible-playbook", "-i", lab.inventory, str(ROOT / "playbooks/phase3.yml")], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: active_read_mode(lab.proxies[0]) == "DUAL_ASYNC_ON_SECONDARY", 600, 0.5,
                   "the first proxy rolled")
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the controller's process dies mid-roll
        run.wait(timeout=60)
    modes = [active_read_mode(p) for p in lab.proxies]
    assert modes[0] == "DUAL_ASYNC_ON_SECONDARY" and modes[-1] == "PRIMARY_ONLY", modes
    assert recorded_phase(lab) == 2, "the phase is recorded only when the roll is complete"
    wait_until(lambda: all(readiness(lab, p)[0] == 200 for p in lab.proxies), 120, 1, "every proxy ready")
    rerun = playbook(lab, "phase3.yml")
    stop.set()
    watcher.join(timeout=30)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    window = attempts_between(journal(lab), start)
    report("phase 3 interrupted then re-run", modes_when_killed=modes, most_proxies_down_at_once=down_at_once[0],
           readiness_samples=samples[0], writer_attempts=len(window), writer_failed=len(failures(window)))
    assert down_at_once[0] <= 1
    assert failures(window) == []
    assert [active_read_mode(p) for p in lab.proxies] == ["DUAL_ASYNC_ON_SECONDARY"] * 3
    assert recorded_phase(lab) == 3


def test_the_proxy_log_shows_the_new_read_mode(lab):
    for proxy in lab.proxies:
        # the public lab's check: the configuration the proxy logs when it starts, the latest one
        log = docker_exec(proxy, "sh", "-c", "journalctl -u zdm-proxy --no-pager -o cat | grep -F ReadMode | tail -n 1")
        log = log.replace('\\"', '"')  # the log's msg="..." escapes the quotes of the configuration
        assert '"ReadMode":"DUAL_ASYNC_ON_SECONDARY"' in log, (proxy, log[-300:])


def test_restarting_the_monitoring_host_leaves_traffic_alone(lab):
    restart_monitoring_under_traffic(lab, "phase 3")


def test_a_proxy_changed_by_hand_is_drift_found_before_any_change(lab):
    proxy = lab.proxies[2]
    docker_exec(proxy, "sed", "-i", "s/^primary_cluster: .*/primary_cluster: TARGET/",
                "/etc/zdm-proxy/active/zdm-proxy.yml")
    docker_exec(proxy, "systemctl", "restart", "zdm-proxy")
    wait_until(lambda: readiness(lab, proxy)[1].get("Status") == "UP", 60, 1, f"{proxy} ready")
    run = playbook(lab, "phase4.yml")
    assert run.returncode != 0
    assert f"proxy {proxy} runs primary TARGET, read mode DUAL_ASYNC_ON_SECONDARY" in run.text, run.stdout[-3000:]
    assert changed_hosts(run.stdout) == {}
    assert recorded_phase(lab) == 3
    # re-applying the recorded phase puts it back
    repair = playbook(lab, "phase3.yml")
    assert repair.returncode == 0, repair.stdout[-3000:]
    assert "this run puts them back on phase 3" in repair.text
    config = docker_exec(proxy, "grep", "^primary_cluster", "/etc/zdm-proxy/active/zdm-proxy.yml")
    assert config.split()[-1] == "ORIGIN"
