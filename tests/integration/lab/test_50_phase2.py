"""Phase 2 with the proxies in the path: the copy and the validation run while the writer's
dual writes flow; then Target stopped under traffic: writes fail visibly, none is acknowledged
on one side only, the proxies' readiness and alert say so, and phase 2's validation finds
exactly the rows that reached Origin only, which autocorrect repairs to zero."""

from __future__ import annotations

import json
import time

from labkit import (
    ClientLoad,
    attempts_between,
    cql,
    docker_exec,
    failures,
    firing,
    journal,
    playbook,
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


# How long before the tables are read a writer attempt that lands during the reads may have begun:
# with both clusters up an attempt takes milliseconds; one still retrying when the journal is
# read after the tables is unanswered, and left out as such.
READ_MARGIN_S = 15

# Longer than the proxy's request timeout (proxy_request_timeout_ms, 10 s by default): the
# writes sent meanwhile go unanswered on that side, and the proxies count them.
HANG_S = 14


def rows(lab, host: str, users: list[str]) -> set[tuple[str, str]]:
    return {(user, status) for user in users for status in writer_rows(lab, host, user)}


def rows_only_on(lab, have: str, lack: str) -> set[tuple]:
    """Every row of the table that the cluster of host `have` holds and that of `lack` does not,
    by the table's key (user, when) as the validation compares them. The writer goes on writing
    to both clusters meanwhile, and the two tables are read one after the other: its attempts
    begun from shortly before the reads, and those still unanswered when the journal is read
    after them, may be on one side between the reads and are on both once answered, so they are
    left out. An attempt that ended without a trustworthy answer (outcome unknown) stays in: its
    row is wherever it landed, and the validation counts it there."""
    begun = utc_now(-READ_MARGIN_S)

    def table(host):
        with cql(lab.address[host]) as session:
            return {(r.user, r.when): r.status
                    for r in session.execute('SELECT "user", "when", status FROM zdmapp.user_status')}

    rows_have, rows_lack = table(have), table(lack)
    answered = journal(lab)  # read once the tables are: every write under way then shows
    unanswered = {e["status"] for e in journal(lab, in_flight=True)} - {e["status"] for e in answered}
    recent = {e["status"] for e in answered if e["ts"] >= begun} | unanswered
    return {(*key, status) for key, status in rows_have.items() if key not in rows_lack and status not in recent}


def stop_a_cluster_under_traffic(lab, node: str, side: str, title: str) -> tuple[set, dict]:
    """The cluster's node hangs (SIGSTOP) while writes are in flight through the proxies, long
    enough for the proxies to give up on its answers, then dies (SIGKILL) and stays down until
    the proxies and Prometheus say so; then it starts again. Returns the rows that reached one
    side only and the counts."""
    start = utc_now()
    try:
        with ClientLoad([lab.address[p] for p in lab.proxies], rate=300, in_flight=32) as load:
            time.sleep(3)
            docker_exec(node, "systemctl", "kill", "--signal=SIGSTOP", "cassandra")
            time.sleep(HANG_S)
            docker_exec(node, "systemctl", "kill", "--signal=SIGKILL", "cassandra")
            docker_exec(node, "systemctl", "stop", "cassandra")  # no automatic restart: it stays down
            time.sleep(3)
        wait_until(lambda: all(side_status(lab, p, side) == "DOWN" for p in lab.proxies), 90, 1,
                   f"every proxy's readiness shows {side} DOWN")
        assert all(readiness(lab, p)[0] == 503 for p in lab.proxies)
        wait_until(lambda: len(firing(lab, "ZdmProxyNotReady")) == 3, 120, 3, "ZdmProxyNotReady firing for all three")
    finally:
        # whatever happened above: a hung node resumes, a stopped one starts
        docker_exec(node, "sh", "-c", "systemctl kill --signal=SIGCONT cassandra; systemctl start cassandra",
                    check=False)
    wait_until(lambda: all(readiness(lab, p)[1].get("Status") == "UP" for p in lab.proxies), 300, 2,
               f"the proxies ready again with {side} back")
    # the writes that failed while it went down stay in the alert's window
    wait_until(lambda: firing(lab, "ZdmProxyFailedWrites"), 150, 5, "ZdmProxyFailedWrites firing")
    end = utc_now()
    entries = journal(lab)
    window = attempts_between(entries, start, end)
    acknowledged = {("writer", e["status"]) for e in window if e["outcome"] == "acknowledged"} | {
        (load.user, s) for s in load.written}
    users = ["writer", load.user]
    # The writer goes on writing while the clusters are read one after the other: only the
    # writes whose outcome it had journaled before they were read are compared.
    sent = {("writer", e["status"]) for e in entries if e["outcome"] != "sending"} | {
        (load.user, s) for s in load.written + load.failed_writes}
    origin, target = rows(lab, lab.origin, users) & sent, rows(lab, lab.target, users) & sent
    counts = {"writer_attempts": len(window), "writer_failed": len(failures(window)), "client_writes":
              len(load.written) + len(load.failed_writes), "client_failed": len(load.failed_writes),
              "acknowledged_one_sided": len(acknowledged - (origin & target)),
              "on_origin_only": len(origin - target), "on_target_only": len(target - origin)}
    report(title, **counts)
    assert counts["writer_failed"] + counts["client_failed"] > 0, "the clients saw the outage"
    assert counts["acknowledged_one_sided"] == 0, sorted(acknowledged - (origin & target))[:5]
    return (origin - target) | (target - origin), counts


def test_target_stopped_under_traffic(lab):
    one_sided, counts = stop_a_cluster_under_traffic(lab, lab.target, "Target", "Target stopped in phase 2")
    assert counts["on_target_only"] == 0 and counts["on_origin_only"] > 0, counts
    lab.marks["origin_only"] = str(len(one_sided))


def test_the_validation_finds_exactly_those_rows_and_autocorrect_repairs_them(lab):
    # The whole table's difference: the outage's rows, and any an earlier fault left.
    missing = rows_only_on(lab, lab.origin, lab.target)
    # keyed by (user, when), as the validation counts; the outage's count is of (user, status) pairs
    assert missing and int(lab.marks["origin_only"]) > 0
    expected = len(missing)
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
