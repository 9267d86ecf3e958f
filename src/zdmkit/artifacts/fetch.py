"""Fill the artifact cache from the manifest: fetch once, verify, reuse.

Every artifact is produced in a private scratch directory inside the cache and moved into
place only after it verified, so a failed or interrupted fetch never leaves a half-written
file where a later run would take it for a good one. A stamp next to each artifact records
what was verified; a later run whose manifest entry is unchanged is a cache hit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zdmkit.artifacts import cassandra_dist, dsbulk_dist, jars, maven

MANIFEST = Path(__file__).with_name("manifest.yml")
STAMP_SUFFIX = ".verified.json"


class ArtifactError(RuntimeError):
    """An artifact could not be obtained or did not verify. str() is one line for the operator."""

    def __init__(self, entry: dict[str, Any], reason: str):
        self.name = entry["name"]
        source = describe_source(entry)
        super().__init__(f"artifact {entry['name']} {entry['version']} from {source}: {reason}")


@dataclass
class Outcome:
    name: str
    path: Path
    status: str  # "hit" or "fetched"
    detail: str


def cache_dir() -> Path:
    configured = os.environ.get("ZDMKIT_ARTIFACTS")
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "zdmkit" / "artifacts"


def sources_dir() -> Path:
    """Released third-party sources for machines that cannot download them: $ZDMKIT_SOURCES,
    else ``../shared/sources`` beside the project checkout."""
    configured = os.environ.get("ZDMKIT_SOURCES")
    if configured:
        return Path(configured).expanduser().resolve()
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "sources").resolve()


def prebuilt_dir() -> Path:
    """Third-party builds made elsewhere for machines that cannot download the release:
    $ZDMKIT_PREBUILT, else ``../shared/artifacts`` beside the project checkout."""
    configured = os.environ.get("ZDMKIT_PREBUILT")
    if configured:
        return Path(configured).expanduser().resolve()
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "artifacts").resolve()


def load_manifest(path: Path = MANIFEST) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = data["artifacts"]
    for entry in entries:
        missing = {"name", "version", "file", "source", "verify", "needed_by"} - entry.keys()
        if missing:
            raise ValueError(f"manifest entry {entry.get('name', '?')}: missing {sorted(missing)}")
    return entries


def describe_source(entry: dict[str, Any]) -> str:
    src = entry["source"]
    kind = src["kind"]
    if kind in ("maven", "maven-assembly"):
        return f"Maven Central {src['coordinates']}"
    if kind == "pip-wheels":
        return f"PyPI {' '.join(src['requirements'])}"
    if kind == "pip-build":
        return f"PyPI {' '.join(src['requirements'])}"
    if kind in ("go-source", "maven-source"):
        return f"source archive {src['archive']} in {sources_dir()}"
    if kind == "prebuilt":
        return f"prebuilt archive {src['archive']} in {prebuilt_dir()}"
    return kind


def entry_digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON next to its final place, then rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stamp_path(cache: Path, entry: dict[str, Any]) -> Path:
    return cache / f"{entry['file']}{STAMP_SUFFIX}"


def is_cached(cache: Path, entry: dict[str, Any]) -> bool:
    target = cache / entry["file"]
    stamp = _stamp_path(cache, entry)
    if not (target.exists() and stamp.is_file()):
        return False
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except ValueError:
        return False
    if recorded.get("entry") != entry_digest(entry):
        return False
    return not (target.is_file() and recorded.get("sha256") and recorded["sha256"] != sha256_of(target))


def _produce(entry: dict[str, Any], scratch: Path) -> Path:
    """Produce the artifact inside scratch; return its path there."""
    src = entry["source"]
    kind = src["kind"]
    name = Path(entry["file"]).name
    if kind == "maven":
        return maven.copy_artifact(src["coordinates"], scratch)
    if kind == "maven-assembly":
        builder = {"cassandra": cassandra_dist, "dsbulk": dsbulk_dist}[src["builder"]]
        return builder.build_distribution(entry["version"], scratch / name, scratch / "work")
    if kind == "go-source":
        return _go_source(entry, scratch)
    if kind == "prebuilt":
        return _prebuilt(entry, scratch)
    if kind == "maven-source":
        return _maven_source(entry, scratch)
    if kind == "pip-build":
        return _pip_build(entry, scratch)
    if kind == "pip-wheels":
        out = scratch / name
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "--dest",
                str(out),
                *src["requirements"],
            ],
            f"pip download {' '.join(src['requirements'])}",
        )
        return out
    raise ValueError(f"unknown source kind {kind!r}")


def go_tool() -> str:
    """The go command: on PATH, or where the official Go archive installs it."""
    found = shutil.which("go")
    if found:
        return found
    if os.access("/usr/local/go/bin/go", os.X_OK):
        return "/usr/local/go/bin/go"
    raise RuntimeError("go is not installed: the proxy is built from its source with the Go toolchain "
                       "(go.dev/dl, or Debian's golang-go), or give its release archive by URL")


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=3600, check=False
        )
    except FileNotFoundError as exc:
        raise RuntimeError(f"{cmd[0]} is not installed") from exc
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).strip().splitlines()
        interesting = [ln for ln in text if re.search(r"error|forbidden|not found|refused|denied", ln, re.I)]
        reason = (interesting or text or [f"exit {proc.returncode}"])[0].strip()
        # Go repeats the module path several times before the answer that matters.
        answer = re.search(r"reading (\S+): (\d{3} [^\\\n\"]+)", reason)
        if answer:
            reason = f"{answer.group(1)} answered {answer.group(2).strip()}"
        raise RuntimeError(f"{what}: {reason}")
    return proc.stdout


def _go_env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GOBIN": str(scratch / "bin"), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"})
    return env


def unpack_verified_source(src: dict[str, Any], scratch: Path) -> Path:
    """Unpack a source archive of the sources folder after checking its sha256; return its top directory."""
    archive = sources_dir() / src["archive"]
    if not archive.is_file():
        raise RuntimeError(f"{archive} is missing (set ZDMKIT_SOURCES to the folder that holds {src['archive']})")
    digest = sha256_of(archive)
    if digest != src["sha256"]:
        raise RuntimeError(f"{archive.name}: sha256 {digest}, expected {src['sha256']}")
    work = scratch / "src"
    work.mkdir()
    shutil.unpack_archive(archive, work)
    tops = [p for p in work.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise RuntimeError(f"{archive.name}: expected one top directory, found {[p.name for p in tops]}")
    return tops[0]


def _prebuilt(entry: dict[str, Any], scratch: Path) -> Path:
    """Copy an archive of the prebuilt folder into scratch, after checking its sha256 pinned in
    the source; the files inside are checked by verify() (sha256_members)."""
    src = entry["source"]
    archive = prebuilt_dir() / src["archive"]
    if not archive.is_file():
        raise RuntimeError(f"{archive} is missing (set ZDMKIT_PREBUILT to the folder that holds {src['archive']})")
    digest = sha256_of(archive)
    if digest != src["sha256"]:
        raise RuntimeError(f"{archive.name}: sha256 {digest}, expected {src['sha256']}")
    final = scratch / Path(entry["file"]).name
    shutil.copyfile(archive, final)
    # The copy is what gets cached: check it too, in case the folder changed while it was read.
    if sha256_of(final) != src["sha256"]:
        raise RuntimeError(f"{archive.name} changed while it was copied")
    return final


def archive_member_digests(path: Path) -> dict[str, str]:
    """sha256 of every regular file in a tarball, by member name. Links, devices and names that
    leave the archive's directory are refused: the roles unpack these archives as root."""
    found: dict[str, str] = {}
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                name = member.name
                if name.startswith("/") or ".." in Path(name).parts:
                    raise RuntimeError(f"{path.name}: member {name!r} leaves the archive's directory")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise RuntimeError(f"{path.name}: member {name!r} is not a regular file or directory")
                handle = archive.extractfile(member)
                if handle is None:
                    raise RuntimeError(f"{path.name}: member {name!r} cannot be read")
                digest = hashlib.sha256()
                while block := handle.read(1 << 20):
                    digest.update(block)
                found[name] = digest.hexdigest()
    except tarfile.TarError as exc:
        raise RuntimeError(f"{path.name}: not a readable tarball ({exc})") from exc
    return found


