"""The CQL side of the demo application: one session, prepared statements, retries.

Every statement the application sends is idempotent: a write carries its own
``when`` and its own write timestamp (``USING TIMESTAMP``), both chosen once before
the first attempt, so sending it again stores the very same cell. That is what lets
the driver send it to another host, and the application send it again within its
retry window, through a ZDM proxy restart (or a proxy killed) instead of handing the
caller an error. A POST is still answered only once the write succeeded: a status the
caller saw acknowledged is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
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
    ConstantSpeculativeExecutionPolicy,
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
    """Send a failed statement to the next host, when that is safe.

    Two kinds of failure, told apart by whether the statement may have been applied:

    - *not applied*: ``Unavailable`` (the coordinator found too few replicas alive),
      ``OVERLOADED`` (also what a stopping ZDM proxy answers: "Shutting down, please retry
      on next host") and ``IS_BOOTSTRAPPING``. The coordinator never ran the statement, so
      any statement goes to the next host.
    - *maybe applied*: a read or write timeout, a server error, a connection that broke
      while the statement was in flight (a proxy or node killed). Only an idempotent
      statement goes to the next host; anything else is handed back to the caller.

    The driver's default policy retries a read timeout on the same host, never a write
    timeout, and ignores idempotence for request errors. Retrying on the *next* host is
    what rides through one proxy (or node) going away. ``max_retries`` bounds the retries
    of one execution; the application's retry window (:meth:`Database._run`) bounds the time.
    """

    NOT_APPLIED = (OverloadedErrorMessage, IsBootstrappingErrorMessage)

    def __init__(self, max_retries: int = 3) -> None:
        self.max_retries = max_retries

    @staticmethod
    def _idempotent(query: Any) -> bool:
        return query is not None and bool(getattr(query, "is_idempotent", False))

    def _next_host_if(self, safe: bool, consistency: int, retry_num: int) -> tuple[int, int | None]:
        if safe and retry_num < self.max_retries:
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None

    def on_read_timeout(
        self,
        query: Any,
        consistency: int,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, int | None]:
        return self._next_host_if(self._idempotent(query), consistency, retry_num)

    def on_write_timeout(
        self,
        query: Any,
        consistency: int,
        write_type: str,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        return self._next_host_if(self._idempotent(query), consistency, retry_num)

    def on_unavailable(
        self, query: Any, consistency: int, required_replicas: int, alive_replicas: int, retry_num: int
    ) -> tuple[int, int | None]:
        # Not applied; one other coordinator may see more replicas alive, more would not.
        return self._next_host_if(retry_num == 0, consistency, retry_num)

    def on_request_error(
        self, query: Any, consistency: int, error: Exception, retry_num: int
    ) -> tuple[int, int | None]:
        safe = isinstance(error, self.NOT_APPLIED) or self._idempotent(query)
        return self._next_host_if(safe, consistency, retry_num)


# Seconds between the driver's heartbeats on idle connections (see cluster_options).
HEARTBEAT_INTERVAL_S = 5


def cluster_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for :class:`cassandra.cluster.Cluster` in the configured mode."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.endpoint.local_datacenter if settings.endpoint else None)
        ),
        retry_policy=IdempotentRetryPolicy(),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency_level],
        request_timeout=settings.request_timeout,
        # A statement that has not answered after the delay is also sent to a second host
        # (the driver does this for idempotent statements only): a host that vanished
        # without closing its connections costs the delay, not the request timeout.
        speculative_execution_policy=(
            ConstantSpeculativeExecutionPolicy(delay=settings.speculative_delay, max_attempts=1)
            if settings.speculative_delay > 0
            else None
        ),
    )
    options: dict[str, Any] = {
        "execution_profiles": {EXEC_PROFILE_DEFAULT: profile},
        # Come back quickly after a proxy or node restart.
        "reconnection_policy": ExponentialReconnectionPolicy(base_delay=0.25, max_delay=4.0),
        # The driver learns that an idle connection closed (a proxy restarted) only when it next
        # uses it or at its heartbeat, 30 s by default. Token-aware routing sends all of one
        # user's requests to one host, so connections to the others stay idle: a 5 s heartbeat
        # has them back within seconds of a restart, and a rolling restart need not wait longer.
        "idle_heartbeat_interval": HEARTBEAT_INTERVAL_S,
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
    # The write timestamp is bound too: chosen once per write, so that sending the statement
    # again stores the very same cell (same value, same writetime) on every replica, and on
    # both clusters behind a ZDM proxy, whichever attempt got through.
    insert = f'INSERT INTO {table} ("user", "when", "status") VALUES (?, ?, ?) USING TIMESTAMP ?'  # noqa: S608 - validated identifier
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

    def __init__(
        self,
        settings: Settings,
        metrics: AppMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.last_error: str | None = None
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._select: PreparedStatement | None = None
        self._insert: PreparedStatement | None = None
        self._clock = clock
        self._sleep = sleep
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
        self._require_session()
        assert self._select is not None
        return list(await self._run("read", self._select.bind((user, limit))))

    async def write_status(self, user: str, when: Any, status: str) -> None:
        """Store one status; every attempt sends the same row with the same write timestamp."""
        self._require_session()
        assert self._insert is not None
        await self._run("write", self._insert.bind((user, when, status, time.time_ns() // 1000)))

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

    async def _run(self, operation: str, bound: BoundStatement) -> Any:
        """Execute an idempotent statement, sending it again on transient failures.

        The same bound statement (same values, same write timestamp) is sent each time.
        No attempt starts after ``retry_window`` seconds and none outlives it, so a
        statement spends at most ``max(request_timeout, retry_window)`` seconds here.
        """
        session = self._require_session()
        bound.is_idempotent = True
        deadline = self._clock() + self.settings.retry_window
        timeout = self.settings.request_timeout
        delay = 0.05
        while True:
            try:
                return await _await(session.execute_async(bound, timeout=timeout))
            except TRANSIENT_ERRORS as exc:
                if self._clock() + delay >= deadline:
                    self.metrics.db_failures.inc(operation)
                    raise ClusterError(operation, exc, transient=True) from exc
                self.metrics.db_retries.inc(operation)
                log.warning(
                    "transient CQL failure; sending the statement again",
                    extra={"fields": {"event": "cql_retry", "operation": operation, "error": _one_line(exc)}},
                )
                await self._sleep(delay)
                delay = min(delay * 2, 1.0)
                timeout = min(self.settings.request_timeout, max(deadline - self._clock(), 0.001))
            except Exception as exc:
                self.metrics.db_failures.inc(operation)
                raise ClusterError(operation, exc, transient=False) from exc


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]
