"""Assemble a runnable Apache Cassandra binary distribution from Maven artifacts.

The Cassandra binary tarball is not published as a Maven artifact for current
releases, but the server jar (``org.apache.cassandra:cassandra-all``) and all of
its runtime dependencies are. This module resolves them with ``mvn``, adds the
launcher scripts and configuration files kept next to this module (directory
``cassandra_dist/``) and packs the result as
``apache-cassandra-<version>-bin.tar.gz`` with a single top directory
``apache-cassandra-<version>/``, the layout of the upstream tarball.

The archive is byte-for-byte reproducible: entries are sorted, owned by 0:0,
carry a fixed modification time and normalised modes, and the gzip header
holds neither a file name nor a timestamp. Two builds from the same Maven
artifacts therefore have the same sha256, which the artifact manifest pins.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path
from xml.sax.saxutils import escape

GROUP_ID = "org.apache.cassandra"
ARTIFACT_ID = "cassandra-all"
# Pinned so that the resolution does not depend on whichever plugin version mvn would pick.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
RESOURCE_DIR = Path(__file__).with_name("cassandra_dist")

# 2020-01-01T00:00:00Z: any fixed value works; it only has to be the same on every build.
FIXED_MTIME = 1577836800

_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?([.-][A-Za-z0-9]+)*$")
_EXECUTABLE_DIRS = ("bin",)


class DistributionError(RuntimeError):
    """Building or inspecting a distribution failed."""


def _check_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise ValueError(f"not a Cassandra version: {version!r} (expected e.g. '5.0.9')")
    return version


def dist_name(version: str) -> str:
    """Top directory of the distribution, ``apache-cassandra-<version>``."""
    return f"apache-cassandra-{_check_version(version)}"


def tarball_name(version: str) -> str:
    """File name of the distribution archive."""
    return f"{dist_name(version)}-bin.tar.gz"


def render_pom(version: str) -> str:
    """Return a minimal POM whose only dependency is ``cassandra-all:<version>``.

    ``mvn dependency:copy-dependencies`` on it copies the server jar together
    with its runtime closure, resolved with the versions Cassandra's parent POM manages.
    """
    version = escape(_check_version(version))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>zdmkit.build</groupId>
  <artifactId>apache-cassandra-dist</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>{GROUP_ID}</groupId>
      <artifactId>{ARTIFACT_ID}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def _entry_mode(relpath: str, is_dir: bool) -> int:
    """0755 for directories and for the commands in bin/ (``*.sh`` there are sourced, not run),
    0644 for everything else. Modes never depend on the source tree's, which an installed
    package or a checkout may not keep."""
    if is_dir:
        return 0o755
    top, _, name = relpath.partition("/")
    if top in _EXECUTABLE_DIRS and "/" not in name and not name.endswith(".sh"):
        return 0o755
    return 0o644


def _iter_tree(root: Path) -> Iterable[tuple[str, Path]]:
    """Yield (relative posix path, path) for everything under root, sorted by relative path."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            entries.append((path.relative_to(root).as_posix(), path))
    entries.sort(key=lambda item: item[0])
    return entries


def write_deterministic_tar(source_dir: Path, arcroot: str, output: Path, mtime: int = FIXED_MTIME) -> Path:
    """Pack ``source_dir`` as ``output`` (tar.gz) with every entry under ``arcroot/``.

    Entries are sorted by path, owned by root (uid/gid 0), stamped with ``mtime``;
    directories and the commands in ``bin/`` get mode 0755, everything else 0644.
    Symbolic links are refused: the distribution has none and following them would
    make the archive depend on the build host.
    """
    source_dir = Path(source_dir)
    output = Path(output)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for relpath, path in [("", source_dir), *_iter_tree(source_dir)]:
            if path.is_symlink():
                raise DistributionError(f"symbolic link in distribution tree: {path}")
            info = tarfile.TarInfo(f"{arcroot}/{relpath}".rstrip("/"))
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_dir():
                info.type = tarfile.DIRTYPE
                info.mode = _entry_mode(relpath, True)
                tar.addfile(info)
            else:
                info.size = path.stat().st_size
                info.mode = _entry_mode(relpath, False)
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".part")
    with (
        partial.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(buffer.getvalue())
    partial.replace(output)
    return output


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise DistributionError(f"{cmd[0]} not found on PATH") from exc
    except subprocess.CalledProcessError as exc:
        raise DistributionError(
            f"{' '.join(cmd)} failed with exit code {exc.returncode}:\n{exc.stdout}{exc.stderr}"
        ) from exc


def resolve_jars(version: str, workdir: Path, mvn: str = "mvn") -> Path:
    """Copy ``cassandra-all:<version>`` and its runtime dependencies into ``workdir/lib``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pom.xml").write_text(render_pom(version), encoding="utf-8")
    lib = workdir / "lib"
    if lib.exists():
        shutil.rmtree(lib)
    _run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(workdir / "pom.xml"),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        cwd=workdir,
    )
    server_jar = lib / f"{ARTIFACT_ID}-{version}.jar"
    if not server_jar.is_file():
        raise DistributionError(f"mvn did not produce {server_jar.name} in {lib}")
    return lib


def stage_distribution(version: str, lib: Path, staging: Path, resources: Path = RESOURCE_DIR) -> Path:
    """Lay out ``staging/apache-cassandra-<version>/`` from resolved jars and the resource files."""
    root = staging / dist_name(version)
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(resources, root, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(lib, root / "lib")
    # Empty directories the launcher expects: default log and data roots, and conf/triggers,
    # which Cassandra looks up on the class path for trigger jars.
    for empty in ("logs", "data", "conf/triggers"):
        (root / empty).mkdir(parents=True, exist_ok=True)
    return root


def build_distribution(version: str, dest: Path, workdir: Path, *, mvn: str = "mvn") -> Path:
    """Build the distribution archive and return its path.

    ``dest`` is the archive to write; when it is an existing directory the archive is
    written inside it as ``apache-cassandra-<version>-bin.tar.gz``. ``workdir`` holds
    the generated POM, the resolved jars and the staged tree; it is reused between
    builds and can be deleted afterwards. Needs ``mvn`` and a Maven repository that
    carries ``org.apache.cassandra:cassandra-all``.
    """
    _check_version(version)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / tarball_name(version)
    workdir = Path(workdir)
    lib = resolve_jars(version, workdir, mvn=mvn)
    root = stage_distribution(version, lib, workdir / "staging")
    return write_deterministic_tar(root, dist_name(version), dest)


def reported_version(dist_dir: Path, java: str = "java") -> str:
    """Return the release version the server jars in ``dist_dir/lib`` report, e.g. ``"5.0.9"``."""
    dist_dir = Path(dist_dir)
    if not (dist_dir / "lib").is_dir():
        raise DistributionError(f"{dist_dir} has no lib/ directory")
    result = _run(
        [java, "-cp", str(dist_dir / "lib" / "*"), "org.apache.cassandra.tools.GetVersion"],
        cwd=dist_dir,
    )
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        raise DistributionError(f"GetVersion printed nothing for {dist_dir}")
    return lines[-1]
