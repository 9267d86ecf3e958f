"""Phase 2 with the proxies in the path: the copy and the validation run while the writer's
dual writes flow; then Target stopped under traffic: writes fail visibly, none is acknowledged
on one side only, the proxies' readiness and alert say so, and phase 2's validation finds
exactly the rows that reached Origin only, which autocorrect repairs to zero."""

from __future__ import annotations

import json
import time

from conftest import (
    attempts_between,
    docker_exec,
    failures,
    journal,
    playbook,
    prometheus,
    readiness,
    report,
    side_status,
    utc_now,
    wait_until,
    writer_rows,
)


def test_phase_2_copies_and_validates_while_the_writer_writes(lab):
    start = utc_now()
    run = playbook(lab, "phase2.yml")
    assert run.returncode == 0, run.stdout[-4000:]
    window = attempts_between(journal(lab), start)
    validation = json.loads((lab.state_dir / "validation.json").read_text())
    report("phase 2", writer_attempts=len(window), writer_failed=len(failures(window)), **{
        k: validation[k] for k in ("status", "read", "missing", "mismatch")})
    assert failures(window) == []
    assert validation["status"] == "passed" and int(validation["missing"]) == 0 and int(validation["mismatch"]) == 0
    assert int(validation["read"]) >= len(window), "the validation compared the rows written meanwhile too"
    # every row written before the proxies existed is on Target now, with the seed rows
    assert {"ModeCassandra_" in s for s in writer_rows(lab, lab.target)} == {True, False}


def alerts(lab, name: str) -> list[dict]:
    return [a for a in prometheus(lab, f'ALERTS{{alertname="{name}", alertstate="firing"}}')]


def test_target_stopped_under_traffic(lab):
    start = utc_now()
    docker_exec(lab.target, "systemctl", "stop", "cassandra")
    try:
        wait_until(lambda: all(side_status(lab, p, "Target") == "DOWN" for p in lab.proxies), 90, 1,
                   "every proxy's readiness shows Target DOWN")
        assert all(readiness(lab, p)[0] == 503 for p in lab.proxies)
        wait_until(lambda: len(alerts(lab, "ZdmProxyNotReady")) == 3, 180, 5, "ZdmProxyNotReady firing for all three")
        time.sleep(5)
    finally:
        docker_exec(lab.target, "systemctl", "start", "cassandra")
    end = utc_now()
    wait_until(lambda: all(readiness(lab, p)[1].get("Status") == "UP" for p in lab.proxies), 300, 3,
               "the proxies ready again with Target back")
    time.sleep(5)
    window = attempts_between(journal(lab), start, end)
    failed = failures(window)
    acknowledged = {e["status"] for e in window if e["code"] == 200}
    origin, target = writer_rows(lab, lab.origin), writer_rows(lab, lab.target)
    one_sided = acknowledged - (origin & target)
    origin_only = origin - target
    report("Target stopped in phase 2", writer_attempts=len(window), writer_failed=len(failed),
           acknowledged=len(acknowledged), acknowledged_one_sided=len(one_sided), on_origin_only=len(origin_only))
    assert failed, "the clients saw the outage"
    assert not one_sided, f"acknowledged writes on one side only: {sorted(one_sided)[:5]}"
    assert origin_only, "some failed writes reached Origin before Target's error came back"
    lab.marks["origin_only"] = json.dumps(sorted(origin_only))


def test_the_validation_finds_exactly_those_rows_and_autocorrect_repairs_them(lab):
    expected = len(json.loads(lab.marks["origin_only"]))
    run = playbook(lab, "phase2.yml")
    assert run.returncode != 0, "phase 2 refuses a Target that differs"
    validation = json.loads((lab.state_dir / "validation.json").read_text())
    report("validation after the outage", missing=validation["missing"], mismatch=validation["mismatch"],
           expected=expected)
    assert (int(validation["missing"]), int(validation["mismatch"])) == (expected, 0)
    run = playbook(lab, "phase2.yml", extra={"data_migration_autocorrect": ["missing", "mismatch"]})
    assert run.returncode == 0, run.stdout[-4000:]
    validation = json.loads((lab.state_dir / "validation.json").read_text())
    report("after autocorrect", corrected_missing=validation["corrected_missing"], missing=validation["missing"])
    assert int(validation["corrected_missing"]) == expected
    assert (validation["status"], int(validation["missing"]), int(validation["mismatch"])) == ("passed", 0, 0)
