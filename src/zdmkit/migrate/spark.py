"""Scale-out on Apache Spark: the same range tasks, run in Spark executors through pyspark.

Each Spark task is one token range; inside it the task uses cassandra-driver like the local
engine does. Sessions are opened once per Python worker process and reused by its tasks
(``spark.python.worker.reuse``). Tasks are submitted in waves so that finished ranges reach
the state file while the job runs: an interrupted job loses at most the wave in progress.

``local[*]`` runs everything on this machine; a ``spark://host:7077`` master runs the tasks
on a standalone cluster (role ``spark``), whose executors need the same Python minor version as
this one with cassandra-driver installed (``--spark-python``; the zdmkit package itself is
shipped with the job). The executors call the driver back at this machine's address on the
route to the master (``spark.driver.host``, unless given). The rate limit (rows/s) is shared out
evenly among the executor slots.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from zdmkit.migrate import sparkmaster
from zdmkit.migrate.copy import RangeOutcome
from zdmkit.migrate.driverio import describe_error
from zdmkit.migrate.ranges import TokenRange
from zdmkit.migrate.tasks import JobConfig, Recorder, Stop, Task, Worker

log = logging.getLogger("zdmkit.migrate")

_WORKERS: dict[str, Any] = {}
_WORKERS_LOCK = threading.Lock()


def _executor_worker(config: JobConfig, job_id: str, rate: float | None) -> Any:
    """The Worker of this Python process for this job, opened on first use."""
    with _WORKERS_LOCK:
        worker = _WORKERS.get(job_id)
        if worker is None:
            for old in _WORKERS.values():
                old.close()
            _WORKERS.clear()
            worker = Worker(config, rate=rate, executor_threads=1)
            _WORKERS[job_id] = worker
            atexit.register(worker.close)
        return worker


def _task_runner(config: JobConfig, job_id: str, kind: str, rate: float | None):
    def run(items: Any) -> Any:
        for spec, start, end, careful in items:
            rng = TokenRange(start, end)
            try:
                worker = _executor_worker(config, job_id, rate)
                outcome = worker.run(kind, spec, rng, careful)
            except Exception as exc:
                outcome = RangeOutcome(spec.key, rng.id, error=describe_error(exc))
            yield outcome

    return run


def package_zip(dest_dir: Path) -> Path:
    """Zip the zdmkit package so that executors import the same code."""
    import zdmkit

    root = Path(zdmkit.__file__).resolve().parent
    target = dest_dir / "zdmkit.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in root.rglob("*.py"):
            zf.write(path, Path("zdmkit") / path.relative_to(root))
    return target


def spark_session(
    master: str, conf: tuple[tuple[str, str], ...] = (), python: str | None = None, app_name: str = "zdmkit-migrate"
) -> Any:
    """A Spark session whose executors run ``python`` (PySpark reads it from PYSPARK_PYTHON when the
    context starts; the variable is put back afterwards, so that a later local job runs this Python)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.task.maxFailures", "1")
        .config("spark.driver.memory", "1g")
    )
    given = dict(conf)
    if not sparkmaster.is_local(master) and "spark.driver.host" not in given:
        builder = builder.config("spark.driver.host", sparkmaster.driver_address(sparkmaster.parse(master)))
    for key, value in conf:
        builder = builder.config(key, value)
    saved = {name: os.environ.get(name) for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    os.environ["PYSPARK_PYTHON"] = python or saved["PYSPARK_PYTHON"] or sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    try:
        return builder.getOrCreate()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_spark(config: JobConfig, kind: str, tasks: list[Task], recorder: Recorder, stop: Stop) -> None:
    if not tasks:
        return
    spark = spark_session(config.spark_master, config.spark_conf, config.spark_python, f"zdmkit-migrate {kind}")
    tmp = Path(tempfile.mkdtemp(prefix="zdmkit-spark-"))
    try:
        sc = spark.sparkContext
        sc.setLogLevel("WARN")
        sc.addPyFile(str(package_zip(tmp)))
        slots = max(1, sc.defaultParallelism)
        rate = config.rate / slots if config.rate else None
        # one Spark task works on one range at a time: its request window is the job's share
        task_config = replace(config, parallel=1, concurrency=max(16, config.concurrency // slots))
        job_id = f"{os.getpid()}-{id(tasks)}"
        runner = _task_runner(task_config, job_id, kind, rate)
        wave = slots * 4
        log.info("spark: master %s, %d executor slots, %d ranges", config.spark_master, slots, len(tasks))
        for first in range(0, len(tasks), wave):
            if stop.is_set():
                break
            batch = tasks[first : first + wave]
            for task in batch:
                recorder.on_start(task)
            items = [(t.spec, t.rng.start, t.rng.end, t.careful) for t in batch]
            try:
                outcomes = sc.parallelize(items, len(items)).mapPartitions(runner).collect()
            except Exception as exc:  # the Spark job itself failed (executor lost, ...)
                error = f"spark job failed: {describe_error(exc)}"
                outcomes = [RangeOutcome(t.spec.key, t.rng.id, error=error) for t in batch]
            by_id = {(o.table, o.range_id): o for o in outcomes}
            for task in batch:
                outcome = by_id.get((task.spec.key, task.rng.id)) or RangeOutcome(
                    task.spec.key, task.rng.id, error="no result from Spark"
                )
                recorder(task, outcome)
    finally:
        spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)
