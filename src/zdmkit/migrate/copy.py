"""Copy one token range of one table from Origin to Target, cells with their writetime and TTL."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from cassandra.cluster import Session

from zdmkit.migrate.driverio import (
    Batcher,
    RateLimiter,
    ReplicaSets,
    RequestWindow,
    WriteTracker,
    describe_error,
    execute_with_retry,
    read_pages,
)
from zdmkit.migrate.ranges import TokenRange
from zdmkit.migrate.schema import TableSpec
from zdmkit.migrate.statements import UNSET, UPDATE_ROW, UPDATE_STATIC, CopyPlan, ValidatePlan

log = logging.getLogger("zdmkit.migrate")


@dataclass(frozen=True)
class CopyOptions:
    fetch_size: int = 1000
    batch_size: int = 10  # statements per UNLOGGED batch (Cassandra warns above 10 partitions)
    batch_mode: str = "replica"  # replica | partition | none
    retries: int = 5
    # writetime for rows without any cell (primary key only); set once per run
    fallback_timestamp: int = field(default_factory=lambda: int(time.time() * 1_000_000))


@dataclass
class RangeOutcome:
    table: str
    range_id: str
    rows: int = 0
    writes: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "writes": self.writes, "seconds": round(self.seconds, 3), **self.extra}


class TableCopier:
    """Prepared statements of one table on one pair of sessions; ``copy_range`` may run in threads."""

    def __init__(
        self,
        origin: Session,
        target: Session,
        spec: TableSpec,
        options: CopyOptions,
        *,
        window: RequestWindow,
        limiter: RateLimiter | None = None,
    ):
        self.origin = origin
        self.target = target
        self.spec = spec
        self.options = options
        self.window = window
        self.limiter = limiter or RateLimiter(None)
        self.plan = CopyPlan(spec)
        self.replicas: ReplicaSets | None = None
        if options.batch_mode == "replica" and options.batch_size > 1:
            try:
                self.replicas = ReplicaSets(target.cluster, spec.target_keyspace or spec.keyspace)
            except Exception as exc:  # no token map: batch by partition instead
                log.warning("%s: batching by partition (%s)", spec.key, describe_error(exc))
        self.select = origin.prepare(self.plan.select_range_with_token if self.replicas else self.plan.select_range)
        self.statements = {name: target.prepare(cql) for name, cql in self.plan.templates.items()}
        for stmt in self.statements.values():
            stmt.is_idempotent = not self.plan.has_lists
        self._careful_select: Any = None

    def copy_range(self, rng: TokenRange, *, careful: bool = False) -> RangeOutcome:
        """Copy the rows whose token is in ``rng``; ``careful`` when the range was interrupted before
        (lists already written are then left alone instead of being appended to again)."""
        outcome = RangeOutcome(self.spec.key, rng.id)
        started = time.monotonic()
        tracker = WriteTracker(self.target, self.window, retries=self.options.retries)
        batch_size = self.options.batch_size if self.options.batch_mode != "none" else 1
        batcher = Batcher(tracker, batch_size)
        replicas = self.replicas
        token_index = self.plan.token_index
        plan = self.plan
        statements = self.statements
        fallback = self.options.fallback_timestamp
        pk_width = plan.pk_width
        last_pk: Any = None
        try:
            for page in read_pages(
                self.origin,
                self.select,
                (rng.start, rng.end),
                fetch_size=self.options.fetch_size,
                retries=self.options.retries,
            ):
                self.limiter.acquire(len(page))
                for row in page:
                    pk = row[:pk_width]
                    first_of_partition = pk != last_pk
                    last_pk = pk
                    writes = plan.writes_for_row(row, fallback_timestamp=fallback, with_static=first_of_partition)
                    if careful and plan.has_lists:
                        writes = self._drop_written_lists(row, writes)
                    group = replicas.owner(row[token_index]) if replicas is not None else pk
                    for name, values in writes:
                        batcher.add(group, statements[name], values)
                    outcome.rows += 1
                    outcome.writes += len(writes)
            batcher.flush()
        except Exception as exc:
            outcome.error = f"reading Origin: {describe_error(exc)}"
        finally:
            batcher.flush()
            tracker.wait()
        outcome.requests = batcher.requests
        if tracker.failed and outcome.error is None:
            outcome.error = f"{tracker.failed} write(s) to Target failed: {'; '.join(tracker.errors)}"
        outcome.seconds = time.monotonic() - started
        return outcome

    def _drop_written_lists(self, row: tuple[Any, ...], writes: list[tuple[str, tuple[Any, ...]]]) -> list:
        """Leave out list assignments whose list is already on Target (a re-run would append it twice)."""
        if self._careful_select is None:
            vplan = ValidatePlan(self.spec, side="target")
            self._careful_select = (vplan, self.target.prepare(vplan.select_key))
        vplan, select = self._careful_select
        key = tuple(row[: self.plan.key_width])
        if self.plan.is_static_only(row):
            return writes
        current = execute_with_retry(self.target, select, key).one()
        if current is None:
            return writes
        target_values = dict(zip(vplan.value_names, current[vplan.value_start :], strict=False))
        result = []
        for name, values in writes:
            if name in (UPDATE_ROW, UPDATE_STATIC):
                layout, width = self.plan.multi_layout[name]
                values = list(values)
                for col, vi, first in layout:
                    if (
                        col.kind == "list"
                        and values[2 + first] is not UNSET
                        and list(target_values.get(col.name) or []) == list(row[vi])
                    ):
                        values[2 + first] = UNSET
                if all(v is UNSET for v in values[2 : 2 + width]):
                    continue
                values = tuple(values)
            result.append((name, values))
        return result
