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
