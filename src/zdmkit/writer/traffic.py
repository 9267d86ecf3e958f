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

from .journal import Attempt, Journal

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
            if attempt.acknowledged:
                self.acknowledged += 1
            elif attempt.code:
                self.rejected += 1
            else:
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


def run_writer(
    options: WriterOptions,
    prefix: Callable[[], str],
    journal: Journal,
    counters: Counters,
    stop: threading.Event,
    client: httpx.Client | None = None,
) -> Counters:
    """POST statuses until ``stop`` is set, ``count`` attempts are made or ``duration`` has passed.

    ``count`` and ``duration`` of 0 mean no such limit.
    """
    own_client = client is None
    http = client or httpx.Client(timeout=options.timeout)
    run_id = new_run_id()
    start = time.monotonic()
    pacer = Pacer(options.rate, start)
    last_state = 0.0
    seq = 0
    try:
        while not stop.is_set():
            if options.count and seq >= options.count:
                break
            if options.duration and time.monotonic() - start >= options.duration:
                break
            wait = pacer.delay(time.monotonic())
            if options.duration:
                wait = min(wait, max(0.0, start + options.duration - time.monotonic()))
            if wait and stop.wait(wait):
                break
            if options.duration and time.monotonic() - start >= options.duration:
                break
            seq += 1
            current = prefix()
            counters.prefix = current
            attempt = post_once(http, options.url, options.user, status_value(current, seq, _now(), run_id), seq)
            journal.append(attempt)
            counters.record(attempt)
            pacer.sent(time.monotonic())
            counters.skipped_slots = pacer.skipped
            if options.state_file and time.monotonic() - last_state >= options.state_interval:
                write_state(options.state_file, counters)
                last_state = time.monotonic()
    finally:
        if own_client:
            http.close()
        if options.state_file:
            write_state(options.state_file, counters)
    return counters


def post_once(client: httpx.Client, base_url: str, user: str, status: str, seq: int) -> Attempt:
    """Send one status and describe what happened."""
    sent_at = time.time()
    started = time.perf_counter()
    code, when, error = 0, None, None
    try:
        response = client.post(status_url(base_url, user, status))
        code = response.status_code
        if 200 <= code < 300:
            body = response.json()
            when = body.get("when") if isinstance(body, dict) else None
            if not isinstance(body, dict) or body.get("status") != status:
                error = "2xx answer does not echo the status sent"
        else:
            error = response.text[:200]
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
    except ValueError as exc:
        error = f"2xx answer is not JSON: {exc}"[:200]
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
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
