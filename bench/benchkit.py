"""What the deployment benchmarks share: the bench deployment (``bench/inventory``, the lab's
shape on a network of its own), playbook runs timed task by task, the CPU each container spent,
and latte runs with their latency percentiles.

Nothing here asserts a time: the benchmarks print what they measured next to their goals."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_INVENTORY = ROOT / "bench" / "inventory" / "hosts.yml"
VENV_BIN = Path(sys.executable).parent
LATTE_VERSION = "0.29.0"
LATTE_ROOT = Path(os.environ.get("ZDMKIT_TOOLS", os.path.expanduser("~/.cache/zdmkit/tools"))) / "latte"
LATTE_INSTALL = f"cargo install --locked latte-cli --version {LATTE_VERSION} --root {LATTE_ROOT}"


def playbook_env() -> dict[str, str]:
    """The environment `make` gives the playbooks: the venv first on PATH, the base image's tag."""
    env = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    if not os.environ.get("ZDMKIT_BASE_IMAGE"):
        tag = subprocess.run([str(ROOT / "images/bookworm-systemd/build.sh"), "--tag"], capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
        env["ZDMKIT_BASE_IMAGE"] = tag
    return env


def playbook_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else (ROOT / "playbooks" / name if "/" not in name else ROOT / name)


def run_playbook(name: str, inventory: str | Path, extravars: dict | None = None,
                 env: dict | None = None, *, project_facts: bool = False) -> dict[str, Any]:  # fmt: skip
    """One playbook run through ansible-runner: wall seconds, the recap, each task's wall time
    across hosts (first start to last end, with its role), and the messages of debug tasks.

    ``project_facts``: run as ``ansible-playbook`` from the project's root does, with the
    project's fact cache (ansible.cfg), not the new one ansible-runner gives each run."""
    import ansible_runner

    facts = {"ANSIBLE_CACHE_PLUGIN_CONNECTION": str(ROOT / ".cache" / "ansible-facts")} if project_facts else {}
    spans: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    messages: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zdmkit-bench-") as private:
        started = time.monotonic()
        wall_start = time.time()
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(ROOT),
            playbook=str(playbook_path(name)),
            inventory=str(inventory),
            extravars=extravars or {},
            envvars={**playbook_env(), **facts, **(env or {})},
            quiet=True,
            fact_cache_type="project" if project_facts else "jsonfile",
        )
        wall = time.monotonic() - started
        for event in runner.events:
            data = event.get("event_data", {})
            if event.get("event") == "runner_on_ok":
                msg = (data.get("res") or {}).get("msg")
                if isinstance(msg, str):
                    messages.append(msg)
            # (a skipped meta task's event has no times)
            if not event.get("event", "").startswith("runner_on_") or not all(
                isinstance(data.get(k), str) for k in ("start", "end")
            ):
                continue
            # roles share task names ("Remember the inputs that passed the checks"): keep the role
            key = (data.get("play", ""), data.get("role", "") or "", data.get("task", ""))
            spans[key] += [_stamp(data["start"]), _stamp(data["end"])]
        stats = runner.stats or {}
        tail = runner.stdout.read()[-6000:] if runner.status != "successful" else ""
    tasks = sorted(
        ({"play": play, "role": role, "task": task, "seconds": round(max(t) - min(t), 2), "start": min(t),
          "end": max(t)} for (play, role, task), t in spans.items()),
        key=lambda t: -t["seconds"],
    )  # fmt: skip
    hosts = sorted(set().union(*(stats.get(k, {}) for k in ("ok", "changed", "failures", "dark"))))
    return {
        "playbook": str(name),
        "status": runner.status,
        "rc": runner.rc,
        "started": wall_start,
        "seconds": round(wall, 1),
        "hosts": len(hosts),
        "changed": sum(stats.get("changed", {}).values()),
        "failed": sum(stats.get("failures", {}).values()) + sum(stats.get("dark", {}).values()),
        "tasks": tasks,
        "messages": messages,
        "output_tail": tail,
    }


