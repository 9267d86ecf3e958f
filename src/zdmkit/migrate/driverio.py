"""Reading and writing with cassandra-driver: paged scans with read-ahead, bounded async writes,
retries and an optional rate limit.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from cassandra import (
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable, Session
from cassandra.cqltypes import ListType, SetType, _CassandraType
from cassandra.protocol import ProtocolHandler, ResultMessage
from cassandra.query import BatchStatement, BatchType, PreparedStatement

log = logging.getLogger("zdmkit.migrate")

RETRYABLE = (OperationTimedOut, ReadTimeout, WriteTimeout, Unavailable, CoordinationFailure, NoHostAvailable)


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


class RateLimiter:
    """Token bucket in rows per second, shared by the threads of one process."""

    def __init__(self, rate: float | None):
        self.rate = rate if rate and rate > 0 else None
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def acquire(self, rows: int) -> None:
        if self.rate is None or rows <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + rows / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


class RequestWindow:
    """The bound on requests in flight, shared by every range of a process."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self._sem = threading.BoundedSemaphore(self.limit)

    def acquire(self) -> None:
        self._sem.acquire()

    def release(self) -> None:
        self._sem.release()


class WriteTracker:
    """Async writes of one unit of work (a token range): waits for them, retries, keeps errors."""

    def __init__(self, session: Session, window: RequestWindow, *, retries: int = 5, backoff: float = 0.2):
        self.session = session
        self.window = window
        self.retries = retries
        self.backoff = backoff
        self.pending = 0
        self.sent = 0
        self.failed = 0
        self.errors: list[str] = []
        self._cond = threading.Condition()

    def submit(self, statement: Any, values: Sequence[Any] | None = None) -> None:
        self.window.acquire()
        with self._cond:
            self.pending += 1
            self.sent += 1
        self._send(statement, values, 0)

    def _send(self, statement: Any, values: Sequence[Any] | None, attempt: int) -> None:
        try:
            future = self.session.execute_async(statement, values)
        except Exception as exc:  # driver refused to send (e.g. shutting down)
            self._finish(exc)
            return
        future.add_callbacks(self._ok, self._failed, errback_args=(statement, values, attempt))

    def _ok(self, _result: Any) -> None:
        self._finish(None)

    def _failed(self, exc: BaseException, statement: Any, values: Sequence[Any] | None, attempt: int) -> None:
        if attempt < self.retries and isinstance(exc, RETRYABLE):
            timer = threading.Timer(self.backoff * 2**attempt, self._send, args=(statement, values, attempt + 1))
            timer.daemon = True
            timer.start()
            return
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self.window.release()
        with self._cond:
            self.pending -= 1
            if exc is not None:
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(describe_error(exc))
            if self.pending == 0:
                self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while self.pending:
                self._cond.wait()


BATCH_BYTES = 4096  # stays under Cassandra's batch_size_warn_threshold (5 KiB by default)


CELL_OVERHEAD = 30  # what the server counts per cell beyond its value (timestamp, TTL, flags, column)


def estimated_size(values: tuple[Any, ...]) -> int:
    """About the size Cassandra counts for the mutation of one statement (batch_size_warn_threshold
    is checked against the mutations' data size, cell metadata included)."""
    size = CELL_OVERHEAD * len(values)
    for value in values:
        if isinstance(value, str | bytes | bytearray):
            size += len(value) + 4
        elif isinstance(value, list | tuple | set | frozenset | dict):
            size += 16 * (len(value) + 1)
        else:
            size += 12
    return size


class Batcher:
    """Groups consecutive writes with the same key into UNLOGGED batches.

    The key is the partition key (one mutation per batch) or the replica set of the rows'
    tokens: rows that all live on the same replicas cost the coordinator no extra hop, and one
    request carries several rows, which is what the client side pays for. Batches stay small
    (``max_statements``, at most 10 partitions before Cassandra warns; about 4 KiB).
    """

    def __init__(self, tracker: WriteTracker, max_statements: int, max_bytes: int = BATCH_BYTES):
        self.tracker = tracker
        self.max = max(1, max_statements)
        self.max_bytes = max_bytes
        self._key: Any = None
        self._items: list[tuple[PreparedStatement, tuple[Any, ...]]] = []
        self._bytes = 0
        self.requests = 0
        self.statements = 0

    def add(self, key: Any, statement: PreparedStatement, values: tuple[Any, ...]) -> None:
        size = estimated_size(values)
        if self._items and (key != self._key or len(self._items) >= self.max or self._bytes + size > self.max_bytes):
            self.flush()
        self._key = key
        self._items.append((statement, values))
        self._bytes += size

    def flush(self) -> None:
        if not self._items:
            return
        self.requests += 1
        self.statements += len(self._items)
        if len(self._items) == 1:
            statement, values = self._items[0]
            self.tracker.submit(statement, values)
        else:
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for statement, values in self._items:
                batch.add(statement, values)
            self.tracker.submit(batch)
        self._items = []
        self._bytes = 0


