"""Tests for the Cassandra distribution builder: POM, layout and reproducible archive.

mvn and java are replaced by small scripts, so nothing here needs a network or a JVM.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from zdmkit.artifacts import cassandra_dist as cd

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_tree(root: Path, order: list[str], mtime: int) -> Path:
    """A small tree written in the given file order with the given file times."""
    files = {
        "bin/launch": ("#!/bin/sh\necho hi\n", 0o775),
        "bin/env.sh": ("env\n", 0o755),
        "bin/plain": ("plain\n", 0o644),
        "conf/app.options": ("-Xss256k\n", 0o664),
        "lib/a.jar": ("jar-a", 0o600),
        "lib/z.jar": ("jar-z", 0o644),
        "conf/nested/deep.txt": ("deep", 0o644),
    }
    for rel in order:
        text, mode = files[rel]
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    return root


def _write_fake_tool(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


class TestNames:
    def test_dist_and_tarball_names(self):
        assert cd.dist_name("5.0.9") == "apache-cassandra-5.0.9"
        assert cd.tarball_name("5.0.9") == "apache-cassandra-5.0.9-bin.tar.gz"

    @pytest.mark.parametrize("bad", ["", "5", "latest", "5.0.9</version>", "../5.0.9", "5.0 .9"])
    def test_bad_versions_are_refused(self, bad):
        with pytest.raises(ValueError, match="not a Cassandra version"):
            cd.dist_name(bad)

    @pytest.mark.parametrize("good", ["5.0.9", "4.1.10", "5.1-beta1", "5.0"])
    def test_release_and_pre_release_versions_pass(self, good):
        assert cd.render_pom(good)


class TestPom:
    def test_pom_depends_only_on_cassandra_all(self):
        root = ET.fromstring(cd.render_pom("5.0.9"))  # noqa: S314 - XML we generated
        deps = root.findall("m:dependencies/m:dependency", POM_NS)
        assert len(deps) == 1
        dep = {child.tag.split("}")[1]: child.text for child in deps[0]}
        assert dep == {"groupId": "org.apache.cassandra", "artifactId": "cassandra-all", "version": "5.0.9"}

    def test_pom_is_an_aggregator_with_no_build_of_its_own(self):
        root = ET.fromstring(cd.render_pom("5.0.9"))  # noqa: S314 - XML we generated
        assert root.findtext("m:packaging", namespaces=POM_NS) == "pom"
        assert root.find("m:build", POM_NS) is None

    def test_pom_is_stable(self):
        assert cd.render_pom("5.0.9") == cd.render_pom("5.0.9")


class TestDeterministicTar:
    def test_same_content_gives_same_bytes(self, tmp_path):
        order = [
            "bin/launch",
            "bin/env.sh",
            "conf/app.options",
            "lib/a.jar",
            "lib/z.jar",
            "conf/nested/deep.txt",
        ]
        first = _make_tree(tmp_path / "one", order, mtime=1_000_000_000)
        second = _make_tree(tmp_path / "two", list(reversed(order)), mtime=1_700_000_000)
        out1 = cd.write_deterministic_tar(first, "pkg-1.0", tmp_path / "a" / "pkg.tar.gz")
        out2 = cd.write_deterministic_tar(second, "pkg-1.0", tmp_path / "b" / "pkg.tar.gz")
        assert _sha256(out1) == _sha256(out2)

    def test_entries_are_sorted_owned_by_root_and_time_stamped(self, tmp_path):
        tree = _make_tree(tmp_path / "t", ["lib/z.jar", "bin/launch", "lib/a.jar"], mtime=1_234_567_890)
        out = cd.write_deterministic_tar(tree, "pkg-1.0", tmp_path / "pkg.tar.gz")
        with tarfile.open(out) as tar:
            members = tar.getmembers()
        names = [m.name for m in members]
        assert names == [
            "pkg-1.0",
            "pkg-1.0/bin",
            "pkg-1.0/bin/launch",
            "pkg-1.0/lib",
            "pkg-1.0/lib/a.jar",
            "pkg-1.0/lib/z.jar",
        ]
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "root", "root")}
        assert {m.mtime for m in members} == {cd.FIXED_MTIME}

    def test_modes_are_normalised(self, tmp_path):
        tree = _make_tree(
            tmp_path / "t", ["bin/launch", "bin/env.sh", "bin/plain", "conf/app.options", "lib/a.jar"], 1
        )
        out = cd.write_deterministic_tar(tree, "pkg-1.0", tmp_path / "pkg.tar.gz")
        with tarfile.open(out) as tar:
            modes = {m.name.removeprefix("pkg-1.0/"): m.mode for m in tar.getmembers()}
        assert modes["pkg-1.0"] == 0o755
        assert modes["bin"] == 0o755
        assert modes["bin/launch"] == 0o755  # a command in bin/
        assert modes["bin/plain"] == 0o755  # a command even when the source lost its x bit
        assert modes["bin/env.sh"] == 0o644  # sourced, not run
        assert modes["conf/app.options"] == 0o644  # group-writable bit dropped
        assert modes["lib/a.jar"] == 0o644  # 0600 widened: the archive has no private files

    def test_gzip_header_has_no_name_or_time(self, tmp_path):
        tree = _make_tree(tmp_path / "t", ["lib/a.jar"], 1)
        out = cd.write_deterministic_tar(tree, "pkg-1.0", tmp_path / "pkg.tar.gz")
        header = out.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b"
        assert header[3] & 0x08 == 0, "FNAME flag set: the gzip header carries a file name"
        assert header[4:8] == b"\x00\x00\x00\x00", "gzip MTIME is not zero"
        assert gzip.decompress(out.read_bytes())

    def test_symlinks_are_refused(self, tmp_path):
        tree = _make_tree(tmp_path / "t", ["lib/a.jar"], 1)
        (tree / "lib" / "link.jar").symlink_to("a.jar")
        with pytest.raises(cd.DistributionError, match="symbolic link"):
            cd.write_deterministic_tar(tree, "pkg-1.0", tmp_path / "pkg.tar.gz")
        assert not (tmp_path / "pkg.tar.gz").exists()


class TestResources:
    def test_launchers_and_jvm_options_are_shipped(self):
        res = cd.RESOURCE_DIR
        for rel in ("bin/cassandra", "bin/nodetool", "bin/sstableloader"):
            assert os.access(res / rel, os.X_OK), f"{rel} is not executable"
        for rel in (
            "bin/cassandra.in.sh",
            "conf/logback.xml",
            "conf/logback-tools.xml",
            "conf/jvm-server.options",
            "conf/jvm17-server.options",
            "conf/jvm17-clients.options",
        ):
            assert (res / rel).is_file(), rel
        # cassandra.yaml is the role's business, never a default of the distribution.
        assert not (res / "conf" / "cassandra.yaml").exists()

    def test_java17_options_open_what_cassandra_needs(self):
        flags = {
            line.strip()
            for line in (cd.RESOURCE_DIR / "conf" / "jvm17-server.options").read_text().splitlines()
            if line.startswith("-")
        }
        for needed in (
            "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
            "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
            "-XX:+UseG1GC",
        ):
            assert needed in flags
        # Every flag is a single word: the launcher splits the file on blanks.
        assert all(" " not in flag for flag in flags)

    def test_logback_configs_are_well_formed(self):
        for name in ("logback.xml", "logback-tools.xml"):
            ET.parse(cd.RESOURCE_DIR / "conf" / name)  # noqa: S314 - files shipped here


class TestBuild:
    FAKE_MVN = """\
        # Stands in for `mvn dependency:copy-dependencies`: records its arguments, writes jars.
        echo "$@" > "$(dirname "$0")/mvn.args"
        for arg in "$@"; do
            case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;; esac
        done
        mkdir -p "$out"
        printf server > "$out/cassandra-all-5.0.9.jar"
        printf agent > "$out/jamm-0.4.0.jar"
        """

    def test_build_distribution_lays_out_the_upstream_tree(self, tmp_path):
        mvn = _write_fake_tool(tmp_path / "mvn", self.FAKE_MVN)
        (tmp_path / "dest").mkdir()
        out = cd.build_distribution("5.0.9", tmp_path / "dest", tmp_path / "work", mvn=mvn)
        assert out == tmp_path / "dest" / "apache-cassandra-5.0.9-bin.tar.gz"
        with tarfile.open(out) as tar:
            names = set(tar.getnames())
        top = "apache-cassandra-5.0.9"
        assert {n.split("/", 1)[0] for n in names} == {top}
        for rel in (
            "bin/cassandra",
            "bin/nodetool",
            "bin/sstableloader",
            "conf/jvm17-server.options",
            "conf/triggers",
            "lib/cassandra-all-5.0.9.jar",
            "lib/jamm-0.4.0.jar",
            "logs",
            "data",
        ):
            assert f"{top}/{rel}" in names

        args = (tmp_path / "mvn.args").read_text().split()
        assert "-B" in args and "-DincludeScope=runtime" in args
        assert f"{cd.DEPENDENCY_PLUGIN}:copy-dependencies" in args
        pom = ET.parse(tmp_path / "work" / "pom.xml").getroot()  # noqa: S314 - XML we generated
        assert pom.findtext("m:dependencies/m:dependency/m:artifactId", namespaces=POM_NS) == "cassandra-all"

    def test_dest_that_is_not_a_directory_is_the_archive_path(self, tmp_path):
        mvn = _write_fake_tool(tmp_path / "mvn", self.FAKE_MVN)
        out = cd.build_distribution("5.0.9", tmp_path / "cache" / "c.tar.gz", tmp_path / "work", mvn=mvn)
        assert out == tmp_path / "cache" / "c.tar.gz"
        assert out.is_file()

    def test_rebuild_gives_the_same_archive(self, tmp_path):
        mvn = _write_fake_tool(tmp_path / "mvn", self.FAKE_MVN)
        first = cd.build_distribution("5.0.9", tmp_path / "d1.tar.gz", tmp_path / "w", mvn=mvn)
        second = cd.build_distribution("5.0.9", tmp_path / "d2.tar.gz", tmp_path / "w", mvn=mvn)
        assert _sha256(first) == _sha256(second)

    def test_missing_server_jar_is_an_error(self, tmp_path):
        mvn = _write_fake_tool(tmp_path / "mvn", "exit 0\n")
        with pytest.raises(cd.DistributionError, match=re.escape("cassandra-all-5.0.9.jar")):
            cd.build_distribution("5.0.9", tmp_path / "dest", tmp_path / "work", mvn=mvn)

    def test_mvn_failure_carries_its_output(self, tmp_path):
        mvn = _write_fake_tool(tmp_path / "mvn", 'echo "Could not resolve dependencies" >&2\nexit 1\n')
        with pytest.raises(cd.DistributionError, match="Could not resolve dependencies"):
            cd.build_distribution("5.0.9", tmp_path / "dest", tmp_path / "work", mvn=mvn)


class TestReportedVersion:
    def test_last_line_of_get_version_is_returned(self, tmp_path):
        (tmp_path / "dist" / "lib").mkdir(parents=True)
        java = _write_fake_tool(tmp_path / "java", 'echo "some startup noise"\necho "5.0.9"\n')
        assert cd.reported_version(tmp_path / "dist", java=java) == "5.0.9"

    def test_directory_without_lib_is_refused(self, tmp_path):
        with pytest.raises(cd.DistributionError, match="no lib/"):
            cd.reported_version(tmp_path)
