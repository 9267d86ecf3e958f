"""The CQL side of the demo application: one session, prepared statements, retries.

Every statement the application sends is idempotent: a write carries its own
``when`` (chosen once, before the first attempt), so sending it again stores the
same row. That is what lets the application retry through a ZDM proxy restart
instead of handing the caller an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from cassandra import (
    ConsistencyLevel,
    CoordinationFailure,
    OperationTimedOut,
    ReadTimeout,
    Unavailable,
    WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    RetryPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import BoundStatement, PreparedStatement, SimpleStatement

from zdmkit.tls import client_context

from .config import Mode, Settings
from .logs import LOGGER_NAME
from .metrics import AppMetrics

log = logging.getLogger(LOGGER_NAME)

TABLE = "user_status"
HEALTH_TIMEOUT = 2.0

# Failures after which the same idempotent statement may simply be sent again.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    NoHostAvailable,
    OperationTimedOut,
    ConnectionException,
    Unavailable,
    ReadTimeout,
    WriteTimeout,
    CoordinationFailure,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
)


class NotConnected(Exception):
    """No CQL session yet (the cluster has not been reached since start)."""


class ClusterError(Exception):
    """A statement failed for good; ``transient`` tells whether trying later may work."""

    def __init__(self, operation: str, cause: BaseException, *, transient: bool) -> None:
        super().__init__(f"{operation} failed: {_one_line(cause)}")
        self.transient = transient


class IdempotentRetryPolicy(RetryPolicy):
    """Retry idempotent statements on timeouts and connection errors, a few times.

    The driver's default policy never retries a timed-out write and, for other
    request errors, ignores whether the statement is idempotent; this one
    retries only what is safe to send twice.
    """

    def __init__(self, max_retries: int = 2) -> None:
        self.max_retries = max_retries

    def _idempotent(self, query: Any) -> bool:
        return query is not None and bool(getattr(query, "is_idempotent", False))

    def on_read_timeout(
        self,
        query: Any,
        consistency: int,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num < self.max_retries and self._idempotent(query):
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_write_timeout(
        self,
        query: Any,
        consistency: int,
        write_type: str,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num < self.max_retries and self._idempotent(query):
            return self.RETRY, consistency
        return self.RETHROW, None

    def on_unavailable(
        self, query: Any, consistency: int, required_replicas: int, alive_replicas: int, retry_num: int
    ) -> tuple[int, int | None]:
        if retry_num == 0:
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None

    def on_request_error(
        self, query: Any, consistency: int, error: Exception, retry_num: int
    ) -> tuple[int, int | None]:
        if retry_num < self.max_retries and self._idempotent(query):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None


def cluster_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for :class:`cassandra.cluster.Cluster` in the configured mode."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.endpoint.local_datacenter if settings.endpoint else None)
        ),
        retry_policy=IdempotentRetryPolicy(),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency_level],
        request_timeout=settings.request_timeout,
    )
    options: dict[str, Any] = {
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
        # Come back quickly after a proxy or node restart.
        "reconnection_policy": ExponentialReconnectionPolicy(base_delay=0.25, max_delay=4.0),
        "connect_timeout": 5,
        "control_connection_timeout": 5.0,
    }
    if settings.protocol_version is not None:
        options["protocol_version"] = settings.protocol_version
    if settings.mode is Mode.ASTRA_DB:
        assert settings.cloud is not None
        options["cloud"] = {"secure_connect_bundle": settings.cloud.secure_connect_bundle}
        options["auth_provider"] = PlainTextAuthProvider(settings.cloud.client_id, settings.cloud.client_secret)
    else:
        assert settings.endpoint is not None
        options["contact_points"] = list(settings.endpoint.contact_points)
        options["port"] = settings.endpoint.port
        if settings.endpoint.username is not None:
            options["auth_provider"] = PlainTextAuthProvider(settings.endpoint.username, settings.endpoint.password)
        tls = settings.endpoint.tls
        if tls is not None:
            options["ssl_context"] = client_context(
                tls.ca_file, tls.cert_file, tls.key_file, verify_hostname=tls.verify_hostname
            )
    return options


def statements(keyspace: str) -> tuple[str, str]:
    """The CQL of the read and the write; ``keyspace`` is a CQL identifier checked by the settings."""
    table = f"{keyspace}.{TABLE}"
    select = f'SELECT "user", "when", "status" FROM {table} WHERE "user" = ? LIMIT ?'  # noqa: S608 - validated identifier
    insert = f'INSERT INTO {table} ("user", "when", "status") VALUES (?, ?, ?)'  # noqa: S608 - validated identifier
    return select, insert


def _await(response: ResponseFuture) -> asyncio.Future:
    """Bridge a driver ResponseFuture (completed on a driver thread) to asyncio."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    response.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(settle, future.set_result, rows),
        lambda exc: loop.call_soon_threadsafe(settle, future.set_exception, exc),
    )
    return future


