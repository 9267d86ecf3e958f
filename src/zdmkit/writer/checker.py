"""The checker: every write the API acknowledged must be in the cluster.

It reads the writer's journal, reads the writers' partitions from one cluster
(Origin, Target, or either through the proxy), and lists each acknowledged
status that is not there. Attempts that were not acknowledged are reported apart,
by outcome: an ``unknown`` one may or may not have landed, and neither is a loss;
a ``rejected`` or ``not_sent`` one that is stored contradicts the journal (the API
stored what it refused, or the writer recorded a sent request as never sent) and
fails the check like a loss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .journal import NOT_SENT, OUTCOMES, REJECTED, UNKNOWN, Attempt

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


@dataclass
class Report:
    """The outcome of comparing a journal with what a cluster holds."""

    attempts: int = 0
    acknowledged: int = 0
    acknowledged_found: int = 0
    unacknowledged: int = 0
    unacknowledged_found: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    unknown_found: int = 0
    missing: list[Attempt] = field(default_factory=list)
    when_mismatch: list[Attempt] = field(default_factory=list)
    contradicted: list[Attempt] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.contradicted

    def summary(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "acknowledged": self.acknowledged,
            "acknowledged_found": self.acknowledged_found,
            "missing": len(self.missing),
            "when_mismatch": len(self.when_mismatch),
            "unacknowledged": self.unacknowledged,
            "unacknowledged_found": self.unacknowledged_found,
            "rejected": self.outcomes[REJECTED],
            "not_sent": self.outcomes[NOT_SENT],
            "unknown": self.outcomes[UNKNOWN],
            "unknown_found": self.unknown_found,
            "contradicted": len(self.contradicted),
        }


def select_attempts(attempts: Iterable[Attempt], prefix: str | None = None, since: str | None = None) -> list[Attempt]:
    """Keep the attempts whose status starts with ``prefix`` and that were sent at or after ``since``.

    ``since`` compares as text with the journal's ``ts`` (ISO 8601 UTC, ``Z`` suffix).
    """
    chosen = []
    for attempt in attempts:
        if prefix and not attempt.status.startswith(prefix):
            continue
        if since and attempt.ts < since:
            continue
        chosen.append(attempt)
    return chosen


def compare(attempts: Iterable[Attempt], stored: Mapping[str, Mapping[str, str]]) -> Report:
    """Compare attempts with ``stored``: user -> {status: when (ISO, milliseconds)}."""
    report = Report()
    for attempt in attempts:
        report.attempts += 1
        report.outcomes[attempt.outcome] += 1
        found = stored.get(attempt.user, {})
        present = attempt.status in found
        if attempt.acknowledged:
            report.acknowledged += 1
            if not present:
                report.missing.append(attempt)
                continue
            report.acknowledged_found += 1
            if attempt.when and found[attempt.status] != attempt.when:
                report.when_mismatch.append(attempt)
        else:
            report.unacknowledged += 1
            if present:
                report.unacknowledged_found += 1
                if attempt.outcome == UNKNOWN:
                    report.unknown_found += 1
                else:
                    report.contradicted.append(attempt)
    return report


def checked_keyspace(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"keyspace {name!r} is not a valid CQL identifier")
    return name


def read_partitions(session: Any, keyspace: str, users: Iterable[str]) -> dict[str, dict[str, str]]:
    """Read every (status, when) of each user from ``keyspace.user_status`` with a driver session."""
    from zdmkit.demo_app.inputs import format_when

    table = f"{checked_keyspace(keyspace)}.user_status"
    query = session.prepare(f'SELECT "when", "status" FROM {table} WHERE "user" = ?')  # noqa: S608 - checked identifier
    query.fetch_size = 5000
    stored: dict[str, dict[str, str]] = {}
    for user in sorted(set(users)):
        rows = session.execute(query, (user,))
        stored[user] = {row.status: format_when(row.when) for row in rows}
    return stored