def go_version() -> str:
    return _run([go_tool(), "env", "GOVERSION"], "go env GOVERSION").strip()


def _go_source(entry: dict[str, Any], scratch: Path) -> Path:
    """`go build` of a released source archive: modules come from an on-disk module proxy in
    the sources folder first (those the Go module proxy refuses), then the usual GOPROXY."""
    src = entry["source"]
    top = unpack_verified_source(src, scratch)
    env = _go_env(scratch)
    upstream = _run([go_tool(), "env", "GOPROXY"], "go env GOPROXY").strip() or "https://proxy.golang.org,direct"
    chain = [f"file://{sources_dir() / d}" for d in src.get("goproxy", [])]
    env.update({"GOPROXY": ",".join([*chain, upstream]), "GOFLAGS": "-buildvcs=false -mod=readonly"})
    final = scratch / Path(entry["file"]).name
    _run([go_tool(), "build", "-trimpath", "-o", str(final), src["package"]], f"go build {src['package']} of "
         f"{src['archive']}", env=env, cwd=top)
    return final


def _maven_source(entry: dict[str, Any], scratch: Path) -> Path:
    """``mvn package`` of a released source archive (dependencies and plugins from Maven Central)."""
    src = entry["source"]
    top = unpack_verified_source(src, scratch)
    maven.build(top, ["package", *src.get("args", [])], f"mvn package of {src['archive']}")
    built = top / src["output"]
    if not built.is_file():
        raise RuntimeError(f"mvn package of {src['archive']}: {src['output']} not produced")
    final = scratch / Path(entry["file"]).name
    os.replace(built, final)
    return final


