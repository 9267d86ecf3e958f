"""The artifact cache: verification, atomic placement, cache hits, and one-line errors."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from zdmkit.artifacts import cli
from zdmkit.artifacts import fetch as f


def _entry(**over):
    entry = {
        "name": "thing",
        "version": "1.0",
        "file": "thing-1.0.bin",
        "source": {"kind": "maven", "coordinates": "org.example:thing:1.0"},
        "verify": {},
        "needed_by": ["test"],
    }
    entry.update(over)
    return entry


def _producing(content: bytes):
    def produce(entry, scratch):
        path = scratch / "thing-1.0.bin"
        path.write_bytes(content)
        return path

    return produce


def test_manifest_entries_are_complete_and_pinned():
    entries = f.load_manifest()
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    for entry in entries:
        assert entry["verify"], f"{entry['name']}: nothing verifies it"
        if entry["source"]["kind"] in ("maven", "maven-assembly"):
            assert len(entry["verify"].get("sha256") or "") == 64, entry["name"]
        if entry["source"]["kind"].endswith("-source") or entry["source"]["kind"] == "prebuilt":
            assert len(entry["source"].get("sha256") or "") == 64, entry["name"]
        if entry["source"]["kind"] == "prebuilt":
            assert entry["verify"]["sha256"] == entry["source"]["sha256"], entry["name"]
            assert entry["verify"].get("sha256_members"), f"{entry['name']}: the files inside are not pinned"
        assert set(entry["needed_by"]) <= {"lab", "test"}


def test_fetch_places_verified_file_and_second_run_is_a_hit(tmp_path, monkeypatch):
    content = b"payload"

    entry = _entry(verify={"sha256": hashlib.sha256(content).hexdigest()})
    monkeypatch.setattr(f, "_produce", _producing(content))
    first = f.fetch(entry, tmp_path)
    assert first.status == "fetched"
    assert (tmp_path / "thing-1.0.bin").read_bytes() == content

    monkeypatch.setattr(f, "_produce", lambda *_: pytest.fail("a cache hit must not produce again"))
    assert f.fetch(entry, tmp_path).status == "hit"


def test_wrong_checksum_leaves_the_cache_clean(tmp_path, monkeypatch):
    entry = _entry(verify={"sha256": "0" * 64})
    monkeypatch.setattr(f, "_produce", _producing(b"tampered"))
    with pytest.raises(f.ArtifactError) as err:
        f.fetch(entry, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("artifact thing 1.0 from Maven Central org.example:thing:1.0: sha256 mismatch")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failed_source_leaves_the_cache_clean(tmp_path, monkeypatch):
    def broken(entry, scratch):
        (scratch / "half-written").write_bytes(b"x" * 10)
        raise RuntimeError("go install example.org/x@abc: 403 Forbidden")

    monkeypatch.setattr(f, "_produce", broken)
    with pytest.raises(f.ArtifactError, match="403 Forbidden"):
        f.fetch(_entry(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_changed_manifest_entry_is_not_a_hit(tmp_path, monkeypatch):
    monkeypatch.setattr(f, "_produce", _producing(b"v1"))
    f.fetch(_entry(), tmp_path)
    assert f.is_cached(tmp_path, _entry())
    assert not f.is_cached(tmp_path, _entry(version="1.1"))


def test_corrupted_cached_file_is_not_a_hit(tmp_path, monkeypatch):
    monkeypatch.setattr(f, "_produce", _producing(b"good"))
    f.fetch(_entry(), tmp_path)
    (tmp_path / "thing-1.0.bin").write_bytes(b"bad")
    assert not f.is_cached(tmp_path, _entry())


def test_fetch_cli_reports_one_line_per_failed_required_artifact(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZDMKIT_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(f, "load_manifest", lambda: [_entry(), _entry(name="extra", needed_by=["lab"])])

    def broken(entry, scratch):
        raise RuntimeError("mvn dependency:copy org.example:thing:1.0: Could not resolve")

    monkeypatch.setattr(f, "_produce", broken)
    assert cli.main(["fetch", "--for", "test"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: artifact thing 1.0 from Maven Central")
    assert err[1].startswith("warning: artifact extra 1.0") and err[1].endswith("(not needed for test)")
    assert cli.main(["check", "--for", "lab"]) == 1
    assert "lab needs artifact extra 1.0" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_clean_partials_removes_leftovers_of_a_killed_run(tmp_path):
    (tmp_path / ".partial-cassandra-abc").mkdir()
    (tmp_path / ".partial-cassandra-abc" / "lib.jar").write_bytes(b"x")
    f.clean_partials(tmp_path)
    assert not (tmp_path / ".partial-cassandra-abc").exists()


def test_source_archive_with_another_digest_is_refused_before_use(tmp_path, monkeypatch):
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "thing-1.0-src.tar.gz").write_bytes(b"not the released archive")
    monkeypatch.setenv("ZDMKIT_SOURCES", str(sources))
    entry = _entry(source={"kind": "go-source", "archive": "thing-1.0-src.tar.gz", "sha256": "0" * 64,
                           "goproxy": [], "package": "./cmd"})
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(f.ArtifactError, match=r"thing-1.0-src.tar.gz: sha256 [0-9a-f]{64}, expected 0{64}"):
        f.fetch(entry, cache)
    assert list(cache.iterdir()) == []


def test_missing_sources_folder_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("ZDMKIT_SOURCES", str(tmp_path / "nowhere"))
    entry = _entry(source={"kind": "go-source", "archive": "thing-1.0-src.tar.gz", "sha256": "0" * 64,
                           "goproxy": [], "package": "./cmd"})
    with pytest.raises(f.ArtifactError, match="set ZDMKIT_SOURCES to the folder"):
        f.fetch(entry, tmp_path)


def test_reproducible_go_build_with_another_digest_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(f, "go_version", lambda: "go1.99.0")
    monkeypatch.setattr(f, "_produce", _producing(b"rebuilt"))
    entry = _entry(verify={"sha256_by_go_version": {"go1.99.0": "0" * 64}})
    with pytest.raises(f.ArtifactError, match=r"built with go1\.99\.0: sha256"):
        f.fetch(entry, tmp_path)
    other = _entry(verify={"sha256_by_go_version": {"go1.1.0": "0" * 64}})
    assert "no reference digest for go1.99.0" in f.fetch(other, tmp_path).detail


def _tarball(path: Path, members: dict[str, bytes], symlink: str | None = None) -> str:
    """Write a gzip tarball with these files (and optionally a symlink); return its sha256."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if symlink:
            link = tarfile.TarInfo(symlink)
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            archive.addfile(link)
    return hashlib.sha256(path.read_bytes()).hexdigest()


