"""Pure helpers for the status API: query parsing, input limits, timestamps."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

DEFAULT_ENTRIES = 1


class BadInput(Exception):
    """A request the API refuses, with the HTTP status and a one-line reason."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers


def parse_entries(raw: str | None, cap: int) -> int:
    """How many entries ``?entries=`` asks for.

    Like the public lab: missing, not an integer, or below 1 means 1.
    Above ``cap`` means ``cap``, so one request never reads a whole partition.
    """
    if raw is None:
        return DEFAULT_ENTRIES
    try:
        value = int(raw.strip())
    except ValueError:
        return DEFAULT_ENTRIES
    if value < 1:
        return DEFAULT_ENTRIES
    return min(value, cap)


def check_segment(name: str, value: str, max_bytes: int) -> None:
    """Refuse an empty or oversized path segment (``user`` or ``status``)."""
    if value == "":
        raise BadInput(422, f"{name} must not be empty")
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise BadInput(422, f"{name} is {size} bytes long; the limit is {max_bytes} bytes (UTF-8)")


def raw_segments(raw_path: bytes, prefix: bytes = b"/status/") -> list[str]:
    """The segments after ``prefix`` of the path exactly as the client sent it, each percent-decoded.

    Working from the raw path keeps an escaped slash (``%2F``) inside a user or a
    status instead of splitting there. Escapes that do not decode as UTF-8 are
    refused: the server would otherwise turn them into U+FFFD and store something
    other than what was sent.
    """
    path = raw_path.split(b"?", 1)[0]
    if not path.startswith(prefix):
        raise BadInput(404, "Not Found")
    try:
        return [unquote_to_bytes(part).decode("utf-8") for part in path[len(prefix) :].split(b"/")]
    except UnicodeDecodeError:
        raise BadInput(400, "the request path is not valid UTF-8 once percent-decoded") from None


def now_millis() -> dt.datetime:
    """The current UTC time, naive, truncated to what a CQL timestamp keeps (milliseconds)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class MillisClock:
    """Hands out strictly increasing millisecond timestamps.

    ``when`` is part of the primary key: two statuses of one user stamped with the
    same millisecond would be one row, the second silently replacing the first.
    Within one process this clock never repeats itself, so that cannot happen.
    """

    def __init__(self, source: Callable[[], dt.datetime] = now_millis) -> None:
        self._source = source
        self._last: dt.datetime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            now = self._source()
            if self._last is not None and now <= self._last:
                now = self._last + dt.timedelta(milliseconds=1)
            self._last = now
            return now


def format_when(value: dt.datetime) -> str:
    """ISO 8601 with milliseconds, UTC, no offset suffix: ``2022-10-10T14:00:00.000``."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds")


def status_entry(user: str, when: dt.datetime, status: str) -> dict[str, str]:
    """The JSON object the API returns for one status, in the lab's shape."""
    return {"user": user, "when": format_when(when), "status": status}
