"""The DSBulk distribution is unpacked safely on every Python: with tarfile's "data" filter where
it exists, with the same checks where it does not (before 3.11.4, e.g. Debian 12's 3.11.2)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from zdmkit.migrate.dsbulk import PreflightError, _extract


def _archive(members: list[tuple[str, str]]) -> tarfile.TarFile:
    """members: (name, link target or '' for a one-byte file)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


@pytest.fixture(params=["with the data filter", "without it"])
def python(request, monkeypatch):
    if request.param == "without it":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no data filter")
    return request.param


def test_a_distribution_with_links_inside_it_unpacks(python, tmp_path):
    _extract(_archive([("dsbulk-1/bin/dsbulk", ""), ("dsbulk-1/lib/run", "../bin/dsbulk")]), tmp_path)
    assert (tmp_path / "dsbulk-1" / "bin" / "dsbulk").read_bytes() == b"x"
    assert (tmp_path / "dsbulk-1" / "lib" / "run").is_symlink()


@pytest.mark.parametrize("members", [
    [("../outside", "")],
    [("/etc/outside", "")],
    [("dsbulk-1/l", "../../etc/passwd")],
    [("dsbulk-1/l", "/etc/passwd")],
], ids=["dot-dot", "absolute", "link-out", "absolute-link"])
def test_members_that_would_leave_the_directory_never_do(python, tmp_path, members):
    # refused, or (the data filter, for an absolute name) put inside the directory
    try:
        _extract(_archive(members), tmp_path / "dest")
    except (PreflightError, tarfile.TarError):
        pass
    else:
        assert python == "with the data filter" and members[0][0].startswith("/")
        assert (tmp_path / "dest" / members[0][0].lstrip("/")).is_file()
    assert not (tmp_path / "outside").exists()
    assert not Path("/etc/outside").exists()