class Database:
    """Holds the cluster connection and runs the application's statements."""

    def __init__(self, settings: Settings, metrics: AppMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.last_error: str | None = None
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._select: PreparedStatement | None = None
        self._insert: PreparedStatement | None = None
        self.metrics.connected.set(settings.mode.value, value=0)

    @property
    def connected(self) -> bool:
        return self._session is not None

    def connect(self) -> None:
        """Open the session and prepare the statements (blocking)."""
        cluster = Cluster(**cluster_options(self.settings))
        try:
            session = cluster.connect()
            select_cql, insert_cql = statements(self.settings.keyspace)
            select = session.prepare(select_cql)
            insert = session.prepare(insert_cql)
        except BaseException:
            cluster.shutdown()
            raise
        select.is_idempotent = True
        insert.is_idempotent = True
        self._cluster, self._select, self._insert = cluster, select, insert
        self._session = session
        self.last_error = None
        self.metrics.connected.set(self.settings.mode.value, value=1)

    async def keep_connecting(self) -> None:
        """Try to connect until it works, backing off up to 10 s between attempts."""
        delay = 1.0
        while not self.connected:
            try:
                await asyncio.to_thread(self.connect)
            except Exception as exc:  # any failure means "not yet": logged, then retried
                self.last_error = _one_line(exc)
                log.warning(
                    "cannot reach the cluster yet; retrying in %.0f s",
                    delay,
                    extra={
                        "fields": {
                            "event": "connect_failed",
                            "mode": self.settings.mode.value,
                            "error": self.last_error,
                        }
                    },
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                log.info(
                    "connected to the cluster",
                    extra={"fields": {"event": "connected", "settings": self.settings.describe()}},
                )

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None
        self.metrics.connected.set(self.settings.mode.value, value=0)

    async def read_statuses(self, user: str, limit: int) -> list[Any]:
        def statement() -> BoundStatement:
            assert self._select is not None
            return self._select.bind((user, limit))

        return list(await self._run("read", statement))

    async def write_status(self, user: str, when: Any, status: str) -> None:
        def statement() -> BoundStatement:
            assert self._insert is not None
            return self._insert.bind((user, when, status))

        await self._run("write", statement)

    async def ping(self) -> str:
        """The release version of the node (or proxy) answering, without retries."""
        session = self._require_session()
        query = SimpleStatement("SELECT release_version FROM system.local", is_idempotent=True)
        rows = await _await(session.execute_async(query, timeout=HEALTH_TIMEOUT))
        return str(rows[0].release_version) if rows else "unknown"

    def _require_session(self) -> Session:
        if self._session is None:
            raise NotConnected(self.last_error or "connecting")
        return self._session

    async def _run(self, operation: str, statement: Callable[[], BoundStatement]) -> Any:
        """Execute an idempotent statement, re-sending it on transient failures within the retry window."""
        session = self._require_session()
        deadline = time.monotonic() + self.settings.retry_window
        delay = 0.05
        while True:
            bound = statement()
            bound.is_idempotent = True
            try:
                return await _await(session.execute_async(bound))
            except TRANSIENT_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    self.metrics.db_failures.inc(operation)
                    raise ClusterError(operation, exc, transient=True) from exc
                self.metrics.db_retries.inc(operation)
                log.warning(
                    "transient CQL failure; sending the statement again",
                    extra={"fields": {"event": "cql_retry", "operation": operation, "error": _one_line(exc)}},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except Exception as exc:
                self.metrics.db_failures.inc(operation)
                raise ClusterError(operation, exc, transient=False) from exc


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]
