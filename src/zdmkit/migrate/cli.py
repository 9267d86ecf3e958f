"""``python -m zdmkit.migrate``: copy, validate and preflight-check data between two clusters.

  preflight   connect to both clusters and check that Target can receive the tables
  copy        copy every row, each cell with its writetime and TTL (resumable with --state-file)
  validate    compare every column of every row; --autocorrect missing,mismatch repairs Target

Engines: builtin (cassandra-driver, here), spark (the same tasks on Spark), dsbulk (DSBulk
unload/load, copy only), cdm (Cassandra Data Migrator's Migrate and DiffData jobs on Spark) and
dsbulk-migrator (DSBulk Migrator's migrate-live, copy only). Whatever the engine, the reports
have the same form. ``preflight --engine sstables`` checks a copy that streams Origin's SSTables
with sstableloader (also the release series both clusters must share); that copy runs on Origin's
nodes, so `playbooks/phase2.yml` drives it, not this command.

Exit codes: 0 everything copied / no differences; 1 differences found, or ranges failed (a
copy re-run with the same --state-file resumes); 2 bad input, refused before any data moved.
Passwords come from --passwords-stdin (a JSON object on standard input: what the playbooks use),
the environment (ZDMKIT_ORIGIN_PASSWORD, ZDMKIT_TARGET_PASSWORD) or --origin-password /
--target-password (visible in the process list); they are never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace

from zdmkit.artifacts.jars import spark_submit
from zdmkit.migrate import sparkmaster
from zdmkit.migrate.cdm import CdmOptions
from zdmkit.migrate.cdm import check_input as cdm_problems
from zdmkit.migrate.connection import Endpoint
from zdmkit.migrate.copy import CopyOptions
from zdmkit.migrate.dsbulk_migrator import MigratorOptions
from zdmkit.migrate.dsbulk_migrator import check_input as migrator_problems
from zdmkit.migrate.engine import EXIT_BAD_INPUT, JobConfig, preflight, run_job
from zdmkit.migrate.report import copy_summary, validation_summary, write_report
from zdmkit.migrate.schema import PreflightError
from zdmkit.migrate.validate import AUTOCORRECT_KINDS, ValidateOptions

log = logging.getLogger("zdmkit.migrate")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("--rate must be > 0 (rows per second); leave it out for no limit")
    return value


def _autocorrect(text: str) -> frozenset[str]:
    kinds = frozenset(_csv(text))
    unknown = kinds - AUTOCORRECT_KINDS
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"--autocorrect takes a comma-separated list of {', '.join(sorted(AUTOCORRECT_KINDS))}; got {text!r}"
        )
    return kinds


def _conf_pair(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"--spark-conf takes key=value, got {text!r}")
    return key, value


def _add_endpoint(parser: argparse.ArgumentParser, role: str) -> None:
    g = parser.add_argument_group(f"{role} cluster")
    p = f"--{role.lower()}"
    g.add_argument(
        f"{p}-contact-points",
        required=True,
        type=_csv,
        metavar="HOST[:PORT],...",
        help="comma-separated contact points; host:port overrides the port",
    )
    g.add_argument(f"{p}-port", type=int, default=9042)
    g.add_argument(f"{p}-username", default=os.environ.get(f"ZDMKIT_{role.upper()}_USERNAME"))
    g.add_argument(
        f"{p}-password", default=None, help=f"prefer the ZDMKIT_{role.upper()}_PASSWORD environment variable"
    )
    g.add_argument(f"{p}-local-dc", default=None, help="local datacenter (default: any)")
    g.add_argument(f"{p}-consistency", default="LOCAL_QUORUM")
    g.add_argument(f"{p}-ssl-ca", default=None, help="CA bundle (PEM) to verify the nodes' certificates")
    g.add_argument(f"{p}-ssl-cert", default=None, help="client certificate (PEM) for mutual TLS")
    g.add_argument(f"{p}-ssl-key", default=None, help="client key (PEM) for mutual TLS")
    g.add_argument(f"{p}-ssl-verify-hostname", action="store_true")


def _add_common(parser: argparse.ArgumentParser) -> None:
    _add_endpoint(parser, "Origin")
    _add_endpoint(parser, "Target")
    parser.add_argument(
        "--passwords-stdin",
        action="store_true",
        help='read {"origin": "...", "target": "..."} (JSON) from standard input: keeps passwords out of the '
        "process list and the environment",
    )
    g = parser.add_argument_group("selection and tuning")
    g.add_argument("--keyspaces", required=True, type=_csv, help="comma-separated keyspaces")
    g.add_argument("--tables", type=_csv, default=[], help="comma-separated keyspace.table (or table) to restrict to")
    g.add_argument(
        "--keyspace-map",
        type=_csv,
        default=[],
        metavar="ORIGIN=TARGET,...",
        help="Target keyspaces named differently from Origin's",
    )
    g.add_argument("--splits", type=_positive_int, default=256, help="token ranges per table (default 256)")
    g.add_argument("--parallel", type=_positive_int, default=4, help="ranges worked on at once per process")
    g.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="worker processes for the builtin engine (one range each); more than 1 uses more cores",
    )
    g.add_argument("--concurrency", type=_positive_int, default=256, help="requests in flight per process")
    g.add_argument("--rate", type=_rate, default=None, help="limit in rows read per second (whole job)")
    g.add_argument("--fetch-size", type=_positive_int, default=None, help="rows per page when scanning")
    g.add_argument("--retries", type=int, default=5, help="retries of a failed read/write before giving up")
    g.add_argument(
        "--protocol-version",
        type=int,
        choices=(3, 4, 5),
        default=None,
        help="native protocol version (default: negotiated)",
    )
    g.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request")
    g.add_argument(
        "--state-file",
        default=None,
        help="record finished ranges here; a re-run with it resumes (a fresh run needs a new file)",
    )
    g.add_argument("--report", default=None, help="write the JSON report to this file")
    g.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "none"),
        default="auto",
        help="bar on a terminal, log lines otherwise (auto)",
    )
    g.add_argument("--log-interval", type=float, default=10.0, help="seconds between progress log lines")
    g.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    g = parser.add_argument_group("Spark (engines spark and cdm)")
    g.add_argument("--spark-master", default="local[*]", help="local[*] (default) or spark://host:7077")
    g.add_argument("--spark-conf", type=_conf_pair, action="append", default=[], metavar="KEY=VALUE")
    g.add_argument(
        "--spark-master-ui", default=None, metavar="URL", help="the master's web UI (default http://<master>:8080)"
    )
    g.add_argument(
        "--spark-python",
        default=None,
        metavar="PATH",
        help="the executors' Python on a cluster, with cassandra-driver (engine spark; default: this one)",
    )
    g = parser.add_argument_group("Cassandra Data Migrator (engine cdm)")
    g.add_argument(
        "--cdm-jar", default=os.environ.get("ZDMKIT_CDM_JAR"), help="cassandra-data-migrator-<version>.jar"
    )
    g.add_argument(
        "--cdm-property",
        type=_conf_pair,
        action="append",
        default=[],
        metavar="spark.cdm.KEY=VALUE",
        help="a CDM property over the ones derived from the options above",
    )
    g.add_argument("--cdm-workdir", default=None, help="where the CDM job logs are kept")


def _add_migrator(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("DSBulk Migrator (engine dsbulk-migrator)")
    g.add_argument(
        "--dsbulk-migrator-jar",
        default=os.environ.get("ZDMKIT_DSBULK_MIGRATOR_JAR"),
        help="dsbulk-migrator-<version>-embedded-dsbulk.jar",
    )
    g.add_argument(
        "--dsbulk-migrator-workdir",
        default=None,
        help="its data and logs; a re-run with the same directory skips the tables already migrated",
    )
    g.add_argument("--dsbulk-migrator-concurrent-ops", type=_positive_int, default=1, help="tables moved at once")


COPY_ENGINES = ("builtin", "spark", "dsbulk", "cdm", "dsbulk-migrator")
VALIDATE_ENGINES = ("builtin", "spark", "cdm")
# sstables: Origin's nodes stream their SSTables (phase2.yml runs it); here only its preflight.
PREFLIGHT_ENGINES = (*COPY_ENGINES, "sstables")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zdmkit.migrate",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 ok, 1 differences or failed ranges, 2 bad input (refused before copying).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("preflight", help="check connectivity, credentials and the Target schema")
    _add_common(p)
    p.add_argument("--for", dest="purpose", choices=("copy", "validate"), default="copy")
    p.add_argument("--engine", choices=PREFLIGHT_ENGINES, default="builtin")
    _add_migrator(p)

    p = sub.add_parser("copy", help="copy rows with writetime and TTL preserved")
    _add_common(p)
    p.add_argument("--engine", choices=COPY_ENGINES, default="builtin")
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=20,
        help="statements per same-partition UNLOGGED batch (1 disables batching)",
    )
    p.add_argument(
        "--dsbulk",
        default=os.environ.get("ZDMKIT_DSBULK"),
        help="dsbulk launcher, distribution directory or tarball (--engine dsbulk)",
    )
    p.add_argument("--dsbulk-workdir", default=None, help="where DSBulk keeps its CSV files (resume needs them)")
    _add_migrator(p)

    p = sub.add_parser("validate", help="compare every row; optionally repair Target")
    _add_common(p)
    p.add_argument("--engine", choices=VALIDATE_ENGINES, default="builtin")
    p.add_argument(
        "--autocorrect",
        type=_autocorrect,
        default=frozenset(),
        metavar="missing,mismatch",
        help="write Origin's cells (with Origin's writetime) to Target for these differences",
    )
    p.add_argument(
        "--keep-newer-on-target",
        action="store_true",
        help="with --autocorrect, never write over cells or deletions on Target newer than Origin's",
    )
    p.add_argument("--compare-writetimes", action="store_true", help="also compare each cell's writetime")
    p.add_argument("--sample-limit", type=int, default=20, help="sample keys kept per kind of difference")
    return parser


def _password(args: argparse.Namespace, role: str) -> str | None:
    """--<role>-password, else the password read from standard input, else the environment."""
    p = role.lower()
    return (
        getattr(args, f"{p}_password")
        or (getattr(args, "stdin_passwords", None) or {}).get(p)
        or os.environ.get(f"ZDMKIT_{role.upper()}_PASSWORD")
    )


def read_stdin_passwords(args: argparse.Namespace, stream=None) -> list[str]:
    """Fill ``args.stdin_passwords`` from --passwords-stdin; returns the problems found."""
    args.stdin_passwords = {}
    if not getattr(args, "passwords_stdin", False):
        return []
    text = (stream or sys.stdin).read()
    try:
        data = json.loads(text)
    except ValueError:
        return ['--passwords-stdin: standard input is not JSON like {"origin": "...", "target": "..."}']
    if not isinstance(data, dict) or not set(data) <= {"origin", "target"}:
        return ['--passwords-stdin: give an object with the keys "origin" and/or "target"']
    if not all(isinstance(v, str) for v in data.values()):
        return ["--passwords-stdin: the passwords must be strings"]
    args.stdin_passwords = {k: v for k, v in data.items() if v}
    return []


def endpoint(args: argparse.Namespace, role: str) -> Endpoint:
    p = role.lower()
    password = _password(args, role)
    return Endpoint(
        role=role,
        contact_points=tuple(getattr(args, f"{p}_contact_points")),
        port=getattr(args, f"{p}_port"),
        username=getattr(args, f"{p}_username"),
        password=password,
        local_dc=getattr(args, f"{p}_local_dc"),
        consistency=getattr(args, f"{p}_consistency"),
        request_timeout=args.request_timeout,
        protocol_version=args.protocol_version,
        ssl_ca=getattr(args, f"{p}_ssl_ca"),
        ssl_cert=getattr(args, f"{p}_ssl_cert"),
        ssl_key=getattr(args, f"{p}_ssl_key"),
        ssl_verify_hostname=getattr(args, f"{p}_ssl_verify_hostname"),
    )


def job_config(args: argparse.Namespace) -> JobConfig:
    problems = [] if hasattr(args, "stdin_passwords") else read_stdin_passwords(args)
    for role in ("origin", "target"):
        if getattr(args, f"{role}_ssl_key") and not getattr(args, f"{role}_ssl_cert"):
            problems.append(f"--{role}-ssl-key needs --{role}-ssl-cert")
        for opt in ("ssl_ca", "ssl_cert", "ssl_key"):
            path = getattr(args, f"{role}_{opt}")
            if path and not os.path.isfile(path):
                problems.append(f"--{role}-{opt.replace('_', '-')} {path}: no such file")
        if getattr(args, f"{role}_username") and not _password(args, role):
            problems.append(
                f"--{role}-username is set but no password: set ZDMKIT_{role.upper()}_PASSWORD, "
                f"--passwords-stdin or --{role}-password"
            )
    keyspace_map = []
    for pair in args.keyspace_map:
        src, eq, dst = pair.partition("=")
        if not eq or not src or not dst:
            problems.append(f"--keyspace-map takes origin=target pairs, got {pair!r}")
        elif src not in args.keyspaces:
            problems.append(f"--keyspace-map names {src}, which is not in --keyspaces")
        else:
            keyspace_map.append((src, dst))
    if args.spark_master != "local[*]":
        try:
            if not sparkmaster.is_local(args.spark_master):
                sparkmaster.parse(args.spark_master)
        except ValueError as exc:
            problems.append(f"--spark-master: {exc}")
    if problems:
        raise PreflightError(problems)
    config = JobConfig(
        origin=endpoint(args, "Origin"),
        target=endpoint(args, "Target"),
        keyspaces=tuple(args.keyspaces),
        tables=tuple(args.tables),
        keyspace_map=tuple(keyspace_map),
        engine=args.engine,
        splits=args.splits,
        parallel=args.parallel,
        processes=args.processes,
        concurrency=args.concurrency,
        rate=args.rate,
        spark_master=args.spark_master,
        spark_conf=tuple(args.spark_conf),
        spark_python=args.spark_python,
    )
    if args.command in ("copy", "preflight"):
        config = replace(
            config,
            copy=CopyOptions(
                fetch_size=args.fetch_size or 1000,
                batch_size=getattr(args, "batch_size", 10),
                batch_mode=getattr(args, "batch_mode", "replica"),
                retries=args.retries,
            ),
        )
    if args.command == "validate":
        config = replace(
            config,
            validate=ValidateOptions(
                fetch_size=args.fetch_size or 2000,
                retries=args.retries,
                compare_writetimes=args.compare_writetimes,
                autocorrect=args.autocorrect,
                keep_newer=args.keep_newer_on_target,
                sample_limit=args.sample_limit,
            ),
        )
    return config


def peer_options(args: argparse.Namespace) -> tuple[CdmOptions | None, MigratorOptions | None]:
    """Options of the cdm and dsbulk-migrator engines, when the command uses one."""
    engine = getattr(args, "engine", "builtin")
    cdm = migrator = None
    if engine == "cdm":
        try:
            submit = str(spark_submit())
        except RuntimeError as exc:
            raise PreflightError(str(exc)) from None
        cdm = CdmOptions(
            jar=args.cdm_jar or "",
            spark_submit=submit,
            workdir=args.cdm_workdir,
            properties=tuple(args.cdm_property),
            fetch_size=args.fetch_size or 1000,
            master_ui=args.spark_master_ui,
        )
    if engine == "dsbulk-migrator":
        migrator = MigratorOptions(
            jar=args.dsbulk_migrator_jar or "",
            workdir=args.dsbulk_migrator_workdir or tempfile.mkdtemp(prefix="zdmkit-dsbulk-migrator-"),
            max_concurrent_ops=args.dsbulk_migrator_concurrent_ops,
        )
    return cdm, migrator


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    # the driver's warnings about individual hosts would drown the progress lines
    logging.getLogger("cassandra").setLevel(max(logging.getLevelName(level), logging.ERROR))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    try:
        config = job_config(args)
        cdm, migrator = peer_options(args)
        problems = (cdm_problems(config, cdm) if config.engine == "cdm" else []) + (
            migrator_problems(config, migrator) if config.engine == "dsbulk-migrator" else []
        )
        if problems:
            raise PreflightError(problems)
        if args.command == "preflight":
            pre = preflight(config, args.purpose, master_ui=args.spark_master_ui)
            for spec in pre.specs:
                print(
                    f"ok {spec.key}: {len(spec.primary_key)} key column(s), {len(spec.value_columns)} value column(s)"
                )
            for warning in pre.warnings:
                print(f"warning: {warning}")
            print(
                f"preflight passed: Origin {pre.origin_release}, Target {pre.target_release}, {len(pre.specs)} table(s)"
            )
            return 0
        report, code = run_job(
            config,
            args.command,
            state_path=args.state_file,
            progress_mode=args.progress,
            log_interval=args.log_interval,
            dsbulk=getattr(args, "dsbulk", None),
            dsbulk_workdir=getattr(args, "dsbulk_workdir", None),
            cdm_options=cdm,
            migrator_options=migrator,
        )
    except PreflightError as exc:
        print(f"refused before {'copying' if args.command == 'copy' else 'starting'}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.report:
        write_report(args.report, report)
    summary = copy_summary(report) if args.command == "copy" else validation_summary(report)
    print(summary)
    return code