BUNDLE_FILES = {"thing-1.0/thing": b"#!/bin/sh\n", "thing-1.0/plugins/A-1.0.tar.gz": b"plugin"}


def _prebuilt_entry(archive_sha: str, members: dict[str, bytes] = BUNDLE_FILES) -> dict:
    return _entry(
        file="thing-1.0.tar.gz",
        source={"kind": "prebuilt", "archive": "thing-1.0.tar.gz", "sha256": archive_sha},
        verify={
            "sha256": archive_sha,
            "sha256_members": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
        },
    )


@pytest.fixture
def prebuilt(tmp_path, monkeypatch) -> tuple[Path, Path]:
    folder, cache = tmp_path / "prebuilt", tmp_path / "cache"
    folder.mkdir()
    cache.mkdir()
    monkeypatch.setenv("ZDMKIT_PREBUILT", str(folder))
    return folder, cache


def test_prebuilt_archive_is_cached_after_its_files_verified(prebuilt):
    folder, cache = prebuilt
    digest = _tarball(folder / "thing-1.0.tar.gz", BUNDLE_FILES)
    entry = _prebuilt_entry(digest)
    outcome = f.fetch(entry, cache)
    assert outcome.status == "fetched"
    assert "sha256_members 2" in outcome.detail
    assert (cache / "thing-1.0.tar.gz").read_bytes() == (folder / "thing-1.0.tar.gz").read_bytes()
    assert f.fetch(entry, cache).status == "hit"
    assert f.describe_source(entry) == f"prebuilt archive thing-1.0.tar.gz in {folder.resolve()}"


def test_prebuilt_archive_with_another_digest_is_refused_and_the_cache_stays_clean(prebuilt):
    folder, cache = prebuilt
    _tarball(folder / "thing-1.0.tar.gz", BUNDLE_FILES)
    with pytest.raises(f.ArtifactError, match=r"thing-1.0.tar.gz: sha256 [0-9a-f]{64}, expected 0{64}"):
        f.fetch(_prebuilt_entry("0" * 64), cache)
    assert list(cache.iterdir()) == []


