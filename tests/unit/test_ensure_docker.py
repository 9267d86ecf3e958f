"""scripts/ensure-docker.sh: never touches an engine that answers; one clear line when none is obtainable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "ensure-docker.sh"


def _tool(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run(tmp_path: Path, tools: dict[str, str], wait: int = 2) -> subprocess.CompletedProcess[str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in tools.items():
        _tool(bindir, name, body)
    # Only these stand-ins and the basic utilities the script uses are on PATH.
    for util in ("dirname", "mkdir", "seq", "sleep", "tail", "tr", "id", "cat", "nohup", "rm", "touch"):
        real = subprocess.run(["sh", "-c", f"command -v {util}"], capture_output=True, text=True).stdout.strip()
        if real:
            (bindir / util).symlink_to(real)
    run_dir = tmp_path / "run"
    (run_dir / "docker" / "containerd").mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": str(bindir),
        "ZDMKIT_DOCKERD_LOG": str(tmp_path / "dockerd.log"),
        "ZDMKIT_DOCKERD_WAIT": str(wait),
        "ZDMKIT_DOCKER_RUN_DIR": str(run_dir),
    }
    return subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_engine_that_answers_is_left_alone(tmp_path):
    marker = tmp_path / "dockerd-started"
    proc = _run(tmp_path, {
        "docker": 'case "$1" in info) exit 0;; version) echo 27.0;; esac',
        "dockerd": f"touch {marker}",
    })
    assert proc.returncode == 0, proc.stderr
    assert "engine answers" in proc.stdout
    assert not marker.exists()


def test_no_engine_obtainable_fails_with_one_line(tmp_path):
    proc = _run(tmp_path, {
        "docker": "exit 1",
        "apt-get": 'case "$1" in update) exit 0;; *) echo "E: Unable to locate package docker.io" >&2; exit 100;; esac',
    })
    if os.geteuid() != 0:
        assert proc.returncode == 1
        assert proc.stderr.strip().startswith("docker: no engine answers")
        return
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("docker:")]
    assert errors == ["docker: apt-get install docker.io failed: no Docker engine obtainable from the Debian mirror"]


def test_dockerd_that_exits_while_starting_names_the_log(tmp_path):
    proc = _run(tmp_path, {"docker": "exit 1", "dockerd": "echo 'failed to start daemon: permission denied'"}, wait=20)
    if os.geteuid() != 0:
        pytest.skip("starting dockerd is only tried as root")
    assert proc.returncode == 1
    assert "dockerd exited while starting" in proc.stderr
    assert "permission denied" in proc.stderr


def test_engine_that_never_answers_names_the_log(tmp_path):
    proc = _run(tmp_path, {"docker": "exit 1", "dockerd": "echo 'starting up'; exec sleep 4"})
    if os.geteuid() != 0:
        pytest.skip("starting dockerd is only tried as root")
    assert proc.returncode == 1
    assert "dockerd did not answer within 2 s" in proc.stderr
    assert "starting up" in proc.stderr


def test_pid_files_of_daemons_that_are_gone_are_removed_before_the_start(tmp_path):
    # A machine stopped with dockerd running: its pid files name processes that are gone now
    # (here: this test's own pid, which is not a dockerd, and a pid that is not running).
    run_dir = tmp_path / "run"
    (run_dir / "docker" / "containerd").mkdir(parents=True)
    (run_dir / "docker.pid").write_text(str(os.getpid()))
    (run_dir / "docker" / "containerd" / "containerd.pid").write_text("4194304")
    started = tmp_path / "dockerd-started"
    proc = _run(tmp_path, {
        "docker": f'[ -e {started} ] || exit 1; case "$1" in info) exit 0;; version) echo 27.0;; esac',
        "dockerd": f"[ -e {tmp_path}/run/docker.pid ] && exit 1; touch {started}; exec sleep 4",
    }, wait=20)
    if os.geteuid() != 0:
        pytest.skip("starting dockerd is only tried as root")
    assert proc.returncode == 0, proc.stderr
    assert f"removing stale {run_dir}/docker.pid" in proc.stdout
    assert f"removing stale {run_dir}/docker/containerd/containerd.pid" in proc.stdout
    assert "engine answers (27.0)" in proc.stdout
    assert not (run_dir / "docker.pid").exists()