def _stamp(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def checked(result: dict[str, Any]) -> dict[str, Any]:
    if result["status"] != "successful":
        raise RuntimeError(f"{result['playbook']} failed ({result['status']}):\n{result['output_tail']}")
    return result


@dataclass
class Deployment:
    """The hosts of an inventory by group, with their service addresses."""

    inventory: Path
    groups: dict[str, list[str]]
    address: dict[str, str]

    @classmethod
    def read(cls, inventory: str | Path = BENCH_INVENTORY) -> Deployment:
        out = subprocess.run(
            [str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **playbook_env()},
        ).stdout
        data = json.loads(out)
        hostvars = data["_meta"]["hostvars"]
        groups = {g: v.get("hosts", []) for g, v in data.items() if isinstance(v, dict) and "hosts" in v}
        address = {h: v["service_address"] for h, v in hostvars.items() if "service_address" in v}
        return cls(Path(inventory), groups, address)

    def hosts(self, group: str) -> list[str]:
        return self.groups.get(group, [])

    @property
    def containers(self) -> list[str]:
        return sorted(self.address)

    def running(self) -> bool:
        names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True,
                               check=True).stdout.split()  # fmt: skip
        return all(c in names for c in self.containers)

    def recorded_phase(self) -> int:
        state = self.inventory.parent / "state" / "phase.json"
        return int(json.loads(state.read_text())["phase"]) if state.exists() else 0

    def exec(self, host: str, *argv: str, check: bool = True) -> str:
        return subprocess.run(["docker", "exec", host, *argv], capture_output=True, text=True,
                              check=check).stdout  # fmt: skip


def container_cpu_seconds(names: list[str]) -> dict[str, float]:
    """CPU seconds each container has used so far (its cgroup's cpuacct, v1 or v2)."""
    usage = {}
    for name in names:
        cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True,
                             check=False).stdout.strip()  # fmt: skip
        if not cid:
            continue
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        # cgroup v2: under systemd's docker-<id>.scope, or docker/<id> with the cgroupfs driver
        v2 = [Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
              Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")]  # fmt: skip
        if v1.exists():
            usage[name] = int(v1.read_text()) / 1e9
        for stat in (p for p in v2 if p.exists()):
            usage[name] = int(re.search(r"usage_usec (\d+)", stat.read_text()).group(1)) / 1e6
            break
    return usage


def latte_binary() -> Path:
    path = LATTE_ROOT / "bin" / "latte"
    if not path.exists():
        raise SystemExit(f"latte {LATTE_VERSION} is not installed at {path}: {LATTE_INSTALL}")
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False).stdout
    if LATTE_VERSION not in version:
        raise SystemExit(f"{path} is {version.strip() or 'unknown'}, not latte {LATTE_VERSION}: {LATTE_INSTALL}")
    return path


