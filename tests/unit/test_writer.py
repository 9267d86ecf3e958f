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
from zdmkit.writer.journal import Attempt, Journal, JournalError, parse_journal, read_journal
from zdmkit.writer.traffic import (
    Counters,
    Pacer,
    PrefixFile,
    WriterOptions,
    new_client,
    post_once,
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
        "rejected": 0,
        "not_sent": 0,
        "unknown": 2,
        "unknown_found": 1,
        "contradicted": 0,
    }
    assert not report.ok
    assert compare(attempts[:1], stored).ok


def test_compare_fails_on_a_stored_write_the_journal_says_was_refused_or_never_sent():
    attempts = [
        attempt(1, "R_1", code=422),
        Attempt(2, "2024-05-01T10:00:02.000Z", "writer", "R_2", 0, 1.0, outcome="not_sent"),
        Attempt(3, "2024-05-01T10:00:03.000Z", "writer", "R_3", 0, 1.0, outcome="unknown"),
    ]
    report = compare(attempts, {"writer": {"R_1": "x", "R_2": "y", "R_3": "z"}})
    assert [a.status for a in report.contradicted] == ["R_1", "R_2"]
    assert (report.summary()["rejected"], report.summary()["not_sent"], report.unknown_found) == (1, 1, 1)
    assert not report.ok
    assert compare(attempts, {"writer": {"R_3": "z"}}).ok


def test_outcome_follows_the_code_in_journals_without_one():
    assert [attempt(i, "x", code=c).outcome for i, c in enumerate((200, 201, 404, 422, 500, 503, 0))] == [
        "acknowledged", "acknowledged", "rejected", "rejected", "unknown", "unknown", "unknown",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown outcome"):
        Attempt(1, "t", "u", "s", 200, 1.0, outcome="probably")


def test_an_attempt_without_its_outcome_line_reads_back_as_unknown(tmp_path: Path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.begin(1, "2024-05-01T10:00:01.000Z", "writer", "S_1")
        journal.append(attempt(1, "S_1"))
        journal.begin(2, "2024-05-01T10:00:02.000Z", "writer", "S_2")  # killed while sending
    read = list(read_journal(path))
    assert [(a.status, a.outcome) for a in read] == [("S_1", "acknowledged"), ("S_2", "unknown")]
    assert "stopped during the attempt" in read[1].error


def test_select_attempts_by_prefix_and_time():
    attempts = [attempt(1, "ModeCassandra_1"), attempt(2, "ModeProxy_2"), attempt(3, "ModeProxy_3")]
    assert [a.seq for a in select_attempts(attempts, prefix="ModeProxy_")] == [2, 3]
    assert [a.seq for a in select_attempts(attempts, since="2024-05-01T10:00:03.000Z")] == [3]


class _StatusHandler(BaseHTTPRequestHandler):
    """Stands in for the API's HTTP surface only: answers like the real POST, fails every 5th."""

    protocol_version = "HTTP/1.1"  # keeps connections open unless the client asks otherwise
    calls = 0
    connections = 0
    close_asked = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def do_POST(self) -> None:
        type(self).calls += 1
        if self.headers.get("Connection", "").lower() == "close":
            type(self).close_asked += 1
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
    _StatusHandler.calls = _StatusHandler.connections = _StatusHandler.close_asked = 0
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
    assert [(a.code, a.outcome) for a in read if not a.acknowledged] == [(503, "unknown"), (503, "unknown")]
    snap = json.loads(state.read_text(encoding="utf-8"))
    assert (snap["attempts"], snap["acknowledged"], snap["unknown"], snap["rejected"]) == (10, 8, 2, 0)
    # Every request came on a connection of its own, and asked the server to close it.
    assert _StatusHandler.connections == 10
    assert _StatusHandler.close_asked == 10


def test_run_writer_shares_count_and_rate_between_senders(tmp_path: Path, status_server: str):
    options = WriterOptions(url=status_server, rate=200, count=40, duration=10, concurrency=4)
    with Journal(tmp_path / "w.jsonl") as journal:
        counters = run_writer(options, lambda: "C_", journal, Counters(), threading.Event())
    read = list(read_journal(tmp_path / "w.jsonl"))
    assert counters.attempts == len(read) == 40
    assert sorted(a.seq for a in read) == list(range(1, 41))
    assert len({a.status for a in read}) == 40


def test_run_writer_records_transport_errors(tmp_path: Path):
    counters = Counters()
    options = WriterOptions(url="http://127.0.0.1:9", rate=100, count=3, duration=5, timeout=0.5)
    with Journal(tmp_path / "w.jsonl") as journal:
        run_writer(options, lambda: "X_", journal, counters, threading.Event())
    read = list(read_journal(tmp_path / "w.jsonl"))
    assert [(a.code, a.outcome) for a in read] == [(0, "not_sent")] * 3
    # A refused connection sent nothing: it is tried again until the attempt's time is up.
    assert all(a.error and a.tries > 1 and a.latency_ms < 1500 for a in read)
    assert (counters.transport_errors, counters.not_sent) == (3, 3)


class _OddHandler(BaseHTTPRequestHandler):
    """Answers by path: 422, a 2xx that echoes another status, or no answer at all."""

    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        kind = self.path.split("/")[3]
        if kind.startswith("drop"):
            self.close_connection = True  # read the request, close without an answer
            return
        code, body = (422, b'{"detail": "no"}') if kind.startswith("bad") else (200, b'{"status": "other"}')
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [("bad", "rejected", 422), ("echo", "unknown", 200), ("drop", "unknown", 0)],
)
def test_post_once_never_calls_an_unsure_answer_acknowledged_nor_sends_twice(status, outcome, code):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OddHandler)
    _OddHandler.calls = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with new_client(5) as client:
            result = post_once(client, f"http://127.0.0.1:{server.server_address[1]}", "u", status, 1, timeout=5)
    finally:
        server.shutdown()
    assert (result.outcome, result.code, result.tries) == (outcome, code, 1)
    assert not result.acknowledged and result.error
    assert _OddHandler.calls == 1


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
        assert 'zdmkit_writer_outcomes_total{outcome="unknown"} 1' in text
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


def test_a_live_journal_can_be_read_without_the_attempt_in_flight():
    text = attempt(1, "L_1").to_line() + '{"seq":2,"ts":"t","user":"writer","status":"L_2","outcome":"sending"}\n'
    assert [a.status for a in parse_journal(text)] == ["L_1", "L_2"]
    assert [a.status for a in parse_journal(text, in_flight=False)] == ["L_1"]