def test_prebuilt_archive_with_a_changed_file_inside_is_refused(prebuilt):
    folder, cache = prebuilt
    tampered = {**BUNDLE_FILES, "thing-1.0/plugins/A-1.0.tar.gz": b"another plugin"}
    digest = _tarball(folder / "thing-1.0.tar.gz", tampered)
    # The archive's own digest is pinned to what is there; the file inside is not what was pinned.
    entry = _prebuilt_entry(digest)
    with pytest.raises(f.ArtifactError) as err:
        f.fetch(entry, cache)
    message = str(err.value)
    assert "files inside differ from the manifest: thing-1.0/plugins/A-1.0.tar.gz (sha256 " in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []


def test_prebuilt_archive_with_an_extra_or_missing_file_is_refused(prebuilt):
    folder, cache = prebuilt
    extra = {**BUNDLE_FILES, "thing-1.0/plugins/B-1.0.tar.gz": b"unpinned plugin"}
    entry = _prebuilt_entry(_tarball(folder / "thing-1.0.tar.gz", extra), BUNDLE_FILES)
    with pytest.raises(f.ArtifactError, match=r"thing-1.0/plugins/B-1.0.tar.gz \(sha256"):
        f.fetch(entry, cache)
    fewer = {"thing-1.0/thing": BUNDLE_FILES["thing-1.0/thing"]}
    entry = _prebuilt_entry(_tarball(folder / "thing-1.0.tar.gz", fewer), BUNDLE_FILES)
    with pytest.raises(f.ArtifactError, match=r"thing-1.0/plugins/A-1.0.tar.gz \(missing\)"):
        f.fetch(entry, cache)
    assert list(cache.iterdir()) == []


def test_prebuilt_archive_with_a_link_inside_is_refused(prebuilt):
    folder, cache = prebuilt
    digest = _tarball(folder / "thing-1.0.tar.gz", BUNDLE_FILES, symlink="thing-1.0/passwd")
    with pytest.raises(f.ArtifactError, match=r"member 'thing-1\.0/passwd' is not a regular file"):
        f.fetch(_prebuilt_entry(digest), cache)
    assert list(cache.iterdir()) == []