def _pip_build(entry: dict[str, Any], scratch: Path) -> Path:
    """Wheels of PyPI packages, each download checked against its pinned sha256; a package that
    PyPI has only as a source distribution is built into a wheel here."""
    src = entry["source"]
    requirements = scratch / "requirements.txt"
    pinned = zip(src["requirements"], src["sha256"], strict=True)
    requirements.write_text("".join(f"{req} --hash=sha256:{digest}\n" for req, digest in pinned), encoding="utf-8")
    downloads = scratch / "downloads"
    out = scratch / Path(entry["file"]).name
    out.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "download", "--no-deps", "--require-hashes", "-r", str(requirements), "--dest", str(downloads)],
         f"pip download {' '.join(src['requirements'])}")  # fmt: skip
    for path in sorted(downloads.iterdir()):
        if path.suffix == ".whl":
            shutil.copy2(path, out / path.name)
        else:  # a source distribution: build its wheel with the pinned build tools of this environment
            _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(path)],
                 f"pip wheel {path.name}")  # fmt: skip
    return out


def wheel_versions(path: Path) -> dict[str, str]:
    """{distribution name: version} of the wheels in a directory, from their file names."""
    found = {}
    for wheel in path.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        found[name.lower().replace("_", "-")] = version
    return found


def reported_version(entry: dict[str, Any], path: Path) -> str:
    name = entry["name"]
    if name == "cassandra":
        with tempfile.TemporaryDirectory(prefix="zdmkit-cassandra-") as tmp:
            shutil.unpack_archive(path, tmp)
            (dist,) = Path(tmp).iterdir()
            return cassandra_dist.reported_version(dist)
    if name == "dsbulk":
        return dsbulk_dist.reported_version(path)
    if name == "zdm-proxy":
        out = _run([str(path), "--version"], f"{path.name} --version")
        match = re.search(r"(\d+\.\d+\.\d+)", out)
        return match.group(1) if match else out.strip()
    if name == "cassandra-data-migrator":  # its jobs have no --version: the jar's own Maven record
        return jars.pom_version(path, "datastax.cdm:cassandra-data-migrator")
    if name == "dsbulk-migrator":
        return jars.jar_version(path)
    raise ValueError(f"no way to ask {name} for its version")


