"""The demo application's retries and its systemd side, without a cluster.

What a retry decides is tested here against the policy and the retry loop directly;
that the writes really ride through a restart is proven against a real Cassandra and
the real service in the ``demo_app`` Molecule scenario.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from cassandra import OperationTimedOut, WriteTimeout
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionException
from cassandra.policies import ConstantSpeculativeExecutionPolicy, NoSpeculativeExecutionPolicy
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage, ServerError

from zdmkit.demo_app.config import build_settings
from zdmkit.demo_app.db import ClusterError, Database, IdempotentRetryPolicy, cluster_options
from zdmkit.demo_app.metrics import AppMetrics
from zdmkit.demo_app.serving import ActivationError, inherited_sockets, notify

BASE = {"mode": "ZDM_PROXY", "proxy": {"contact_points": ["p1", "p2", "p3"]}}


class _Statement:
    def __init__(self, idempotent: bool) -> None:
        self.is_idempotent = idempotent


YES, NO = _Statement(True), _Statement(False)
POLICY = IdempotentRetryPolicy(max_retries=3)
NEXT, RETHROW = (POLICY.RETRY_NEXT_HOST, 6), (POLICY.RETHROW, None)


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        # Maybe applied: only an idempotent statement goes again, and to the next host.
        (POLICY.on_write_timeout(YES, 6, "SIMPLE", 2, 1, 0), NEXT),
        (POLICY.on_write_timeout(NO, 6, "SIMPLE", 2, 1, 0), RETHROW),
        (POLICY.on_read_timeout(YES, 6, 2, 1, False, 0), NEXT),
        (POLICY.on_read_timeout(NO, 6, 2, 1, False, 0), RETHROW),
        (POLICY.on_request_error(YES, 6, ConnectionException("reset"), 1), NEXT),
        (POLICY.on_request_error(NO, 6, ConnectionException("reset"), 0), RETHROW),
        (POLICY.on_request_error(YES, 6, ServerError(0, "boom", {}), 0), NEXT),
        (POLICY.on_request_error(NO, 6, ServerError(0, "boom", {}), 0), RETHROW),
        (POLICY.on_request_error(None, 6, ConnectionException("reset"), 0), RETHROW),
        # Not applied (a stopping proxy answers OVERLOADED): any statement goes to the next host.
        (
            POLICY.on_request_error(
                NO, 6, OverloadedErrorMessage(0, "Shutting down, please retry on next host", {}), 0
            ),
            NEXT,
        ),
        (POLICY.on_request_error(NO, 6, IsBootstrappingErrorMessage(0, "bootstrapping", {}), 2), NEXT),
        (POLICY.on_unavailable(NO, 6, 2, 1, 0), NEXT),
        (POLICY.on_unavailable(YES, 6, 2, 1, 1), RETHROW),
        # Bounded: never more than max_retries within one execution.
        (POLICY.on_write_timeout(YES, 6, "SIMPLE", 2, 1, 3), RETHROW),
        (POLICY.on_request_error(NO, 6, OverloadedErrorMessage(0, "overloaded", {}), 3), RETHROW),
    ],
)
def test_retry_policy_goes_to_the_next_host_only_when_safe(decision, expected):
    assert decision == expected


def test_speculative_execution_follows_its_setting():
    profile = next(iter(cluster_options(build_settings(BASE, {}, "x"))["execution_profiles"].values()))
    assert isinstance(profile.retry_policy, IdempotentRetryPolicy)
    assert isinstance(profile.speculative_execution_policy, ConstantSpeculativeExecutionPolicy)
    assert profile.speculative_execution_policy.delay == 0.5
    off = cluster_options(build_settings({**BASE, "speculative_delay_seconds": 0}, {}, "x"))
    assert isinstance(
        next(iter(off["execution_profiles"].values())).speculative_execution_policy, NoSpeculativeExecutionPolicy
    )


class _Future:
    """A driver ResponseFuture that has already settled."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def add_callbacks(self, callback, errback) -> None:
        if isinstance(self.outcome, BaseException):
            errback(self.outcome)
        else:
            callback(self.outcome)


