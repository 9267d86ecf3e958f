"""Command line of the traffic writer and its checker.

    zdmkit-writer run   --url http://127.0.0.1:8000 --rate 20 --duration 60 \\
                        --prefix ModeProxy_ --journal writes.jsonl
    zdmkit-writer serve --url http://10.0.0.5:8000 --rate 0.05 \\
                        --prefix-file /etc/zdmkit/writer-prefix --journal /var/lib/zdmkit-writer/journal.jsonl
    zdmkit-writer check --journal writes.jsonl --contact-points 10.0.0.2 --username cassandra

``run`` stops by itself (after ``--duration`` seconds or ``--count`` attempts);
``serve`` runs until stopped (SIGTERM) unless given limits, re-reading the prefix file
as it goes. ``check`` exits 1 when an acknowledged write is missing from the cluster (or a write
journaled as rejected or never sent is stored).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .journal import Journal, JournalError, read_journal
from .traffic import Counters, PrefixFile, WriterOptions, run_writer, serve_metrics

PASSWORD_ENV = "ZDMKIT_CHECK_PASSWORD"  # noqa: S105 - the name of a variable, not a password
EXIT_MISSING = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zdmkit-writer", description="Status traffic writer and loss checker.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_writer_options(p: argparse.ArgumentParser, rate: float) -> None:
        p.add_argument("--url", required=True, help="base URL of the demo application")
        p.add_argument("--user", default="writer", help="user whose status is written (default: writer)")
        p.add_argument("--rate", type=float, default=rate, help=f"writes per second (default: {rate:g})")
        p.add_argument("--journal", type=Path, required=True, help="JSON-lines file every attempt is appended to")
        p.add_argument("--fsync", action="store_true", help="fsync the journal after every line")
        p.add_argument("--state-file", type=Path, help="JSON file rewritten with the counters every second")
        p.add_argument("--metrics-address", default="127.0.0.1", help="address of the /metrics endpoint")
        p.add_argument("--metrics-port", type=int, default=0, help="port of the /metrics endpoint (0: none)")
        p.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            help="seconds one attempt may take, connecting included (default: 60; longer than an app restart)",
        )

    run = sub.add_parser("run", help="write for a bounded time, then stop")
    add_writer_options(run, rate=20.0)
    run.add_argument("--prefix", default="ModeCassandra_", help="status prefix, e.g. ModeProxy_")
    run.add_argument("--duration", type=float, default=60.0, help="seconds to write for (default: 60)")
    run.add_argument("--count", type=int, default=0, help="stop after this many attempts (default: rate x duration)")
    run.add_argument("--concurrency", type=int, default=1, help="senders sharing the rate (default: 1)")

    serve = sub.add_parser("serve", help="write until stopped, following a prefix file")
    add_writer_options(serve, rate=0.05)
    serve.add_argument("--prefix-file", type=Path, required=True, help="file holding the current phase prefix")
    serve.add_argument("--prefix", default="ModeCassandra_", help="prefix while the file is missing or blank")
    serve.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: never)")
    serve.add_argument("--count", type=int, default=0, help="stop after this many attempts (0: never)")

    check = sub.add_parser("check", help="list acknowledged writes missing from a cluster")
    check.add_argument("--journal", type=Path, required=True)
    check.add_argument("--contact-points", help="comma-separated addresses of the cluster (or the proxy)")
    check.add_argument("--port", type=int, default=9042)
    check.add_argument("--username")
    check.add_argument("--password", help=f"password (better: set {PASSWORD_ENV})")
    check.add_argument("--local-datacenter")
    check.add_argument(
        "--secure-connect-bundle", help="Astra DB bundle; --username/--password are the client id/secret"
    )
    check.add_argument("--ssl-ca", help="CA (PEM) the nodes' certificates must chain to; turns TLS on")
    check.add_argument("--ssl-cert", help="client certificate (PEM) for clusters that ask for one")
    check.add_argument("--ssl-key", help="the client certificate's unencrypted key (PEM)")
    check.add_argument("--keyspace", default="zdmapp")
    check.add_argument("--consistency-level", default="LOCAL_QUORUM")
    check.add_argument("--prefix", help="only attempts whose status starts with this prefix")
    check.add_argument("--since", help="only attempts sent at or after this ISO UTC time (2024-05-01T10:00:00Z)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--show", type=int, default=20, help="missing writes to list (default: 20)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check":
        return check(args)
    return write(args)


def _limits(args: argparse.Namespace) -> tuple[float, int]:
    if args.rate <= 0:
        raise SystemExit("zdmkit-writer: --rate must be positive")
    if args.timeout <= 0:
        raise SystemExit("zdmkit-writer: --timeout must be positive")
    if getattr(args, "concurrency", 1) < 1:
        raise SystemExit("zdmkit-writer: --concurrency must be at least 1")
    if args.command == "run":
        if args.duration <= 0:
            raise SystemExit("zdmkit-writer: run needs a positive --duration; use serve to write without end")
        count = args.count or max(1, int(args.rate * args.duration))
        return args.duration, count
    return args.duration, args.count


def write(args: argparse.Namespace) -> int:
    duration, count = _limits(args)
    if args.command == "serve":
        prefix = PrefixFile(args.prefix_file, args.prefix)
    else:
        fixed = args.prefix

        def prefix() -> str:
            return fixed

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    counters = Counters(prefix=prefix())
    server = serve_metrics(args.metrics_address, args.metrics_port, counters) if args.metrics_port else None
    options = WriterOptions(
        url=args.url,
        user=args.user,
        rate=args.rate,
        duration=duration,
        count=count,
        timeout=args.timeout,
        state_file=args.state_file,
        concurrency=getattr(args, "concurrency", 1),
    )
    try:
        with Journal(args.journal, sync=args.fsync) as journal:
            run_writer(options, prefix, journal, counters, stop)
    finally:
        if server is not None:
            server.shutdown()
    print(json.dumps(counters.snapshot()), flush=True)
    return 0


def check(args: argparse.Namespace) -> int:
    from .checker import compare, read_partitions, select_attempts

    try:
        attempts = select_attempts(read_journal(args.journal), prefix=args.prefix, since=args.since)
    except JournalError as exc:
        print(f"zdmkit-writer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    password = args.password or os.environ.get(PASSWORD_ENV)
    try:
        session, cluster = _connect(args, password)
    except (ValueError, SystemExit) as exc:
        print(f"zdmkit-writer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        stored = read_partitions(session, args.keyspace, (a.user for a in attempts))
    finally:
        cluster.shutdown()
    report = compare(attempts, stored)
    if args.json:
        print(
            json.dumps(
                {
                    **report.summary(),
                    "missing_statuses": [a.status for a in report.missing],
                    "contradicted_statuses": [a.status for a in report.contradicted],
                },
                indent=2,
            )
        )
    else:
        summary = report.summary()
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
        for attempt in report.missing[: args.show]:
            print(f"MISSING {attempt.ts} user={attempt.user} status={attempt.status} code={attempt.code}")
        if len(report.missing) > args.show:
            print(f"... and {len(report.missing) - args.show} more")
        for attempt in report.contradicted[: args.show]:
            print(f"STORED BUT {attempt.outcome.upper()} {attempt.ts} user={attempt.user} status={attempt.status}")
    return 0 if report.ok else EXIT_MISSING


def _connect(args: argparse.Namespace, password: str | None) -> tuple[Any, Any]:
    from cassandra.cluster import Cluster

    from zdmkit.demo_app.config import CONSISTENCY_LEVELS, CloudBundle, Endpoint, Mode, Settings, TlsSettings
    from zdmkit.demo_app.db import cluster_options

    level = args.consistency_level.upper()
    if level not in CONSISTENCY_LEVELS:
        raise ValueError(f"--consistency-level must be one of {', '.join(CONSISTENCY_LEVELS)}")
    if args.secure_connect_bundle:
        if not (args.username and password):
            raise ValueError(f"--secure-connect-bundle needs --username and --password (or {PASSWORD_ENV})")
        settings = Settings(
            mode=Mode.ASTRA_DB,
            endpoint=None,
            cloud=CloudBundle(args.secure_connect_bundle, args.username, password),
            consistency_level=level,
        )
    else:
        points = tuple(p.strip() for p in (args.contact_points or "").split(",") if p.strip())
        if not points:
            raise ValueError("give --contact-points or --secure-connect-bundle")
        if args.username and not password:
            raise ValueError(f"--username needs --password (or {PASSWORD_ENV})")
        tls = None
        if args.ssl_ca or args.ssl_cert:
            if bool(args.ssl_cert) != bool(args.ssl_key):
                raise ValueError("--ssl-cert and --ssl-key go together")
            tls = TlsSettings(ca_file=args.ssl_ca, cert_file=args.ssl_cert, key_file=args.ssl_key)
        settings = Settings(
            mode=Mode.TARGET,
            endpoint=Endpoint(points, args.port, args.username, password, args.local_datacenter, tls),
            cloud=None,
            consistency_level=level,
        )
    cluster = Cluster(**cluster_options(settings))
    try:
        return cluster.connect(), cluster
    except Exception as exc:
        cluster.shutdown()
        raise ValueError(f"cannot connect to the cluster: {type(exc).__name__}: {exc}") from None
