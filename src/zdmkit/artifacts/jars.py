"""Checks of Java programs built from source: what a jar says about itself, a digest of its
content that a rebuild reproduces, and whether a Spark job class runs on the pinned Spark.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


class JarError(RuntimeError):
    """A jar did not pass a check; str() is one line."""


def content_digest(path: Path) -> str:
    """sha256 over the jar's entries (sorted by name, contents included), leaving out what a
    rebuild changes by itself: the entries' times and the build-date comment Maven writes into
    every ``pom.properties``. Two builds of the same sources with the same JDK give the same digest."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as jar:
        for name in sorted(jar.namelist()):
            if name.endswith("/"):
                continue
            data = jar.read(name)
            if name.endswith("/pom.properties"):
                data = b"\n".join(line for line in data.splitlines() if not line.startswith(b"#"))
            digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def pom_version(path: Path, coordinates: str) -> str:
    """The version in ``META-INF/maven/<group>/<artifact>/pom.properties`` of a jar."""
    group, _, artifact = coordinates.partition(":")
    entry = f"META-INF/maven/{group}/{artifact}/pom.properties"
    try:
        with zipfile.ZipFile(path) as jar:
            text = jar.read(entry).decode("utf-8", "replace")
    except KeyError:
        raise JarError(f"{path.name} has no {entry}") from None
    match = re.search(r"^version=(.+)$", text, re.M)
    if not match:
        raise JarError(f"{path.name}: {entry} names no version")
    return match.group(1).strip()


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    found = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if not found:
        raise JarError("java is not installed (Debian package openjdk-17-jre-headless)")
    return found


def java_version() -> str:
    """The runtime version of the java that builds and runs the jars, e.g. ``17.0.15``."""
    proc = subprocess.run([java(), "-version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'version "([^"]+)"', proc.stderr + proc.stdout)
    if not match:
        raise JarError(f"java -version gave no version: {(proc.stderr or proc.stdout).strip()[:200]}")
    return match.group(1)


def jar_version(path: Path) -> str:
    """What ``java -jar <jar> --version`` prints first, e.g. ``DSBulk Migrator version 1.0.0-SNAPSHOT``."""
    proc = subprocess.run(
        [java(), "-jar", str(path), "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise JarError(f"java -jar {path.name} --version exited {proc.returncode}: {' '.join(lines[:2])[:300]}")
    match = re.search(r"version (\S+)", lines[0])
    return match.group(1) if match else lines[0]


def spark_submit() -> Path:
    """The ``spark-submit`` of the pinned pyspark, beside the Python running this package."""
    path = Path(sys.executable).with_name("spark-submit")
    if not path.is_file():
        raise JarError(f"{path} is missing: install the pinned pyspark (make bootstrap)")
    return path


def spark_home() -> str:
    """SPARK_HOME of the pinned pyspark (its launcher scripts cannot find it from every PATH)."""
    try:
        import pyspark
    except ImportError:
        raise JarError("pyspark is not installed: install the pinned pyspark (make bootstrap)") from None
    return str(Path(pyspark.__file__).resolve().parent)


def spark_env() -> dict[str, str]:
    """The environment for spark-submit: SPARK_HOME, and this Python for PySpark."""
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    return {**os.environ, "SPARK_HOME": spark_home(), "PYSPARK_PYTHON": python}


def spark_version() -> str:
    try:
        import pyspark
    except ImportError:
        raise JarError("pyspark is not installed: install the pinned pyspark (make bootstrap)") from None
    return pyspark.__version__


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LINKAGE_ERRORS = ("NoSuchMethodError", "NoClassDefFoundError", "ClassNotFoundException", "AbstractMethodError",
                  "IncompatibleClassChangeError", "UnsupportedClassVersionError")  # fmt: skip


def spark_job_starts(path: Path, job_class: str, expect: str) -> str:
    """Run a CDM job class of the jar with the pinned Spark against a port where nothing listens.

    The job reads its properties, starts Spark and then fails to connect: output containing
    ``expect`` (its log line before connecting) and no linkage error shows that the jar's classes
    work with this Spark. Returns the Spark version."""
    port = _closed_port()
    with tempfile.TemporaryDirectory(prefix="zdmkit-spark-check-") as tmp:
        cmd = [
            str(spark_submit()), "--master", "local[1]", "--driver-memory", "512m",
            "--conf", "spark.ui.enabled=false",
            "--conf", f"spark.local.dir={tmp}",
            "--conf", "spark.cdm.connect.origin.host=127.0.0.1", "--conf", f"spark.cdm.connect.origin.port={port}",
            "--conf", "spark.cdm.connect.target.host=127.0.0.1", "--conf", f"spark.cdm.connect.target.port={port}",
            "--conf", "spark.cdm.schema.origin.keyspaceTable=zdmkit_check.t",
            "--class", job_class, str(path),
        ]  # fmt: skip
        env = {**spark_env(), "SPARK_LOCAL_IP": "127.0.0.1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, cwd=tmp, env=env)
    output = proc.stdout + proc.stderr
    linkage = [ln.strip() for ln in output.splitlines() if any(e in ln for e in LINKAGE_ERRORS)]
    if linkage:
        raise JarError(f"{job_class} does not run on Spark {spark_version()}: {linkage[0][:300]}")
    if expect not in output:
        last = [ln.strip() for ln in output.splitlines() if ln.strip()][-1:] or [f"exit {proc.returncode}"]
        raise JarError(f"{job_class} on Spark {spark_version()} never reached {expect!r}: {last[0][:300]}")
    return spark_version()
