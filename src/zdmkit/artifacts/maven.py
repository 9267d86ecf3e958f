"""Fetch artifacts from Maven Central with the ordinary client, ``mvn``."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


class MavenError(RuntimeError):
    """mvn could not deliver what was asked."""


def parse_coordinates(coordinates: str) -> dict[str, str]:
    """Split ``group:artifact:version[:type[:classifier]]``."""
    parts = coordinates.split(":")
    if len(parts) < 3 or not all(parts[:3]):
        raise ValueError(f"not Maven coordinates (group:artifact:version): {coordinates!r}")
    keys = ("group", "artifact", "version", "type", "classifier")
    found = dict(zip(keys, parts, strict=False))
    found.setdefault("type", "jar")
    return found


def _mvn(args: list[str], cwd: Path, what: str) -> None:
    cmd = ["mvn", "-B", "-q", "-ntp", *args]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False)
    except FileNotFoundError as exc:
        raise MavenError("mvn is not installed (Debian package maven)") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if "ERROR" in ln]
        reason = lines[0] if lines else f"mvn exited {proc.returncode}"
        raise MavenError(f"{what}: {reason.removeprefix('[ERROR] ')}")


def build(project: Path, args: list[str], what: str) -> None:
    """``mvn package`` (or any goals in ``args``) of a project directory."""
    _mvn(args, cwd=project, what=what)


def copy_artifact(coordinates: str, dest_dir: Path) -> Path:
    """Download one artifact (no dependencies) into dest_dir; return its path."""
    c = parse_coordinates(coordinates)
    dest_dir.mkdir(parents=True, exist_ok=True)
    _mvn(
        [
            f"{DEPENDENCY_PLUGIN}:copy",
            f"-Dartifact={coordinates}",
            f"-DoutputDirectory={dest_dir}",
            "-Dmdep.overWriteReleases=true",
        ],
        cwd=dest_dir,
        what=f"mvn dependency:copy {coordinates}",
    )
    name = f"{c['artifact']}-{c['version']}"
    if c.get("classifier"):
        name += f"-{c['classifier']}"
    path = dest_dir / f"{name}.{c['type'].replace('tar.gz', 'tar.gz')}"
    if not path.is_file():
        raise MavenError(f"mvn dependency:copy {coordinates}: {path.name} not produced")
    return path


def render_pom(coordinates: list[str]) -> str:
    """A POM that depends on ``coordinates``; their runtime closure is what gets copied."""
    deps = []
    for item in coordinates:
        c = {k: escape(v) for k, v in parse_coordinates(item).items()}
        deps.append(
            "    <dependency>\n"
            f"      <groupId>{c['group']}</groupId>\n"
            f"      <artifactId>{c['artifact']}</artifactId>\n"
            f"      <version>{c['version']}</version>\n"
            "    </dependency>"
        )
    joined = "\n".join(deps)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>zdmkit.build</groupId>
  <artifactId>assembly</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
{joined}
  </dependencies>
</project>
"""


def copy_runtime_closure(coordinates: list[str], lib_dir: Path) -> list[Path]:
    """Copy the artifacts and their runtime dependencies into lib_dir; return the jars."""
    lib_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zdmkit-mvn-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(render_pom(coordinates), encoding="utf-8")
        _mvn(
            [
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={lib_dir}",
            ],
            cwd=Path(tmp),
            what=f"mvn dependency:copy-dependencies {' '.join(coordinates)}",
        )
    jars = sorted(lib_dir.glob("*.jar"))
    if not jars:
        raise MavenError(f"mvn dependency:copy-dependencies {coordinates[0]}: no jar produced")
    return jars