class _Session:
    """Answers each execute_async with the next scripted outcome, recording what was sent."""

    def __init__(self, outcomes: list[Any], clock: _Clock, cost: float = 0.0) -> None:
        self.outcomes = outcomes
        self.clock = clock
        self.cost = cost
        self.sent: list[tuple[Any, float]] = []

    def execute_async(self, statement: Any, timeout: float) -> _Future:
        self.sent.append((statement, timeout))
        self.clock.now += min(self.cost, timeout)
        return _Future(self.outcomes.pop(0) if self.outcomes else ["row"])


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _database(window: float, outcomes: list[Any], cost: float = 0.0) -> tuple[Database, _Session]:
    settings = build_settings({**BASE, "retry_window_seconds": window, "request_timeout_seconds": 10}, {}, "x")
    clock = _Clock()
    database = Database(settings, AppMetrics(), clock=clock, sleep=clock.sleep)
    session = _Session(outcomes, clock, cost)
    database._session = session  # type: ignore[assignment]
    return database, session


class _Bound:
    is_idempotent = False


def test_transient_failures_resend_the_same_statement_until_it_succeeds():
    timeout = OperationTimedOut({"p1": "timed out"})
    database, session = _database(30, [NoHostAvailable("none", {}), WriteTimeout("wt", write_type=0), timeout])
    statement = _Bound()
    assert asyncio.run(database._run("write", statement)) == ["row"]
    assert [sent for sent, _ in session.sent] == [statement] * 4  # same values, same write timestamp
    assert statement.is_idempotent
    assert database.metrics.db_retries.value("write") == 3


def test_the_retry_window_bounds_the_time_a_statement_may_take():
    # Every attempt times out after its full timeout: 10 s, then what is left of the 15 s window.
    database, session = _database(15, [OperationTimedOut({})] * 10, cost=10.0)
    started = session.clock.now
    with pytest.raises(ClusterError) as raised:
        asyncio.run(database._run("write", _Bound()))
    assert raised.value.transient
    assert session.clock.now - started <= 15
    assert session.sent[0][1] == 10
    assert all(timeout <= 15 - 10 for _, timeout in session.sent[1:])


def test_a_zero_window_sends_once_and_a_permanent_error_is_not_retried():
    database, session = _database(0, [OperationTimedOut({})])
    with pytest.raises(ClusterError, match="write failed"):
        asyncio.run(database._run("write", _Bound()))
    assert len(session.sent) == 1
    database, session = _database(30, [ValueError("bad value")])
    with pytest.raises(ClusterError) as raised:
        asyncio.run(database._run("read", _Bound()))
    assert not raised.value.transient
    assert len(session.sent) == 1


def test_write_status_binds_one_write_timestamp_for_every_attempt():
    database, session = _database(30, [WriteTimeout("wt", write_type=0)])

    class _Insert:
        def bind(self, values):
            self.values = values
            return _Bound()

    insert = _Insert()
    database._insert = insert  # type: ignore[assignment]
    asyncio.run(database.write_status("eva", "when", "Online"))
    user, when, status, timestamp = insert.values
    assert (user, when, status) == ("eva", "when", "Online")
    assert isinstance(timestamp, int) and timestamp > 1_600_000_000_000_000  # microseconds
    assert session.sent[0][0] is session.sent[1][0]


def test_inherited_sockets_follow_the_listen_fds_protocol():
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"}
        (sock,) = inherited_sockets(env, first_fd=listener.fileno())
        assert sock.getsockname() == listener.getsockname()
        assert env == {}  # not handed on to child processes
        sock.detach()
        assert inherited_sockets({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, first_fd=listener.fileno()) == []
        assert inherited_sockets({}) == []
        with pytest.raises(ActivationError, match="LISTEN_FDS"):
            inherited_sockets({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "x"})
    finally:
        listener.close()


def test_an_inherited_socket_that_is_not_listening_is_refused():
    plain = socket.socket()
    try:
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
        with pytest.raises(ActivationError, match="not a listening stream socket"):
            inherited_sockets(env, first_fd=plain.fileno())
    finally:
        plain.close()


def test_notify_sends_the_state_to_systemd(tmp_path: Path):
    path = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    try:
        assert notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert receiver.recv(100) == b"READY=1"
    finally:
        receiver.close()
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_the_role_and_the_application_agree_on_the_graceful_stop():
    import yaml

    from zdmkit.demo_app.__main__ import GRACEFUL_STOP_SECONDS

    role_vars = yaml.safe_load((Path(__file__).parents[2] / "roles/demo_app/vars/main.yml").read_text())
    assert role_vars["__demo_app_stop_seconds"] == GRACEFUL_STOP_SECONDS


def test_idle_connections_are_checked_often_enough_to_follow_a_rolling_restart():
    # A closed connection the driver does not use shows at its next heartbeat: seconds, not 30.
    options = cluster_options(build_settings(BASE, {}, "x"))
    assert options["idle_heartbeat_interval"] <= 5
    assert options["reconnection_policy"].max_delay <= 5
