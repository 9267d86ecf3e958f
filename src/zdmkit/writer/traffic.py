"""The traffic writer: POST a new, unique status at a steady rate and journal every attempt.

It replaces the public lab's shell loop (``curl -XPOST .../status/eva/ModeProxy_<time>``
every 20 s) with something whose every attempt can be checked afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import httpx

from .journal import ACKNOWLEDGED, NOT_SENT, OUTCOMES, REJECTED, UNKNOWN, Attempt, Journal

_RUN_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """Four random characters that keep statuses of two runs apart."""
    return "".join(secrets.choice(_RUN_ID_ALPHABET) for _ in range(4))


def status_value(prefix: str, seq: int, now: dt.datetime, run_id: str) -> str:
    """A status unique to one attempt, lab-like: ``ModeProxy_14-03-22_k3v9_000123``."""
    return f"{prefix}{now:%H-%M-%S}_{run_id}_{seq:06d}"


def status_url(base_url: str, user: str, status: str) -> str:
    """The lab's write endpoint for ``user`` and ``status``, every byte escaped."""
    return f"{base_url.rstrip('/')}/status/{quote(user, safe='')}/{quote(status, safe='')}"


def utc_stamp(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Pacer:
    """Spaces sends ``1/rate`` seconds apart on a fixed schedule.

    After a stall (a slow request) the schedule restarts from now instead of
    firing the missed sends in a burst; ``skipped`` counts those missed slots.
    """

    def __init__(self, rate: float, start: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.next_at = start
        self.skipped = 0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send."""
        return max(0.0, self.next_at - now)

    def sent(self, now: float) -> None:
        """Record a send made at ``now`` and schedule the next one."""
        self.next_at += self.interval
        if now > self.next_at + self.interval:
            # More than one whole slot behind: drop the missed slots, keep the grid.
            missed = int((now - self.next_at) // self.interval)
            self.skipped += missed
            self.next_at += missed * self.interval


@dataclass
class Counters:
    """What the writer has done so far; exposed as a state file and as Prometheus metrics."""

    prefix: str = ""
    attempts: int = 0
    acknowledged: int = 0
    rejected: int = 0
    unknown: int = 0
    not_sent: int = 0
    transport_errors: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    skipped_slots: int = 0
    started: float = field(default_factory=time.time)
    last_code: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts += 1
            self.last_code = attempt.code
            key = str(attempt.code) if attempt.code else "none"
            self.codes[key] = self.codes.get(key, 0) + 1
            if attempt.outcome == ACKNOWLEDGED:
                self.acknowledged += 1
            elif attempt.outcome == REJECTED:
                self.rejected += 1
            elif attempt.outcome == NOT_SENT:
                self.not_sent += 1
            else:
                self.unknown += 1
            if not attempt.code:
                self.transport_errors += 1
            self.latency_sum_ms += attempt.latency_ms
            self.latency_max_ms = max(self.latency_max_ms, attempt.latency_ms)

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "prefix": self.prefix,
                "attempts": self.attempts,
                "acknowledged": self.acknowledged,
                "rejected": self.rejected,
                "unknown": self.unknown,
                "not_sent": self.not_sent,
                "transport_errors": self.transport_errors,
                "skipped_slots": self.skipped_slots,
                "latency_avg_ms": round(self.latency_sum_ms / self.attempts, 3) if self.attempts else 0.0,
                "latency_max_ms": round(self.latency_max_ms, 3),
                "last_code": self.last_code,
                "codes": dict(self.codes),
                "started": utc_stamp(self.started),
                "updated": utc_stamp(time.time()),
            }

    def prometheus(self) -> str:
        snap = self.snapshot()
        lines = [
            "# HELP zdmkit_writer_attempts_total Status writes attempted.",
            "# TYPE zdmkit_writer_attempts_total counter",
            f"zdmkit_writer_attempts_total {snap['attempts']}",
            "# HELP zdmkit_writer_acknowledged_total Status writes answered with 2xx.",
            "# TYPE zdmkit_writer_acknowledged_total counter",
            f"zdmkit_writer_acknowledged_total {snap['acknowledged']}",
            "# HELP zdmkit_writer_responses_total Answers by HTTP status code (none: no answer).",
            "# TYPE zdmkit_writer_responses_total counter",
        ]
        lines += [f'zdmkit_writer_responses_total{{code="{code}"}} {n}' for code, n in sorted(snap["codes"].items())]
        lines += [
            "# HELP zdmkit_writer_outcomes_total Attempts by outcome (unknown: sent, maybe stored, not acknowledged).",
            "# TYPE zdmkit_writer_outcomes_total counter",
        ]
        lines += [f'zdmkit_writer_outcomes_total{{outcome="{name}"}} {snap[name]}' for name in OUTCOMES]
        lines += [
            "# HELP zdmkit_writer_latency_seconds_sum Total time spent waiting for answers.",
            "# TYPE zdmkit_writer_latency_seconds_sum counter",
            f"zdmkit_writer_latency_seconds_sum {self.latency_sum_ms / 1000:.6f}",
            "# HELP zdmkit_writer_latency_max_seconds Longest wait for an answer so far.",
            "# TYPE zdmkit_writer_latency_max_seconds gauge",
            f"zdmkit_writer_latency_max_seconds {self.latency_max_ms / 1000:.6f}",
            "# HELP zdmkit_writer_skipped_slots_total Send slots missed because a request was slow.",
            "# TYPE zdmkit_writer_skipped_slots_total counter",
            f"zdmkit_writer_skipped_slots_total {snap['skipped_slots']}",
        ]
        return "\n".join(lines) + "\n"


def write_state(path: Path, counters: Counters) -> None:
    """Replace ``path`` with the counters as JSON, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(counters.snapshot(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class PrefixFile:
    """The phase prefix, read from a file whenever the file changes.

    The first line that is neither blank nor a ``#`` comment is the prefix; a file
    without one (or no file) means the default.
    """

    def __init__(self, path: Path, default: str) -> None:
        self.path = path
        self.default = default
        self._stamp: tuple[int, int] | None = None
        self._value = default

    def __call__(self) -> str:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._value = None, self.default
            return self._value
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            lines = (line.strip() for line in self.path.read_text(encoding="utf-8").splitlines())
            self._value = next((line for line in lines if line and not line.startswith("#")), self.default)
            self._stamp = stamp
        return self._value


def serve_metrics(address: str, port: int, counters: Counters) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (Prometheus text) and ``/state`` (JSON) from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype = counters.prometheus(), "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/state":
                body, ctype = json.dumps(counters.snapshot()) + "\n", "application/json"
            else:
                self.send_error(404)
                return
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, name="writer-metrics", daemon=True).start()
    return server


@dataclass
class WriterOptions:
    url: str
    user: str = "writer"
    rate: float = 0.05
    duration: float = 0.0
    count: int = 0
    timeout: float = 60.0
    state_file: Path | None = None
    state_interval: float = 1.0
    concurrency: int = 1


def new_client(timeout: float) -> httpx.Client:
    """The writer's HTTP client: a new connection for every request.

    A status POST is not idempotent (the API stamps the row with its own time), so it is
    never sent twice. A kept-alive connection can be closed by the server between two
    requests (a restart, an idle timeout) at the very moment the next POST goes out, and
    then nobody knows whether that POST was served. A fresh connection per request leaves
    one clear case that is safe to try again: the connection could not be made at all.
    """
    return httpx.Client(
        timeout=timeout,
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"Connection": "close"},
    )


def run_writer(
    options: WriterOptions,
    prefix: Callable[[], str],
    journal: Journal,
    counters: Counters,
    stop: threading.Event,
    client: httpx.Client | None = None,
) -> Counters:
    """POST statuses until ``stop`` is set, ``count`` attempts are made or ``duration`` has passed.

    ``count`` and ``duration`` of 0 mean no such limit. With ``concurrency`` N, N senders
    share the rate (each sends at rate/N, their schedules interleaved), the count and the journal.
    """
    if options.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    own_client = client is None
    http = client or new_client(options.timeout)
    run_id = new_run_id()
    start = time.monotonic()
    seq_lock = threading.Lock()
    last_seq = 0

    def next_seq() -> int | None:
        nonlocal last_seq
        with seq_lock:
            if options.count and last_seq >= options.count:
                return None
            last_seq += 1
            return last_seq

    def time_is_up() -> bool:
        return bool(options.duration) and time.monotonic() - start >= options.duration

    def sender(index: int) -> None:
        pacer = Pacer(options.rate / options.concurrency, start + index / options.rate)
        while not stop.is_set() and not time_is_up():
            wait = pacer.delay(time.monotonic())
            if options.duration:
                wait = min(wait, max(0.0, start + options.duration - time.monotonic()))
            if wait and stop.wait(wait):
                break
            if time_is_up():
                break
            seq = next_seq()
            if seq is None:
                break
            current = prefix()
            counters.prefix = current
            status = status_value(current, seq, _now(), run_id)
            # Journaled before it is sent: if the writer dies mid-attempt, the attempt still
            # shows, as one whose outcome is unknown.
            journal.begin(seq, utc_stamp(time.time()), options.user, status)
            attempt = post_once(http, options.url, options.user, status, seq, options.timeout)
            journal.append(attempt)
            counters.record(attempt)
            pacer.sent(time.monotonic())
            with seq_lock:
                counters.skipped_slots += pacer.skipped
                pacer.skipped = 0

    failures: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            sender(index)
        except BaseException as exc:  # a journal that cannot be written ends the run
            failures.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=guarded, args=(i,), name=f"writer-{i}", daemon=True)
        for i in range(options.concurrency)
    ]
    last_state = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        while alive := [thread for thread in threads if thread.is_alive()]:
            alive[0].join(0.1)
            if options.state_file and time.monotonic() - last_state >= options.state_interval:
                write_state(options.state_file, counters)
                last_state = time.monotonic()
    finally:
        stop_now = any(thread.is_alive() for thread in threads)
        if stop_now:  # interrupted: let each sender finish (and journal) the attempt it is in
            stop.set()
        for thread in threads:
            thread.join()
        if own_client:
            http.close()
        if options.state_file:
            write_state(options.state_file, counters)
    if failures:
        raise failures[0]
    return counters


