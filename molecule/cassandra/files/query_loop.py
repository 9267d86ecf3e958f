"""Write and read through cassandra-driver without pause until a stop file appears.

Usage: query_loop.py --hosts H1,H2 --user U --password-file F --stop-file S --report R [--progress P]
Writes R (JSON): number of successful and failed requests, the first errors, how many
requests each coordinator served, and when the driver saw each node go down and come back up.
Every node is a contact point, as an application has them.
"""

import argparse
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import HostStateListener


class Timeline(HostStateListener):
    """The driver's view of the nodes, as seconds since the start: '12.3s down 172.30.90.21'."""

    def __init__(self, started):
        self.started = started
        self.events = []

    def _note(self, what, host):
        self.events.append(f"{time.time() - self.started:.1f}s {what} {host.address}")

    def on_up(self, host):
        self._note("up", host)

    def on_down(self, host):
        self._note("down", host)

    def on_add(self, host):
        self._note("added", host)

    def on_remove(self, host):
        self._note("removed", host)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--interval", type=float, default=0.02)
    # The counts so far, rewritten about once a second, so that the scenario can wait for traffic.
    parser.add_argument("--progress", default="")
    args = parser.parse_args()

    with open(args.password_file, encoding="utf-8") as handle:
        password = handle.read().strip()
    profile = ExecutionProfile(consistency_level=ConsistencyLevel.LOCAL_ONE, request_timeout=10)
    cluster = Cluster(
        args.hosts.split(","),
        auth_provider=PlainTextAuthProvider(args.user, password),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    started = time.time()
    timeline = Timeline(started)
    cluster.register_listener(timeline)
    session = cluster.connect()
    insert = session.prepare('INSERT INTO zdmapp.user_status ("user", "when", status) VALUES (?, ?, ?)')
    select = session.prepare('SELECT status FROM zdmapp.user_status WHERE "user" = ? LIMIT 1')

    ok, failed, errors, coordinators = 0, 0, [], Counter()
    shown = time.time()
    while not os.path.exists(args.stop_file) and time.time() - started < args.max_seconds:
        for statement, values in (
            (insert, ["molecule-client", datetime.now(UTC), f"loop-{ok + failed}"]),
            (select, ["molecule-client"]),
        ):
            try:
                result = session.execute(statement, values)
                coordinators[str(result.response_future.coordinator_host)] += 1
                ok += 1
            except Exception as exc:  # every failure counts, whatever its kind
                failed += 1
                if len(errors) < 20:
                    errors.append(f"{time.time() - started:.1f}s {type(exc).__name__}: {exc}")
        if args.progress and time.time() - shown >= 1:
            shown = time.time()
            with open(args.progress + ".tmp", "w", encoding="utf-8") as handle:
                json.dump({"ok": ok, "failed": failed}, handle)
            os.replace(args.progress + ".tmp", args.progress)
        time.sleep(args.interval)
    cluster.shutdown()

    with open(args.report, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "ok": ok,
                "failed": failed,
                "errors": errors,
                "coordinators": dict(coordinators),
                "driver_saw": timeline.events,
                "seconds": round(time.time() - started, 1),
            },
            handle,
        )


if __name__ == "__main__":
    main()
