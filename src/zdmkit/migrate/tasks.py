"""What a range task is and what runs it: the job's configuration, the task, and the Worker
(sessions plus per-table copiers and validators) of one process.

The local thread pool (``engine``) and Spark executors (``spark``) both import this module and
nothing of each other: the dependency runs one way, engine -> spark -> tasks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from zdmkit.migrate.connection import Endpoint, connect
from zdmkit.migrate.copy import CopyOptions, RangeOutcome, TableCopier
from zdmkit.migrate.driverio import RateLimiter, RequestWindow, describe_error
from zdmkit.migrate.ranges import TokenRange
from zdmkit.migrate.schema import PreflightError, TableSpec
from zdmkit.migrate.validate import TableValidator, ValidateOptions


@dataclass(frozen=True)
class JobConfig:
    """Everything a task needs; picklable, so it can travel to Spark executors."""

    origin: Endpoint
    target: Endpoint
    keyspaces: tuple[str, ...]
    tables: tuple[str, ...] = ()
    keyspace_map: tuple[tuple[str, str], ...] = ()  # (Origin keyspace, Target keyspace) when renamed
    engine: str = "builtin"  # builtin | spark | dsbulk | cdm | dsbulk-migrator | sstables (preflight only)
    splits: int = 256
    parallel: int = 4  # ranges worked on at once in one process
    processes: int = 1  # worker processes of the builtin engine (each works on one range at a time)
    concurrency: int = 256  # requests in flight per process
    rate: float | None = None  # rows/s over the whole job
    copy: CopyOptions = field(default_factory=CopyOptions)
    validate: ValidateOptions = field(default_factory=ValidateOptions)
    spark_master: str = "local[*]"
    spark_conf: tuple[tuple[str, str], ...] = ()
    spark_python: str | None = None  # the executors' Python on a cluster (default: this one)


@dataclass
class Task:
    spec: TableSpec
    rng: TokenRange
    careful: bool = False


class Recorder(Protocol):
    """The driver side's bookkeeping of outcomes (state file, progress, totals)."""

    def on_start(self, task: Task) -> None: ...

    def __call__(self, task: Task, outcome: RangeOutcome) -> None: ...


class Stop(Protocol):
    """Set when the job is asked to stop: finish what runs, start nothing new."""

    def is_set(self) -> bool: ...


class Worker:
    """Sessions and per-table copiers/validators of one process (the CLI's, or a Spark executor's)."""

    def __init__(self, config: JobConfig, *, rate: float | None, executor_threads: int = 2):
        self.config = config
        self.o_cluster, self.origin = connect(config.origin, executor_threads=executor_threads)
        try:
            self.t_cluster, self.target = connect(config.target, executor_threads=executor_threads)
        except PreflightError:
            self.o_cluster.shutdown()
            raise
        self.window = RequestWindow(config.concurrency)
        self.limiter = RateLimiter(rate)
        self._handlers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def handler(self, kind: str, spec: TableSpec) -> Any:
        with self._lock:
            key = (kind, spec.key)
            if key not in self._handlers:
                cls = TableCopier if kind == "copy" else TableValidator
                options = self.config.copy if kind == "copy" else self.config.validate
                self._handlers[key] = cls(
                    self.origin, self.target, spec, options, window=self.window, limiter=self.limiter
                )
            return self._handlers[key]

    def run(self, kind: str, spec: TableSpec, rng: TokenRange, careful: bool = False) -> RangeOutcome:
        try:
            handler = self.handler(kind, spec)
        except Exception as exc:
            return RangeOutcome(spec.key, rng.id, error=f"preparing statements: {describe_error(exc)}")
        if kind == "copy":
            return handler.copy_range(rng, careful=careful)
        return handler.validate_range(rng)

    def close(self) -> None:
        self.o_cluster.shutdown()
        self.t_cluster.shutdown()
