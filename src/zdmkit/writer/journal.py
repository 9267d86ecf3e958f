"""The writer's journal: one JSON line per write attempt, appended as it happens.

A line records what was sent and what came back, so the checker can later tell
an acknowledged write (2xx) from one the caller knows failed::

    {"seq": 7, "ts": "2024-05-01T10:00:00.350Z", "user": "writer",
     "status": "ModeProxy_10-00-00_k3v9_000007", "code": 200, "latency_ms": 4.2,
     "when": "2024-05-01T10:00:00.351", "error": null}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any


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

    @property
    def acknowledged(self) -> bool:
        """The API answered 2xx: the write is promised to be stored."""
        return 200 <= self.code < 300

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

    def append(self, attempt: Attempt) -> None:
        self._file.write(attempt.to_line())
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
    """Yield the attempts in ``path``.

    A last line without its newline (the writer was killed mid-line) is skipped:
    that attempt's outcome was never known to the caller. Any other bad line is an error.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror}") from None
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            yield Attempt.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise JournalError(f"{path}:{number}: not a journal line ({type(exc).__name__}: {exc})") from None
    if tail.strip():
        try:
            yield Attempt.from_dict(json.loads(tail))
        except (ValueError, KeyError, TypeError):
            return
