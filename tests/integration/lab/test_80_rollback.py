"""Rollback from phase 4 to phase 1 and forward again to phase 4 under the same traffic:
no failed write, nothing lost; and the rollback playbook's own refusals."""

from __future__ import annotations

import json
import time

import pytest
from labkit import attempts_between, changed_hosts, docker_exec, failures, journal, playbook, report, utc_now


def routing(lab) -> set[tuple[str, str]]:
    found = set()
    for proxy in lab.proxies:
        config = docker_exec(proxy, "cat", "/etc/zdm-proxy/active/zdm-proxy.yml")
        values = dict(line.split(": ", 1) for line in config.splitlines() if line.startswith(("primary_", "read_")))
        found.add((values["primary_cluster"], values["read_mode"]))
    return found


@pytest.mark.parametrize(("to_phase", "message"), [
    (7, "to_phase is 7: set it to the phase to go back to, 1 to 4"),
    (0, "to_phase is 0"),
    (4, "to_phase 4 is not behind the recorded phase 4"),
])
def test_rollback_refuses_a_target_it_cannot_reach(lab, to_phase, message):
    run = playbook(lab, "rollback.yml", extra={"to_phase": to_phase})
    assert run.returncode != 0 and message in run.text, run.stdout[-2000:]
    assert changed_hosts(run.stdout) == {}


def test_rollback_to_phase_1_and_forward_to_phase_4_under_traffic(lab):
    start = utc_now()
    run = playbook(lab, "rollback.yml", extra={"to_phase": 1})
    assert run.returncode == 0, run.stdout[-4000:]
    assert routing(lab) == {("ORIGIN", "PRIMARY_ONLY")}
    assert json.loads((lab.state_dir / "phase.json").read_text())["phase"] == 1
    for name in ("phase2.yml", "phase4.yml"):
        run = playbook(lab, name)
        assert run.returncode == 0, (name, run.stdout[-4000:])
    assert routing(lab) == {("TARGET", "PRIMARY_ONLY")}
    time.sleep(2)
    window = attempts_between(journal(lab), start)
    report("rollback 4 -> 1 -> 2 -> 4", writer_attempts=len(window), writer_failed=len(failures(window)))
    assert failures(window) == []
    history = [h["to"] for h in json.loads((lab.state_dir / "phase.json").read_text())["history"]]
    assert history[-3:] == [1, 2, 4], history