# Transport errors raised before any byte of the request left: safe to try again.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def post_once(
    client: httpx.Client,
    base_url: str,
    user: str,
    status: str,
    seq: int,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Attempt:
    """Send one status and describe what happened, honestly.

    A connection that cannot be made is tried again, with backoff, until ``timeout``
    seconds have passed since the attempt began: nothing was sent, so nothing can be
    stored twice. Anything that fails once the request may have left is not sent again
    and is recorded as ``unknown``; only a 2xx answer echoing the status is ``acknowledged``.
    """
    sent_at = time.time()
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    code, when, error, outcome, tries = 0, None, None, UNKNOWN, 0
    delay = 0.1
    url = status_url(base_url, user, status)
    while True:
        tries += 1
        try:
            response = client.post(url, timeout=max(0.001, deadline - time.monotonic()))
        except NOT_SENT_ERRORS as exc:
            error, outcome = f"{type(exc).__name__}: {exc}"[:200], NOT_SENT
            if time.monotonic() + delay < deadline:
                sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            break
        except httpx.HTTPError as exc:
            error, outcome = f"{type(exc).__name__}: {exc}"[:200], UNKNOWN
            break
        code = response.status_code
        error, outcome = None, UNKNOWN
        if 200 <= code < 300:
            try:
                body = response.json()
            except ValueError as exc:
                error = f"2xx answer is not JSON: {exc}"[:200]
            else:
                if isinstance(body, dict) and body.get("status") == status:
                    when, outcome = body.get("when"), ACKNOWLEDGED
                else:
                    error = "2xx answer does not echo the status sent"
        else:
            outcome = REJECTED if 400 <= code < 500 else UNKNOWN
            error = response.text[:200]
        break
    latency_ms = (time.perf_counter() - started) * 1000
    return Attempt(
        seq=seq,
        ts=utc_stamp(sent_at),
        user=user,
        status=status,
        code=code,
        latency_ms=round(latency_ms, 3),
        when=when,
        error=error,
        outcome=outcome,
        tries=tries,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
