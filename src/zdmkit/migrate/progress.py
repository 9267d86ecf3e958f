"""Progress reporting: a bar with rows/s and ETA on a terminal, periodic log lines otherwise.

The ETA is extrapolated from the share of token ranges finished (ranges hold similar amounts
of data with a random partitioner), not from a row estimate.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("zdmkit.migrate")


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(
        self,
        label: str,
        total_ranges: int,
        *,
        mode: str = "auto",
        stream: TextIO | None = None,
        interval: float = 10.0,
        done_ranges: int = 0,
    ):
        self.label = label
        self.total = max(total_ranges, 1)
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "log"
        self.mode = mode
        self.interval = interval if mode == "log" else 0.25
        self.resumed = done_ranges
        self.done = done_ranges
        self.rows = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    def advance(self, rows: int = 0, ranges: int = 0) -> None:
        with self._lock:
            self.rows += rows
            self.done += ranges
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._emit(now)

    def _line(self, now: float) -> tuple[str, float]:
        elapsed = max(now - self.started, 1e-6)
        rate = self.rows / elapsed
        fraction = self.done / self.total
        fresh = self.done - self.resumed
        eta = elapsed * (self.total - self.done) / fresh if fresh > 0 else None
        text = (
            f"{self.label}: {self.done}/{self.total} ranges, {self.rows:,} rows, {rate:,.0f} rows/s, "
            f"elapsed {_clock(elapsed)}, ETA {_clock(eta) if eta is not None else '?'}"
        )
        return text, fraction

    def _emit(self, now: float) -> None:
        if self.mode == "none":
            return
        text, fraction = self._line(now)
        if self.mode == "bar":
            width = 30
            filled = int(width * fraction)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {fraction:6.1%} {text}\x1b[K")
            self.stream.flush()
        else:
            log.info("%s", text)

    def finish(self) -> None:
        with self._lock:
            self._emit(time.monotonic())
            if self.mode == "bar":
                self.stream.write("\n")
                self.stream.flush()
