"""The artifact cache: verification, atomic placement, cache hits, and one-line errors."""

from __future__ import annotations

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
        assert set(entry["needed_by"]) <= {"lab", "test"}


def test_fetch_places_verified_file_and_second_run_is_a_hit(tmp_path, monkeypatch):
    content = b"payload"
    import hashlib

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