class ReplicaSets:
    """Which replica set owns a token, from the driver's view of the Target ring."""

    def __init__(self, cluster: Any, keyspace: str):
        token_map = cluster.metadata.token_map
        if token_map is None or not token_map.ring:
            raise ValueError("the driver has no token map for Target")
        self.values = [token.value for token in token_map.ring]
        ids: dict[frozenset[Any], int] = {}
        self.group = []
        for token in token_map.ring:
            replicas = frozenset(str(host.endpoint) for host in token_map.get_replicas(keyspace, token))
            self.group.append(ids.setdefault(replicas, len(ids)))

    def owner(self, token: int) -> int:
        i = bisect_left(self.values, token)
        return self.group[i if i < len(self.values) else 0]


def read_pages(
    session: Session,
    statement: PreparedStatement,
    params: Sequence[Any],
    *,
    fetch_size: int,
    retries: int = 5,
    backoff: float = 0.5,
) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the pages of a query, fetching the next page while the caller works on this one.

    A failed page is re-requested from its paging state, so a retry never repeats rows.
    """
    bound = statement.bind(params)
    bound.fetch_size = fetch_size
    paging_state = None
    attempt = 0
    future = session.execute_async(bound)
    while True:
        try:
            result = future.result()
        except RETRYABLE as exc:
            attempt += 1
            if attempt > retries:
                raise
            log.debug("page read failed (%s), retry %d", describe_error(exc), attempt)
            time.sleep(backoff * 2 ** (attempt - 1))
            future = session.execute_async(bound, paging_state=paging_state)
            continue
        rows = result.current_rows
        more = result.has_more_pages
        if more:
            paging_state = result.paging_state
            future.start_fetching_next_page()
        attempt = 0
        yield rows
        if not more:
            return


def execute_with_retry(
    session: Session, statement: Any, params: Sequence[Any] | None = None, *, retries: int = 5, backoff: float = 0.5
) -> Any:
    for attempt in range(retries + 1):
        try:
            return session.execute(statement, params)
        except RETRYABLE:
            if attempt == retries:
                raise
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


class NullableIntList(_CassandraType):
    """``list<bigint>``/``list<int>`` whose elements may be null.

    WRITETIME() and TTL() of a non-frozen collection or UDT return one element per cell, null
    for a cell without TTL (or a UDT field without a cell). CQL lists never hold nulls otherwise,
    and the driver's list decoder rejects them.
    """

    typename = "zdmkit_nullable_int_list"

    @staticmethod
    def deserialize(byts: bytes, protocol_version: int) -> list[int | None]:
        count = int.from_bytes(byts[0:4], "big", signed=True)
        out: list[int | None] = []
        pos = 4
        for _ in range(count):
            size = int.from_bytes(byts[pos : pos + 4], "big", signed=True)
            pos += 4
            if size < 0:
                out.append(None)
                continue
            out.append(int.from_bytes(byts[pos : pos + size], "big", signed=True))
            pos += size
        return out


def server_order_columns(column_metadata: list[Any]) -> list[Any]:
    """Result columns decoded for copying and comparing (see MigrationProtocolHandler)."""
    patched = []
    for entry in column_metadata:
        ks, table, name, ctype = entry[:4]
        if isinstance(ctype, type):
            if issubclass(ctype, SetType):
                ctype = ListType.apply_parameters(ctype.subtypes)
            elif issubclass(ctype, ListType) and name.lower().startswith(("writetime(", "ttl(")):
                ctype = NullableIntList
        patched.append((ks, table, name, ctype, *entry[4:]))
    return patched


class _MigrationResult(ProtocolHandler.message_types_by_opcode[ResultMessage.opcode]):  # type: ignore[misc]
    def recv_results_metadata(self, f: Any, user_type_map: Any) -> None:
        super().recv_results_metadata(f, user_type_map)
        if self.column_metadata:
            self.column_metadata = server_order_columns(self.column_metadata)


class MigrationProtocolHandler(ProtocolHandler):  # type: ignore[misc,valid-type]
    """The driver's protocol handler, with result rows decoded the way copying needs them.

    * Set columns are decoded as lists, in the server's order. The driver builds a ``SortedSet``
      ordered by Python comparison, which is not Cassandra's order for every type (timeuuid,
      uuid, ...), while ``WRITETIME(set)`` lists element writetimes in the server's order. A set
      and a list have the same wire format, and a list binds to a set parameter.
    * WRITETIME()/TTL() lists may contain nulls (see NullableIntList).

    Sessions of this package use it; both sides of a comparison are decoded alike.
    """

    message_types_by_opcode: ClassVar[dict[int, Any]] = {
        **ProtocolHandler.message_types_by_opcode,
        _MigrationResult.opcode: _MigrationResult,
    }
