"""Phase 0 as site.yml left it: the public lab's own checks, the status report, and the
writer writing to Origin."""

from __future__ import annotations

import json
import re

from labkit import docker_exec, failures, journal, playbook


def test_status_reports_phase_0(lab):
    run = playbook(lab, "status.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "phase: 0 - before the migration" in run.text
    assert re.search(r"origin nodes: [0-9.]+ UN", run.text), run.stdout[-2000:]
    assert re.search(r"target nodes: [0-9.]+ UN", run.text), run.stdout[-2000:]
    assert "demo app: ok, mode CASSANDRA" in run.text
    assert re.search(r"proxies: (\S+ not installed; ){2}\S+ not installed", run.text), run.stdout[-2000:]
    assert "prometheus targets down: none" in run.text, run.stdout[-2000:]


def test_the_public_labs_checks_work(lab):
    # curl on the client host, as the lab does against localhost:8000 (the app listens on the
    # host's service address here); cqlsh with cassandra/cassandra inside the Origin node.
    url = f"{lab.app_url}/status/eva?entries=2"
    entries = json.loads(docker_exec(lab.client, "curl", "-s", "-XGET", url))
    assert [e["status"] for e in entries] == ["Asleep", "Away"]
    out = docker_exec(lab.origin, "cqlsh", "-u", "cassandra", "-p", "cassandra", "-e",
                      "SELECT * FROM zdmapp.user_status WHERE user='eva' LIMIT 5;")
    assert "Online" in out and "Asleep" in out, out
    out = docker_exec(lab.target, "cqlsh", "-u", "cassandra", "-p", "cassandra", "-e",
                      "SELECT count(*) FROM zdmapp.user_status;")
    assert re.search(r"^\s*0\s*$", out, flags=re.M), "Target holds the schema and no data before phase 2"


def test_the_writer_writes_to_origin(lab):
    entries = journal(lab)
    assert len(entries) > 20, len(entries)
    assert all(e["status"].startswith("ModeCassandra_") for e in entries)
    assert failures(entries) == [], failures(entries)[:5]