@dataclass
class LatteRun:
    """The summary of one ``latte run``: latencies in milliseconds, over the measured part only."""

    label: str
    rate: float | None
    seconds: float
    ops: int
    throughput: float
    p50: float
    p95: float
    p99: float
    p999: float
    max: float
    errors: int
    request_errors: int
    retries: int
    error_kinds: list[str]
    cpu_s: float
    by_function: dict[str, dict[str, float]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


class Latte:
    """latte runs of one workload script against a list of contact points."""

    def __init__(self, workload: Path, username: str, password: str) -> None:
        self.binary = latte_binary()
        self.workload = workload
        self.env = {**os.environ, "CASSANDRA_USER": username, "CASSANDRA_PASSWORD": password}
        self.workdir = Path(tempfile.mkdtemp(prefix="zdmkit-latte-"))

    def version(self) -> str:
        return subprocess.run([str(self.binary), "--version"], capture_output=True, text=True,
                              check=False).stdout.strip()  # fmt: skip

    def _call(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        run = subprocess.run([str(self.binary), *argv], capture_output=True, text=True, env=self.env,
                             cwd=self.workdir, timeout=timeout, check=False)  # fmt: skip
        if run.returncode != 0:
            raise RuntimeError(f"latte {' '.join(argv[:2])} failed ({run.returncode}):\n{run.stdout[-3000:]}"
                               f"\n{run.stderr[-3000:]}")  # fmt: skip
        return run

    def schema(self, host: str, params: dict | None = None) -> None:
        self._call(["schema", str(self.workload), *self._params(params), host], timeout=180)

    def load(self, host: str, params: dict | None = None, rate: int | None = None) -> None:
        """``latte load``: the workload's erase, then its load function over its load cycles."""
        argv = ["load", str(self.workload), "-q", *self._params(params), host]
        if rate:
            argv[3:3] = ["--rate", str(rate)]
        self._call(argv, timeout=900)

    def run(self, label: str, hosts: list[str], functions: list[str], *, rate: float | None, duration_s: int,
            warmup: str = "5s", concurrency: int = 128, threads: int = 1, connections: int = 1,
            params: dict | None = None, extra: list[str] | None = None) -> LatteRun:  # fmt: skip
        """One measured run after ``warmup`` (latte's -w: a duration such as "5s" or a count of
        cycles; latte runs it unthrottled and does not count it). Bounded: latte stops after the
        duration, and the process is killed past twice that."""
        out = self.workdir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-{time.time_ns()}.json"
        argv = ["run", str(self.workload), "-q", "-d", f"{duration_s}s", "-w", str(warmup), "-s", "1s",
                "-p", str(concurrency), "-t", str(threads), "-c", str(connections), "-o", str(out)]  # fmt: skip
        for f in functions:
            argv += ["-f", f]
        if rate:
            argv += ["--rate", str(rate)]
        argv += [*self._params(params), *(extra or []), *hosts]
        started = time.time()
        self._call(argv, timeout=2 * duration_s + 120)
        return self.summary(label, rate, json.loads(out.read_text()), started)

    @staticmethod
    def _params(params: dict | None) -> list[str]:
        return [a for k, v in (params or {}).items() for a in ("-P", f"{k}={v}")]

    @staticmethod
    def summary(label: str, rate: float | None, report: dict[str, Any], started: float) -> LatteRun:
        """The numbers of latte 0.29's JSON report: ``result`` is its BenchmarkStats; a latency
        distribution's ``percentiles`` list the values (ms) of the report's ``percentiles``."""
        levels = report["percentiles"]
        r = report["result"]
        pct = _percentiles(r["cycle_latency"], levels)
        samples = []
        for s in r.get("log", []):
            sp = _percentiles(s["cycle_latency"], levels)
            samples.append({"t": round(s["time_s"], 1), "ops": s["cycle_count"], "errors": s["cycle_error_count"],
                            "request_errors": s["req_error_count"], "retries": s["req_retry_count"],
                            "throughput": round(s["cycle_throughput"], 1), "p50": sp["50"], "p99": sp["99"],
                            "max": sp["100"]})  # fmt: skip
        by_function = {}
        for name, dist in sorted(r.get("cycle_latency_by_fn", {}).items()):
            fp = _percentiles(dist, levels)
            by_function[name] = {"p50": fp["50"], "p95": fp["95"], "p99": fp["99"]}
        kinds = sorted(set(r.get("errors", [])) | {e for s in r.get("log", []) for e in s.get("req_errors", [])})
        return LatteRun(
            label=label, rate=rate, seconds=round(r["elapsed_time_s"], 1), ops=r["cycle_count"],
            throughput=round(r["cycle_throughput"]["value"], 1), p50=pct["50"], p95=pct["95"], p99=pct["99"],
            p999=pct["99.9"], max=pct["100"], errors=r["error_count"],
            request_errors=sum(s["request_errors"] for s in samples), retries=r.get("request_retry_count", 0),
            error_kinds=kinds[:5], cpu_s=round(r.get("cpu_time_s", 0), 1), by_function=by_function,
            samples=samples, started=started,
        )  # fmt: skip


def _percentiles(latency: dict[str, Any], levels: list[float]) -> dict[str, float]:
    """A latency distribution's percentiles in ms, by level ("50", "99.9", "100"): latte writes
    them as a list of means ({n, value, std_err}) in the order of the report's levels."""
    return {f"{level:g}": round(entry["value"], 2) for level, entry in zip(levels, latency["percentiles"], strict=True)}
