"""Phase 4: refused without a passed validation and when a phase is skipped; then Target is
made primary, rolled under traffic; a POST lands on both clusters; a proxy is killed, and an
Origin node stopped, under traffic, with the same accounting as in phase 1 and 2."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import httpx
from labkit import (
    attempts_between,
    changed_hosts,
    cql,
    docker_exec,
    failures,
    journal,
    playbook,
    report,
    utc_now,
)
from test_40_proxy_killed import kill_a_proxy_under_load
from test_50_phase2 import rows_only_on, stop_a_cluster_under_traffic


def test_phase_5_cannot_skip_phase_4(lab):
    run = playbook(lab, "phase5.yml")
    assert run.returncode != 0 and "phase 5 cannot follow phase 3: run phase 4 first" in run.text, run.stdout[-2000:]
    assert changed_hosts(run.stdout) == {}


def test_phase_4_needs_a_passed_validation(lab):
    recorded = lab.state_dir / "validation.json"
    kept = recorded.read_text()
    recorded.write_text(json.dumps({**json.loads(kept), "status": "failed", "missing": 3}))
    try:
        run = playbook(lab, "phase4.yml")
    finally:
        recorded.write_text(kept)
    assert run.returncode != 0
    assert "needs a passed phase-2 validation" in run.text and "zdm_force_reason" in run.text, run.stdout[-2000:]
    assert changed_hosts(run.stdout) == {}


def test_phase_4_makes_target_primary_with_no_failed_write(lab):
    start = utc_now()
    run = playbook(lab, "phase4.yml")
    assert run.returncode == 0, run.stdout[-4000:]
    time.sleep(2)
    window = attempts_between(journal(lab), start)
    report("phase 4 roll", writer_attempts=len(window), writer_failed=len(failures(window)))
    assert failures(window) == []
    for proxy in lab.proxies:
        assert "primary_cluster: TARGET" in docker_exec(proxy, "cat", "/etc/zdm-proxy/active/zdm-proxy.yml")


def test_after_phase_4_a_post_lands_on_both_clusters(lab):
    user = f"phase4{uuid.uuid4().hex[:6]}"
    assert httpx.post(f"{lab.app_url}/status/{user}/BothStill", timeout=30).status_code == 200
    for host in (lab.origin, lab.target):
        with cql(lab.address[host]) as session:
            assert [r.status for r in session.execute(
                "SELECT status FROM zdmapp.user_status WHERE user = %s", (user,))] == ["BothStill"], host


def test_a_proxy_killed_in_phase_4(lab):
    kill_a_proxy_under_load(lab, lab.proxies[0], "phase 4")


def test_origin_stopped_in_phase_4_and_repaired_from_target(lab, tmp_path):
    one_sided, counts = stop_a_cluster_under_traffic(lab, lab.origin, "Origin", "Origin stopped in phase 4")
    assert counts["on_origin_only"] == 0 and counts["on_target_only"] > 0, counts
    # Origin must hold every write before a rollback: validate it against Target, repairing it.
    common = ["--keyspaces", "zdmapp", "--tables", "zdmapp.user_status",
              "--origin-contact-points", lab.address[lab.target], "--origin-username", "cassandra",
              "--target-contact-points", lab.address[lab.origin], "--target-username", "cassandra"]
    env = {"ZDMKIT_ORIGIN_PASSWORD": "cassandra", "ZDMKIT_TARGET_PASSWORD": "cassandra"}
    def validate(*more: str) -> dict:
        out = tmp_path / f"validation{len(list(tmp_path.iterdir()))}.json"
        subprocess.run(["zdmkit-migrate", "validate", *common, "--report", str(out), *more],
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False)
        return json.loads(out.read_text())["totals"]

    # The whole table's difference: the outage's rows, and any an earlier fault left.
    expected = rows_only_on(lab, lab.target, lab.origin)
    assert expected and one_sided  # keyed by (user, when) and by (user, status): counts differ
    found = validate("--autocorrect", "missing,mismatch")
    after = validate()
    report("Origin repaired from Target", missing=found["missing"], corrected=found["corrected_missing"],
           missing_after=after["missing"])
    assert found["missing"] == len(expected) and found["corrected_missing"] == found["missing"]
    assert after["missing"] == 0 and after["mismatch"] == 0