def verify(entry: dict[str, Any], path: Path) -> dict[str, str]:
    """Check the produced artifact against the manifest; return what was verified."""
    checks = entry["verify"] or {}
    verified: dict[str, str] = {}
    if path.is_file():
        verified["sha256"] = sha256_of(path)
    if checks.get("sha256") and checks["sha256"] != verified.get("sha256"):
        raise RuntimeError(f"sha256 mismatch: expected {checks['sha256']}, got {verified.get('sha256')}")
    if checks.get("sha256_files"):
        expected = checks["sha256_files"]
        found = {p.name: sha256_of(p) for p in path.iterdir()} if path.is_dir() else {}
        if found != expected:
            wrong = sorted(set(found.items()) ^ set(expected.items()))
            raise RuntimeError(f"files or sha256 differ from the manifest: {wrong[:3]}")
        verified["sha256_files"] = str(len(found))
    if checks.get("sha256_members"):
        expected = checks["sha256_members"]
        found = archive_member_digests(path) if path.is_file() else {}
        if found != expected:
            wrong = sorted(
                name for name in set(found) | set(expected) if found.get(name) != expected.get(name)
            )
            detail = ", ".join(
                f"{name} ({'sha256 ' + found[name] if name in found else 'missing'})" for name in wrong[:3]
            )
            raise RuntimeError(f"files inside differ from the manifest: {detail}")
        verified["sha256_members"] = str(len(found))
    by_go = checks.get("sha256_by_go_version") or {}
    if path.is_file() and by_go:
        toolchain = go_version()
        if toolchain in by_go and by_go[toolchain] != verified["sha256"]:
            raise RuntimeError(
                f"built with {toolchain}: sha256 {verified['sha256']}, expected {by_go[toolchain]} "
                "(the build is reproducible)"
            )
        verified["reproduced"] = "yes" if toolchain in by_go else f"no reference digest for {toolchain}"
    by_java = checks.get("content_sha256_by_java_version") or {}
    if path.is_file() and by_java:
        runtime = jars.java_version()
        verified["content_sha256"] = jars.content_digest(path)
        if runtime in by_java and by_java[runtime] != verified["content_sha256"]:
            raise RuntimeError(
                f"built with Java {runtime}: content sha256 {verified['content_sha256']}, expected "
                f"{by_java[runtime]} (the build is reproducible)"
            )
        verified["reproduced"] = "yes" if runtime in by_java else f"no reference digest for Java {runtime}"
    for coordinates, version in (checks.get("embedded_versions") or {}).items():
        got = jars.pom_version(path, coordinates)
        if got != version:
            raise RuntimeError(f"embeds {coordinates} {got}, expected {version}")
        verified[f"embeds {coordinates}"] = got
    if checks.get("wheel_versions"):
        found = wheel_versions(path)
        wrong = {k: found.get(k) for k, v in checks["wheel_versions"].items() if found.get(k) != v}
        if wrong:
            raise RuntimeError(f"wheels {wrong}, expected {checks['wheel_versions']}")
        verified["wheels"] = ", ".join(f"{k} {v}" for k, v in sorted(found.items()))
    if checks.get("reported_version"):
        got = reported_version(entry, path)
        if got != checks["reported_version"]:
            raise RuntimeError(f"reports version {got!r}, expected {checks['reported_version']!r}")
        verified["reported_version"] = got
    job = checks.get("spark_job")
    if job:
        if jars.spark_version() != job["spark"]:
            raise RuntimeError(
                f"the manifest checks it on Spark {job['spark']}, but the pinned pyspark is {jars.spark_version()}"
            )
        verified["runs_on_spark"] = jars.spark_job_starts(path, job["class"], job["expect"])
    return verified


def fetch(entry: dict[str, Any], cache: Path, force: bool = False) -> Outcome:
    target = cache / entry["file"]
    if not force and is_cached(cache, entry):
        return Outcome(entry["name"], target, "hit", "cached")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".partial-{entry['name']}-", dir=cache))
    try:
        try:
            produced = _produce(entry, scratch)
            verified = verify(entry, produced)
        except (RuntimeError, maven.MavenError, cassandra_dist.DistributionError, jars.JarError, OSError) as exc:
            raise ArtifactError(entry, str(exc)) from exc
        stamp = _stamp_path(cache, entry)
        stamp.unlink(missing_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(produced, target)
        record = {
            "entry": entry_digest(entry),
            "name": entry["name"],
            "version": entry["version"],
            "source": describe_source(entry),
            **verified,
        }
        write_json_atomic(stamp, record)
        detail = ", ".join(f"{k} {v}" for k, v in verified.items())
        return Outcome(entry["name"], target, "fetched", detail)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def clean_partials(cache: Path) -> None:
    """Remove scratch directories left by a run that was killed."""
    if cache.is_dir():
        for leftover in cache.glob(".partial-*"):
            shutil.rmtree(leftover, ignore_errors=True)
