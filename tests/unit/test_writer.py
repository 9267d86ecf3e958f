"""The traffic writer and the checker: pacing, unique statuses, journal, comparison, CLI."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from zdmkit.writer.checker import compare, select_attempts
from zdmkit.writer.cli import main
from zdmkit.writer.journal import Attempt, Journal, JournalError, read_journal
from zdmkit.writer.traffic import (
    Counters,
    Pacer,
    PrefixFile,
    WriterOptions,
    run_writer,
    serve_metrics,
    status_url,
    status_value,
)


def attempt(seq: int, status: str, code: int = 200, when: str | None = None, user: str = "writer") -> Attempt:
    return Attempt(seq, f"2024-05-01T10:00:{seq:02d}.000Z", user, status, code, 3.5, when)


def test_status_value_is_lab_like_and_unique():
    now = dt.datetime(2024, 5, 1, 14, 3, 22)
    assert status_value("ModeProxy_", 123, now, "k3v9") == "ModeProxy_14-03-22_k3v9_000123"
    assert status_value("ModeProxy_", 124, now, "k3v9") != status_value("ModeProxy_", 123, now, "k3v9")


def test_status_url_escapes_every_byte():
    assert status_url("http://h:8000/", "e va", "a/b?c") == "http://h:8000/status/e%20va/a%2Fb%3Fc"


def test_pacer_spaces_sends_and_skips_missed_slots_without_bursting():
    pacer = Pacer(rate=10, start=100.0)
    assert pacer.delay(100.0) == 0
    pacer.sent(100.001)
    assert pacer.delay(100.05) == pytest.approx(0.05)
    pacer.sent(100.1)
    # A request that took 0.55 s: the missed slots are dropped, one send follows at once.
    pacer.sent(100.75)
    assert pacer.skipped == 4
    assert pacer.delay(100.75) == 0
    pacer.sent(100.76)
    assert pacer.delay(100.76) == pytest.approx(0.04)


def test_pacer_refuses_a_zero_rate():
    with pytest.raises(ValueError):
        Pacer(0, 0.0)


def test_prefix_file_is_reread_when_it_changes(tmp_path: Path):
    path = tmp_path / "prefix"
    prefix = PrefixFile(path, "ModeCassandra_")
    assert prefix() == "ModeCassandra_"
    path.write_text("ModeProxy_\n", encoding="utf-8")
    assert prefix() == "ModeProxy_"
    path.write_text("# managed by Ansible\n\nModeTarget_\n", encoding="utf-8")
    assert prefix() == "ModeTarget_"
    path.write_text("\n", encoding="utf-8")
    assert prefix() == "ModeCassandra_"


def test_journal_round_trip_and_torn_last_line(tmp_path: Path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append(attempt(1, "A_1", when="2024-05-01T10:00:01.000"))
        journal.append(attempt(2, "A_2", code=0))
    with path.open("a", encoding="utf-8") as f:
        f.write('{"seq": 3, "ts": "2024')  # the writer died mid-line
    read = list(read_journal(path))
    assert [a.status for a in read] == ["A_1", "A_2"]
    assert read[0].acknowledged and not read[1].acknowledged


def test_journal_refuses_a_bad_line_in_the_middle(tmp_path: Path):
    path = tmp_path / "j.jsonl"
    path.write_text('not json\n{"x": 1}\n', encoding="utf-8")
    with pytest.raises(JournalError, match=r"j.jsonl:1: not a journal line"):
        list(read_journal(path))


def test_compare_reports_only_acknowledged_writes_as_missing():
    attempts = [
        attempt(1, "P_1", when="2024-05-01T10:00:01.000"),
        attempt(2, "P_2"),
        attempt(3, "P_3", code=503),
        attempt(4, "P_4", code=0),
        attempt(5, "P_5", when="2024-05-01T10:00:05.000"),
    ]
    stored = {"writer": {"P_1": "2024-05-01T10:00:01.000", "P_3": "x", "P_5": "2024-05-01T10:00:06.000"}}
    report = compare(attempts, stored)
    assert [a.status for a in report.missing] == ["P_2"]
    assert [a.status for a in report.when_mismatch] == ["P_5"]
    assert report.summary() == {
        "attempts": 5,
        "acknowledged": 3,
        "acknowledged_found": 2,
        "missing": 1,
        "when_mismatch": 1,
        "unacknowledged": 2,
        "unacknowledged_found": 1,
    }
    assert not report.ok
    assert compare(attempts[:1], stored).ok


def test_select_attempts_by_prefix_and_time():
    attempts = [attempt(1, "ModeCassandra_1"), attempt(2, "ModeProxy_2"), attempt(3, "ModeProxy_3")]
    assert [a.seq for a in select_attempts(attempts, prefix="ModeProxy_")] == [2, 3]
    assert [a.seq for a in select_attempts(attempts, since="2024-05-01T10:00:03.000Z")] == [3]


class _StatusHandler(BaseHTTPRequestHandler):
    """Stands in for the API's HTTP surface only: answers like the real POST, fails every 5th."""

    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        _, _, user, status = self.path.split("/", 3)
        if type(self).calls % 5 == 0:
            body, code = b'{"detail": "try later"}', 503
        else:
            entry = {"user": unquote(user), "when": "2024-05-01T10:00:00.000", "status": unquote(status)}
            body, code = json.dumps(entry).encode(), 200
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def status_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    _StatusHandler.calls = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_run_writer_is_bounded_and_journals_every_attempt(tmp_path: Path, status_server: str):
    journal_path, state = tmp_path / "w.jsonl", tmp_path / "state.json"
    counters = Counters(prefix="ModeProxy_")
    options = WriterOptions(url=status_server, rate=50, count=10, duration=10, state_file=state)
    with Journal(journal_path) as journal:
        run_writer(options, lambda: "ModeProxy_", journal, counters, threading.Event())
    read = list(read_journal(journal_path))
    assert len(read) == 10
    assert len({a.status for a in read}) == 10
    assert all(a.status.startswith("ModeProxy_") for a in read)
    assert sum(a.acknowledged for a in read) == 8
    assert [a.code for a in read if not a.acknowledged] == [503, 503]
    snap = json.loads(state.read_text(encoding="utf-8"))
    assert (snap["attempts"], snap["acknowledged"], snap["rejected"]) == (10, 8, 2)