def test_missing_prebuilt_folder_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("ZDMKIT_PREBUILT", str(tmp_path / "nowhere"))
    with pytest.raises(f.ArtifactError, match=r"set ZDMKIT_PREBUILT to the folder that holds thing-1\.0\.tar\.gz"):
        f.fetch(_prebuilt_entry("0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_prebuilt_folder_defaults_to_shared_artifacts_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("ZDMKIT_PREBUILT", raising=False)
    root = Path(f.__file__).resolve().parents[3]
    assert f.prebuilt_dir() == (root / ".." / "shared" / "artifacts").resolve()


def _jar(path, entries, when):
    import zipfile

    with zipfile.ZipFile(path, "w") as jar:
        for name, data in entries.items():
            jar.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return path


def test_jar_content_digest_ignores_entry_times_and_the_build_date_only(tmp_path):
    from zdmkit.artifacts import jars

    pom = "META-INF/maven/org.example/thing/pom.properties"
    first = _jar(tmp_path / "a.jar", {"A.class": b"code", pom: b"#Generated by Maven\n#Tue Dec 01 12:47:45 UTC 2026\n"
                                      b"version=1.0"}, (2026, 12, 1, 12, 47, 45))  # fmt: skip
    again = _jar(tmp_path / "b.jar", {pom: b"#Generated by Maven\n#Wed Dec 02 08:00:00 UTC 2026\nversion=1.0",
                                      "A.class": b"code"}, (2026, 12, 2, 8, 0, 0))  # fmt: skip
    other = _jar(tmp_path / "c.jar", {"A.class": b"other code", pom: b"version=1.0"}, (2026, 12, 1, 12, 47, 45))
    assert jars.content_digest(first) == jars.content_digest(again)
    assert jars.content_digest(first) != jars.content_digest(other)
    assert jars.pom_version(first, "org.example:thing") == "1.0"
    with pytest.raises(jars.JarError, match=r"has no META-INF/maven/org\.example/else/pom\.properties"):
        jars.pom_version(first, "org.example:else")


def test_rebuilt_jar_with_other_content_is_refused(tmp_path, monkeypatch):
    from zdmkit.artifacts import jars

    monkeypatch.setattr(jars, "java_version", lambda: "17.0.99")

    def produce(entry, scratch):
        return _jar(scratch / "thing-1.0.bin", {"A.class": b"patched"}, (2026, 1, 1, 0, 0, 0))

    monkeypatch.setattr(f, "_produce", produce)
    entry = _entry(verify={"content_sha256_by_java_version": {"17.0.99": "0" * 64}})
    expected = r"built with Java 17\.0\.99: content sha256 [0-9a-f]{64}, expected 0{64}"
    with pytest.raises(f.ArtifactError, match=expected):
        f.fetch(entry, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_maven_source_archive_with_another_digest_is_refused_before_the_build(tmp_path, monkeypatch):
    sources = tmp_path / "sources"
    sources.mkdir()
    (sources / "thing-1.0-src.tar.gz").write_bytes(b"not the released archive")
    monkeypatch.setenv("ZDMKIT_SOURCES", str(sources))
    monkeypatch.setattr(f.maven, "build", lambda *_: pytest.fail("an unverified archive must not be built"))
    entry = _entry(source={"kind": "maven-source", "archive": "thing-1.0-src.tar.gz", "sha256": "0" * 64,
                           "output": "target/thing-1.0.jar"})  # fmt: skip
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(f.ArtifactError, match=r"from source archive thing-1.0-src.tar.gz in .*: thing-1.0-src.tar.gz: "
                                              r"sha256 [0-9a-f]{64}, expected 0{64}"):  # fmt: skip
        f.fetch(entry, cache)
    assert list(cache.iterdir()) == []


def test_wheel_directory_must_hold_the_pinned_versions(tmp_path, monkeypatch):
    def produce(entry, scratch):
        out = scratch / "wheels"
        out.mkdir()
        (out / "pyspark-4.2.1-py2.py3-none-any.whl").write_bytes(b"w")
        (out / "py4j-0.10.9.9-py2.py3-none-any.whl").write_bytes(b"w")
        return out

    monkeypatch.setattr(f, "_produce", produce)
    entry = _entry(file="wheels", verify={"wheel_versions": {"pyspark": "4.3.0", "py4j": "0.10.9.9"}})
    with pytest.raises(f.ArtifactError, match=r"wheels \{'pyspark': '4.2.1'\}"):
        f.fetch(entry, tmp_path)


def test_spark_artifacts_follow_the_pinned_pyspark():
    from pathlib import Path

    constraints = (Path(__file__).resolve().parents[2] / "requirements" / "constraints.txt").read_text()
    pinned = next(line.split("==")[1] for line in constraints.splitlines() if line.startswith("pyspark=="))
    entries = {e["name"]: e for e in f.load_manifest()}
    assert entries["cassandra-data-migrator"]["verify"]["spark_job"]["spark"] == pinned
    assert entries["spark-wheels"]["verify"]["wheel_versions"]["pyspark"] == pinned
    assert f"pyspark=={pinned}" in entries["spark-wheels"]["source"]["requirements"]


def test_artifacts_sharing_a_tool_are_fetched_one_after_the_other():
    entries = [_entry(name="a"), _entry(name="proxy", source={"kind": "go-source"}),
               _entry(name="b", source={"kind": "maven-source"}), _entry(name="c", source={"kind": "maven-assembly"}),
               _entry(name="w", source={"kind": "pip-build"}), _entry(name="p", source={"kind": "prebuilt"})]
    assert [[e["name"] for e in lane] for lane in cli.lanes(entries)] == [["a", "b", "c"], ["proxy"], ["w"], ["p"]]


def test_lanes_run_side_by_side_and_every_artifact_is_reported(tmp_path, monkeypatch, capsys):
    import threading

    monkeypatch.setenv("ZDMKIT_ARTIFACTS", str(tmp_path))
    two = _entry(name="two", file="two.bin", source={"kind": "go-source", "archive": "two.tar.gz"})
    monkeypatch.setattr(f, "load_manifest", lambda: [_entry(name="one", file="one.bin"), two])
    both_running = threading.Barrier(2, timeout=10)  # each waits for the other: only side by side do both pass

    def produce(entry, scratch):
        both_running.wait()
        path = scratch / entry["file"]
        path.write_bytes(entry["name"].encode())
        return path

    monkeypatch.setattr(f, "_produce", produce)
    assert cli.main(["fetch"]) == 0
    out = capsys.readouterr().out
    assert "one " in out and "two " in out and out.count("fetched") == 2
    assert (tmp_path / "one.bin").read_bytes() == b"one"
