"""After phase 5: the loss check over the writer's whole journal, the report of the migration,
every host's logs in one archive, and the proxies retired."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

from labkit import JOURNAL, ROOT, changed_hosts, docker_exec, failures, journal, playbook, report


def check(lab, tmp_path: Path, host: str, prefix: str | None = None) -> dict:
    copy = tmp_path / "journal.jsonl"
    # the writer may still be writing: its complete lines as they are now
    text = subprocess.run(["docker", "exec", lab.client, "cat", JOURNAL], check=True, capture_output=True,
                          text=True).stdout
    copy.write_text(text[: text.rfind("\n") + 1])
    command = ["zdmkit-writer", "check", "--journal", str(copy), "--contact-points", lab.address[host],
               "--username", "cassandra", "--password", "cassandra", "--json"]
    if prefix:
        command += ["--prefix", prefix]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)


def test_the_loss_check_playbook_finds_nothing_missing(lab):
    run = playbook(lab, "loss_check.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "target (all writes): " in run.text and " 0 missing" in run.text, run.text[-2000:]
    assert "origin (ModeProxy_): " in run.text


def test_no_acknowledged_write_was_lost(lab, tmp_path):
    entries = journal(lab)
    on_target = check(lab, tmp_path, lab.target)
    on_origin = [check(lab, tmp_path, lab.origin, prefix) for prefix in ("ModeCassandra_", "ModeProxy_")]
    report("loss check", attempts=len(entries), acknowledged=on_target["acknowledged"],
           failed=len(failures(entries)), missing_on_target=on_target["missing"],
           missing_on_origin_before_phase_5=sum(r["missing"] for r in on_origin))
    assert on_target["acknowledged"] > 1000
    assert on_target["missing"] == 0, on_target["missing_statuses"][:10]
    assert all(r["missing"] == 0 for r in on_origin), [r["missing_statuses"][:10] for r in on_origin]


def test_the_report_shows_the_migration(lab):
    run = playbook(lab, "report.yml", extra={"report_window": 7200})
    assert run.returncode == 0, run.stdout[-3000:]
    out = ROOT / "reports" / "migration"
    record = json.loads((out / "report.json").read_text())
    assert [m["phase"] for m in record["markers"]][:5] == [1, 2, 3, 4, 5] or {1, 2, 3, 4, 5} <= {
        m["phase"] for m in record["markers"]}
    assert record["markers"][-1]["phase"] == 5
    for slug in ("client-ops", "ops-by-cluster", "failed-writes", "latency-p99"):
        assert record["charts"][slug]["image"], slug
    ops = record["charts"]["ops-by-cluster"]["series"]
    assert any(n.startswith("cassandra origin Write") for n in ops) and any(n.startswith("cassandra target Write")
                                                                            for n in ops), ops
    assert any(n.startswith("proxy reads_target") for n in ops) and any(n.startswith("proxy reads_origin")
                                                                        for n in ops), ops
    proxied = record["charts"]["client-ops"]
    report("report", proxy_peak=round(proxied["peak"]["through the proxies"], 2),
           proxy_last=proxied["last"]["through the proxies"])
    assert proxied["peak"]["through the proxies"] > 5
    assert proxied["last"]["through the proxies"] == 0, "no request through the proxies after phase 5"


def test_collect_logs_gathers_every_hosts_logs_in_one_archive(lab):
    run = playbook(lab, "collect_logs.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    archives = sorted((ROOT / "reports" / "logs").glob("zdmkit-logs-*.tar.gz"))
    assert archives
    with tarfile.open(archives[-1]) as archive:
        names = archive.getnames()
    for proxy in lab.proxies:
        assert any(n.startswith(f"{proxy}/zdm-proxy") for n in names), (proxy, names[:20])
    assert any(n.startswith(f"{lab.client}/zdmkit-demo-app") for n in names)
    for node in (lab.origin, lab.target):
        assert any(n.startswith(f"{node}/cassandra") for n in names), node


def test_teardown_retires_the_proxies_and_keeps_origin_without_the_flag(lab):
    run = playbook(lab, "teardown.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    for proxy in lab.proxies:
        listing = docker_exec(proxy, "sh", "-c", "ls /etc/zdm-proxy /opt/zdm-proxy 2>&1 || true")
        assert listing.count("No such file") == 2, listing
        assert "zdm-proxy" not in docker_exec(proxy, "getent", "passwd", check=False)
    assert docker_exec(lab.origin, "systemctl", "is-active", "cassandra", check=False).strip() == "active"
    again = playbook(lab, "teardown.yml")
    assert again.returncode == 0 and changed_hosts(again.stdout) == {}
