"""Connections to Origin and Target with cassandra-driver.

An Endpoint is plain, picklable data (it travels to Spark executors); ``connect`` turns it into
a driver Cluster and Session. Passwords never appear in ``repr`` or in messages.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from cassandra import AuthenticationFailed, ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.connection import DefaultEndPoint
from cassandra.policies import DCAwareRoundRobinPolicy, RoundRobinPolicy, TokenAwarePolicy
from cassandra.query import tuple_factory

from zdmkit.migrate.driverio import MigrationProtocolHandler
from zdmkit.migrate.schema import PreflightError
from zdmkit.tls import client_context


@dataclass(frozen=True)
class Endpoint:
    role: str  # "Origin" or "Target", used in messages
    contact_points: tuple[str, ...]
    port: int = 9042
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    local_dc: str | None = None
    consistency: str = "LOCAL_QUORUM"
    request_timeout: float = 60.0
    connect_timeout: float = 15.0
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    ssl_verify_hostname: bool = False
    protocol_version: int | None = None  # None: negotiate the highest both sides speak

    def addresses(self) -> list[tuple[str, int]]:
        """Contact points as (host, port); ``host:port`` overrides the default port."""
        result = []
        for entry in self.contact_points:
            host, port = entry, self.port
            if entry.startswith("["):  # [ipv6]:port
                host, _, rest = entry[1:].partition("]")
                if rest.startswith(":"):
                    port = int(rest[1:])
            elif entry.count(":") == 1:
                host, _, text = entry.partition(":")
                port = int(text)
            result.append((host, port))
        return result

    def describe(self) -> str:
        return f"{self.role} ({', '.join(f'{h}:{p}' for h, p in self.addresses())})"


def consistency_level(name: str) -> int:
    try:
        return ConsistencyLevel.name_to_value[name.upper()]
    except KeyError:
        raise PreflightError(
            f"unknown consistency level {name}; use one of {', '.join(sorted(ConsistencyLevel.name_to_value))}"
        ) from None


def _ssl_context(ep: Endpoint) -> ssl.SSLContext | None:
    return client_context(ep.ssl_ca, ep.ssl_cert, ep.ssl_key, verify_hostname=ep.ssl_verify_hostname)


def build_cluster(ep: Endpoint, *, executor_threads: int = 2) -> Cluster:
    policy: Any = DCAwareRoundRobinPolicy(local_dc=ep.local_dc) if ep.local_dc else RoundRobinPolicy()
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(policy),
        consistency_level=consistency_level(ep.consistency),
        request_timeout=ep.request_timeout,
        row_factory=tuple_factory,
    )
    addresses = ep.addresses()
    ports = {p for _, p in addresses}
    kwargs: dict[str, Any] = {}
    if len(ports) == 1:
        kwargs["contact_points"] = [h for h, _ in addresses]
        kwargs["port"] = ports.pop()
    else:
        kwargs["contact_points"] = [DefaultEndPoint(h, p) for h, p in addresses]
    if ep.username:
        kwargs["auth_provider"] = PlainTextAuthProvider(username=ep.username, password=ep.password or "")
    if ep.protocol_version:
        kwargs["protocol_version"] = ep.protocol_version
    context = _ssl_context(ep)
    if context is not None:
        kwargs["ssl_context"] = context
    return Cluster(
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=ep.connect_timeout,
        control_connection_timeout=ep.connect_timeout,
        executor_threads=executor_threads,
        **kwargs,
    )


def explain_connect_error(ep: Endpoint, exc: Exception) -> str:
    """One precise line for a failed connection; never includes the password."""
    errors = getattr(exc, "errors", None) or {}
    for err in errors.values():
        if (
            isinstance(err, AuthenticationFailed)
            or "Authentication" in type(err).__name__
            or "authentication" in str(err).lower()
            or "credentials" in str(err).lower()
        ):
            user = ep.username or "(none)"
            return (
                f"{ep.describe()}: authentication failed for user {user!r}; check the "
                f"--{ep.role.lower()}-username and --{ep.role.lower()}-password "
                f"(or ZDMKIT_{ep.role.upper()}_PASSWORD)"
            )
    if isinstance(exc, AuthenticationFailed):
        return f"{ep.describe()}: authentication failed for user {ep.username!r}"
    detail = "; ".join(f"{host}: {err}" for host, err in errors.items()) or str(exc)
    return f"{ep.describe()}: cannot connect: {detail}"


def connect(ep: Endpoint, *, executor_threads: int = 2) -> tuple[Cluster, Session]:
    """Open a session; connection and authentication failures become a PreflightError."""
    cluster = build_cluster(ep, executor_threads=executor_threads)
    try:
        session = cluster.connect()
        session.client_protocol_handler = MigrationProtocolHandler
    except (NoHostAvailable, AuthenticationFailed, OSError) as exc:
        cluster.shutdown()
        raise PreflightError(explain_connect_error(ep, exc)) from None
    return cluster, session


def release_version(session: Session) -> str:
    row = session.execute("SELECT release_version FROM system.local").one()
    return row[0] if row else ""
