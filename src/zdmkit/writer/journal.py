"""The writer's journal: one JSON line per write attempt, appended as it happens.

A line records what was sent and what came back, and what the caller can
honestly conclude from it (``outcome``)::

    {"seq": 7, "ts": "2024-05-01T10:00:00.350Z", "user": "writer",
     "status": "ModeProxy_10-00-00_k3v9_000007", "code": 200, "latency_ms": 4.2,
     "when": "2024-05-01T10:00:00.351", "error": null, "outcome": "acknowledged", "tries": 1}

Outcomes:

- ``acknowledged``: a 2xx answer echoing the status sent; the write is promised stored.
- ``rejected``: a 4xx answer; the API refused the request before writing anything.
- ``not_sent``: no connection could be made (refused, connect timeout) within the
  attempt's time; the request never left the writer.
- ``unknown``: the request was sent but no trustworthy answer came back (a timeout, a
  connection closed before the answer, a 5xx, a 2xx that does not echo the status).
  The write may or may not be stored: never counted as acknowledged.

Before each attempt is sent, a line with ``"outcome": "sending"`` is journaled; the
attempt's own line follows once its outcome is known. An attempt whose outcome line
never came (the writer was killed mid-attempt) reads back as ``unknown``. Lines written
before ``outcome`` existed get one derived from their code.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

ACKNOWLEDGED = "acknowledged"
REJECTED = "rejected"
NOT_SENT = "not_sent"
UNKNOWN = "unknown"
OUTCOMES = (ACKNOWLEDGED, REJECTED, NOT_SENT, UNKNOWN)
# The outcome of the line journaled before an attempt is sent.
SENDING = "sending"


def outcome_of_code(code: int) -> str:
    """The outcome an HTTP status code alone allows (0: no answer, so unknown)."""
    if 200 <= code < 300:
        return ACKNOWLEDGED
    if 400 <= code < 500:
        return REJECTED
    return UNKNOWN


@dataclass(frozen=True)
class Attempt:
    """One POST of a new status, and its outcome."""

    seq: int
    ts: str
    user: str
    status: str
    code: int
    latency_ms: float
    when: str | None = None
    error: str | None = None
    outcome: str = ""
    tries: int = 1

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", outcome_of_code(self.code))
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r} (expected one of {', '.join(OUTCOMES)})")

    @property
    def acknowledged(self) -> bool:
        """The API answered 2xx with the status sent: the write is promised to be stored."""
        return self.outcome == ACKNOWLEDGED

    def to_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        return cls(
            seq=int(data["seq"]),
            ts=str(data["ts"]),
            user=str(data["user"]),
            status=str(data["status"]),
            code=int(data["code"]),
            latency_ms=float(data["latency_ms"]),
            when=data.get("when"),
            error=data.get("error"),
            outcome=str(data.get("outcome") or ""),
            tries=int(data.get("tries", 1)),
        )


class JournalError(Exception):
    """The journal cannot be read; the message says where."""


class Journal:
    """Appends attempts to a file, one line each, flushed to the OS at once.

    With ``sync=True`` each line is also fsynced, so an acknowledged write is on
    disk before the next one is sent, even if the machine dies.
    """

    def __init__(self, path: Path, *, sync: bool = False) -> None:
        self.path = path
        self.sync = sync
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def begin(self, seq: int, ts: str, user: str, status: str) -> None:
        """Record that the attempt ``status`` is about to be sent."""
        line = {"seq": seq, "ts": ts, "user": user, "status": status, "outcome": SENDING}
        self._write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")

    def append(self, attempt: Attempt) -> None:
        """Record the outcome of an attempt."""
        self._write(attempt.to_line())

    def _write(self, line: str) -> None:
        with self._lock:  # several senders share one journal
            self._file.write(line)
            self._file.flush()
            if self.sync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: Path) -> Iterator[Attempt]:
    """Yield the attempts in ``path``, each once.

    An attempt journaled as being sent whose outcome line never follows is yielded, last,
    as ``unknown``. A last line without its newline (the writer was killed mid-line) is
    skipped. Any other bad line is an error.
    """
    yield from parse_journal(journal_text(path), str(path))


def journal_text(path: Path) -> str:
    """The journal file's text, or a :class:`JournalError` saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror}") from None


def parse_journal(text: str, source: str = "<journal>", *, in_flight: bool = True) -> Iterator[Attempt]:
    """The attempts of a journal's text, as :func:`read_journal` reads them.

    ``in_flight=False`` leaves out attempts without an outcome line: for a journal read
    while the writer runs, whose last attempt may still be under way.
    """
    path = source
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    pending: dict[str, Attempt] = {}
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            attempt = _read_line(line, pending)
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(f"{path}:{number}: not a journal line ({type(exc).__name__}: {exc})") from None
        if attempt is not None:
            yield attempt
    if tail.strip():
        try:
            attempt = _read_line(tail, pending)
        except (ValueError, KeyError, TypeError):
            attempt = None
        if attempt is not None:
            yield attempt
    if in_flight:
        yield from pending.values()


def _read_line(line: str, pending: dict[str, Attempt]) -> Attempt | None:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise TypeError("a journal line is a JSON object")
    if data.get("outcome") == SENDING:
        pending[str(data["status"])] = Attempt(
            seq=int(data["seq"]),
            ts=str(data["ts"]),
            user=str(data["user"]),
            status=str(data["status"]),
            code=0,
            latency_ms=0.0,
            error="no outcome journaled: the writer stopped during the attempt",
            outcome=UNKNOWN,
        )
        return None
    attempt = Attempt.from_dict(data)
    pending.pop(attempt.status, None)
    return attempt