def test_run_writer_records_transport_errors(tmp_path: Path):
    counters = Counters()
    options = WriterOptions(url="http://127.0.0.1:9", rate=100, count=3, duration=5, timeout=1)
    with Journal(tmp_path / "w.jsonl") as journal:
        run_writer(options, lambda: "X_", journal, counters, threading.Event())
    read = list(read_journal(tmp_path / "w.jsonl"))
    assert [a.code for a in read] == [0, 0, 0]
    assert all(a.error for a in read)
    assert counters.transport_errors == 3


def test_run_writer_stops_at_its_duration(tmp_path: Path, status_server: str):
    options = WriterOptions(url=status_server, rate=20, duration=0.5)
    with Journal(tmp_path / "w.jsonl") as journal:
        counters = run_writer(options, lambda: "D_", journal, Counters(), threading.Event())
    assert 5 <= counters.attempts <= 12


def test_metrics_endpoint_serves_counters():
    counters = Counters()
    counters.record(attempt(1, "A", code=200))
    counters.record(attempt(2, "B", code=0))
    server = serve_metrics("127.0.0.1", 0, counters)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        text = httpx.get(f"{base}/metrics").text
        assert "zdmkit_writer_attempts_total 2" in text
        assert "zdmkit_writer_acknowledged_total 1" in text
        assert 'zdmkit_writer_responses_total{code="none"} 1' in text
        assert httpx.get(f"{base}/state").json()["transport_errors"] == 1
        assert httpx.get(f"{base}/other").status_code == 404
    finally:
        server.shutdown()


def test_cli_run_writes_a_journal(tmp_path: Path, status_server: str, capsys):
    journal = tmp_path / "cli.jsonl"
    code = main(
        ["run", "--url", status_server, "--rate", "40", "--duration", "5", "--count", "4",
         "--prefix", "ModeTarget_", "--journal", str(journal)]
    )  # fmt: skip
    assert code == 0
    assert len(list(read_journal(journal))) == 4
    assert json.loads(capsys.readouterr().out.strip())["attempts"] == 4


def test_cli_run_refuses_an_unbounded_run(tmp_path: Path):
    with pytest.raises(SystemExit, match="positive --duration"):
        main(["run", "--url", "http://127.0.0.1:9", "--duration", "0", "--journal", str(tmp_path / "j")])


def test_cli_check_needs_a_cluster_address(tmp_path: Path, capsys):
    journal = tmp_path / "j.jsonl"
    journal.write_text(attempt(1, "A").to_line(), encoding="utf-8")
    assert main(["check", "--journal", str(journal)]) == 2
    assert "give --contact-points or --secure-connect-bundle" in capsys.readouterr().err
