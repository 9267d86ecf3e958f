"""Assemble a DSBulk distribution from its Maven modules.

The DSBulk distribution archive is not on Maven Central, but its modules are. The runner's
POM declares the workflows, connectors and engines only for tests, so they are named here.
The `count` workflow is not published on Maven Central; `load` and `unload` are, and they are
what a data copy uses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from zdmkit.artifacts.cassandra_dist import write_deterministic_tar
from zdmkit.artifacts.maven import copy_runtime_closure

MODULES = (
    "dsbulk-runner",
    "dsbulk-workflow-load",
    "dsbulk-workflow-unload",
    "dsbulk-connectors-csv",
    "dsbulk-connectors-json",
    "dsbulk-codecs-text",
    "dsbulk-codecs-jdk",
    "dsbulk-batcher-reactor",
    "dsbulk-executor-reactor",
)
LOGBACK = "ch.qos.logback:logback-classic:1.2.13"

LAUNCHER = """#!/bin/sh
# DataStax Bulk Loader launcher: java with every jar of lib/ on the class path.
DSBULK_HOME=$(cd "$(dirname "$0")/.." && pwd)
exec "${JAVA:-java}" ${DSBULK_JAVA_OPTS:--Xmx1g} \\
  -cp "$DSBULK_HOME/conf:$DSBULK_HOME/lib/*" \\
  com.datastax.oss.dsbulk.runner.DataStaxBulkLoader "$@"
"""

LOGBACK_XML = """<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %msg%n</pattern></encoder>
  </appender>
  <logger name="com.datastax.oss.driver" level="WARN"/>
  <root level="${DSBULK_LOG_LEVEL:-WARN}"><appender-ref ref="CONSOLE"/></root>
</configuration>
"""


def coordinates(version: str) -> list[str]:
    return [f"com.datastax.oss:{m}:{version}" for m in MODULES] + [LOGBACK]


def build_distribution(version: str, dest: Path, workdir: Path) -> Path:
    """Build ``dsbulk-<version>.tar.gz`` (top dir ``dsbulk-<version>/``) at dest."""
    top = workdir / f"dsbulk-{version}"
    if top.exists():
        shutil.rmtree(top)
    copy_runtime_closure(coordinates(version), top / "lib")
    (top / "bin").mkdir(parents=True)
    (top / "conf").mkdir()
    launcher = top / "bin" / "dsbulk"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    launcher.chmod(0o755)
    (top / "conf" / "logback.xml").write_text(LOGBACK_XML, encoding="utf-8")
    return write_deterministic_tar(top, top.name, dest)


def reported_version(tarball: Path) -> str:
    """Unpack the tarball and return what ``dsbulk --version`` prints, e.g. ``1.10.0``."""
    with tempfile.TemporaryDirectory(prefix="zdmkit-dsbulk-") as tmp:
        shutil.unpack_archive(tarball, tmp)
        (launcher,) = Path(tmp).glob("*/bin/dsbulk")
        proc = subprocess.run(
            [str(launcher), "--version"], capture_output=True, text=True, timeout=120, check=False
        )
        match = re.search(r"v?(\d+\.\d+\.\d+)", proc.stdout + proc.stderr)
        return match.group(1) if match else (proc.stdout + proc.stderr).strip()[:200]
