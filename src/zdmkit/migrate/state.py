"""Resumable progress: which token ranges of which tables are finished.

The state file is JSON, rewritten atomically (temporary file, fsync, rename) after every
finished range, so a run killed at any moment leaves either the previous or the new state.
A later run with the same file skips the finished ranges. Ranges that were started but not
finished are remembered too: a re-run of such a range may meet its own earlier writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FORMAT = 1


class StateError(Exception):
    pass


class RunState:
    """Finished ranges per table for one kind of job (``copy`` or ``validate``)."""

    def __init__(self, path: str | os.PathLike[str] | None, kind: str, splits: int):
        self.path = Path(path) if path else None
        self.kind = kind
        self.splits = splits
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {"format": FORMAT, "kind": kind, "splits": splits, "tables": {}}
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"state file {self.path} cannot be read: {exc}") from None
        if data.get("format") != FORMAT or "tables" not in data:
            raise StateError(f"state file {self.path} is not a zdmkit migration state file")
        if data.get("kind") != self.kind:
            raise StateError(
                f"state file {self.path} belongs to a {data.get('kind')} run; use another --state-file for {self.kind}"
            )
        if data.get("splits") != self.splits:
            raise StateError(
                f"state file {self.path} was written with --splits {data.get('splits')}; "
                f"resume with the same value or start over with a new --state-file"
            )
        self._data = data

    def _table(self, table: str) -> dict[str, Any]:
        return self._data["tables"].setdefault(table, {"completed": {}, "started": []})

    def completed(self, table: str) -> dict[str, Any]:
        """Finished range ids of a table, each with the stats recorded when it finished."""
        with self._lock:
            return dict(self._data["tables"].get(table, {}).get("completed", {}))

    def was_started(self, table: str, range_id: str) -> bool:
        with self._lock:
            return range_id in self._data["tables"].get(table, {}).get("started", [])

    def mark_started(self, table: str, range_id: str) -> None:
        with self._lock:
            started = self._table(table)["started"]
            if range_id not in started:
                started.append(range_id)
                self._save()

    def mark_done(self, table: str, range_id: str, stats: dict[str, Any] | None = None) -> None:
        with self._lock:
            entry = self._table(table)
            entry["completed"][range_id] = stats or {}
            if range_id in entry["started"]:
                entry["started"].remove(range_id)
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self._data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write_json(self.path, self._data)


def atomic_write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON so that readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
