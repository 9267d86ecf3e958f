"""The ZDM proxy's overhead: one workload straight to Origin, through one proxy and through all
three, at fixed rates and unthrottled, measured side by side in one run on the bench deployment.

    .venv/bin/python bench/proxy_bench.py

The bench deployment (``bench/inventory``: the lab's shape on 172.30.95.0/24, containers
``bench-*``) is deployed with the project's playbooks when it is not up (``lab.yml``, then
``site.yml``), moved to phase 1 (``phase1.yml``: dual writes, read mode PRIMARY_ONLY) and removed
at the end unless ``--keep``. latte runs on this machine against the containers' addresses; it
is installed once with ``cargo install --locked latte-cli --version 0.29.0 --root
~/.cache/zdmkit/tools/latte`` (``ZDMKIT_TOOLS`` moves that folder).

Workload: latte-cli 0.29.0 (crates.io, Apache-2.0) with ``bench/latte/proxy_mix.rn``: prepared
INSERTs and SELECTs of one row by key, with equal weights, over ``--rows`` rows that ``latte
load`` wrote to both clusters beforehand. Paths: direct to Origin; through one proxy (the other
two stopped: a driver learns every proxy from ``system.peers``, so naming one contact point alone
would still spread the load over three); through three proxies (all of them as contact points).
Rates: each of ``--rates`` (a number of ops/s, or ``max`` for unthrottled). Then, through three
proxies at ``--read-mode-rate``, read mode PRIMARY_ONLY (phase 2, after ``phase2.yml``) against
DUAL_ASYNC_ON_SECONDARY (``phase3.yml``). Each run: latte's warm-up (unthrottled, not counted),
then ``--duration`` seconds; p50/p95/p99 latency, achieved ops/s, errors, the CPU each container
used and the requests each proxy served (its metrics).

Writes its section of ``docs/benchmarks.md`` and its data under ``proxy_bench`` in
``docs/benchmarks.json``. The goals the table shows (nothing here asserts them): p99 through the
proxies at most 1.3x direct at the same rate; the maximum throughput through three proxies at
least 0.8x direct. Credentials: --username (cassandra) and ZDMKIT_BENCH_PASSWORD (default
cassandra, the lab's).
"""

# ruff: noqa: S608 -- the report's prose names INSERT and SELECT; no CQL is built here
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import BENCH_INVENTORY, LATTE_VERSION, Deployment, Latte, LatteRun, checked, container_cpu_seconds
from benchkit import run_playbook as _run_playbook
from docsection import SECTIONS, machine, relative_args, replace_data, replace_section

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "bench" / "latte" / "proxy_mix.rn"
FUNCTIONS = ["read:1", "write:1"]
PROXY_SERVICE = "zdm-proxy.service"
PROXY_CONFIG = "/etc/zdm-proxy/active/zdm-proxy.yml"
P99_GOAL = 1.3
THROUGHPUT_GOAL = 0.8
PATHS = {
    "direct": "direct to Origin",
    "proxy1": "through 1 proxy",
    "proxy3": "through 3 proxies",
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inventory", default=str(BENCH_INVENTORY))
    p.add_argument("--rates", default="500,2000,max", help="comma-separated ops/s, or max for unthrottled")
    p.add_argument("--paths", default="direct,proxy3,proxy1",
                   help=f"comma-separated, run in this order: {', '.join(PATHS)}")  # fmt: skip
    p.add_argument("--duration", type=int, default=25, help="measured seconds of each run")
    p.add_argument("--warmup", type=int, default=5,
                   help="seconds of warm-up before an unthrottled run; a fixed-rate run warms up with one "
                        "second's worth of its rate in cycles (latte runs every warm-up unthrottled)")  # fmt: skip
    p.add_argument(
        "--prime",
        type=int,
        default=10,
        help="seconds of one unmeasured unthrottled run through the proxies before the first measured run",
    )
    p.add_argument("--rows", type=int, default=10_000, help="rows loaded into both clusters, read and overwritten")
    p.add_argument("--concurrency", type=int, default=128, help="latte's requests in flight per thread")
    p.add_argument("--threads", type=int, default=1, help="latte's threads")
    p.add_argument("--read-mode-rate", type=int, default=2000, help="ops/s of the read-mode comparison")
    p.add_argument("--no-read-modes", action="store_true", help="skip the read-mode comparison (phase 2 and 3)")
    p.add_argument("--username", default="cassandra", help="both clusters' user (the proxies take Target's)")
    p.add_argument("--metrics-port", type=int, default=14001, help="the proxies' metrics port")
    p.add_argument("--keep", action="store_true", help="leave the bench deployment up at the end")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = p.parse_args()
    args.rate_list = [None if r.strip() == "max" else int(r) for r in args.rates.split(",") if r.strip()]
    args.path_list = [x.strip() for x in args.paths.split(",") if x.strip()]
    unknown = [x for x in args.path_list if x not in PATHS]
    if unknown:
        p.error(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    return args


# -- the deployment ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.inventory = Path(args.inventory)
        self.playbooks: list[dict[str, Any]] = []
        self.dep: Deployment | None = None

    def playbook(self, name: str, extravars: dict | None = None) -> dict[str, Any]:
        result = _run_playbook(name, self.inventory, extravars)
        summary = {k: result[k] for k in ("playbook", "status", "seconds", "changed", "failed")}
        summary["extravars"] = extravars or {}
        self.playbooks.append(summary)
        print(f"{name} {extravars or ''}: {result['status']} in {result['seconds']} s, changed={result['changed']}",
              flush=True)  # fmt: skip
        return checked(result)

    def deploy(self) -> Deployment:
        """Containers and phase 0 when they are not up, then phase 1 (forward from 0, back from later)."""
        dep = Deployment.read(self.inventory)
        if not dep.running():
            self.playbook("lab.yml")
            self.playbook("site.yml")
        elif dep.recorded_phase() == 0:
            self.playbook("site.yml")
        self.to_phase(dep, 1)
        self.dep = dep
        return dep

    def to_phase(self, dep: Deployment, phase: int) -> None:
        recorded = dep.recorded_phase()
        if recorded > phase:
            self.playbook("rollback.yml", {"to_phase": phase})
        while (recorded := dep.recorded_phase()) < phase:
            self.playbook(f"phase{recorded + 1}.yml")
            if dep.recorded_phase() != recorded + 1:
                raise RuntimeError(f"phase{recorded + 1}.yml ran but the recorded phase is {dep.recorded_phase()}")

    def remove(self) -> None:
        self.playbook("lab.yml", {"lab_state": "absent"})

    # -- the proxies ------------------------------------------------------------------------------

    @property
    def proxies(self) -> list[str]:
        return self.dep.hosts("proxies")

    def read_modes(self) -> dict[str, str]:
        """The read mode in each proxy's configuration file (only that line is read)."""
        found = {}
        for host in self.proxies:
            line = self.dep.exec(host, "grep", "-E", "^read_mode:", PROXY_CONFIG, check=False).strip()
            found[host] = line.partition(":")[2].strip().strip("'\"") or "?"
        return found

    def metrics(self, host: str) -> dict[str, float] | None:
        """Requests the proxy has served so far (all request types) and the async reads it sent;
        None when its metrics do not answer (stopped)."""
        url = f"http://{self.dep.address[host]}:{self.args.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except (urllib.error.URLError, OSError):
            return None
        totals = {"requests": 0.0, "async_reads": 0.0}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name.startswith("zdm_proxy_request_duration_seconds_count"):
                totals["requests"] += float(value)
            elif name.startswith("zdm_async_request_duration_seconds_count"):
                totals["async_reads"] += float(value)
        return totals

    def ready(self, host: str) -> bool:
        url = f"http://{self.dep.address[host]}:{self.args.metrics_port}/health/readiness"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200 and json.loads(response.read()).get("Status") == "UP"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def serve_with(self, serving: list[str], timeout_s: float = 120) -> None:
        """Run the proxy service on ``serving`` only, and wait until those are ready."""
        for host in self.proxies:
            action = "start" if host in serving else "stop"
            self.dep.exec(host, "systemctl", action, PROXY_SERVICE)
        deadline = time.monotonic() + timeout_s
        while not all(self.ready(h) for h in serving):
            if time.monotonic() > deadline:
                raise RuntimeError(f"proxies {', '.join(serving)} not ready after {timeout_s:.0f} s")
            time.sleep(1)


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Measured:
    """One latte run with what the deployment did meanwhile."""

    group: str
    path: str
    rate: int | None
    read_mode: str
    contact_points: list[str]
    latte: LatteRun | None
    cpu_pct: dict[str, float] = field(default_factory=dict)
    host_busy_pct: float = 0.0
    proxy_requests: dict[str, int | None] = field(default_factory=dict)
    async_reads: int = 0
    failed: str = ""

    def row(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "latte"}
        data["latte"] = self.latte.row() if self.latte else None
        data["samples"] = self.latte.samples if self.latte else []
        return data


def _host_cpu() -> tuple[float, float]:
    """Busy and total jiffies of the whole machine (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def measure(bench: Bench, latte: Latte, group: str, path: str, rate: int | None, read_mode: str) -> Measured:
    a = bench.args
    dep = bench.dep
    hosts = {"direct": [dep.address[h] for h in dep.hosts("origin")],
             "proxy1": [dep.address[bench.proxies[0]]],
             "proxy3": [dep.address[h] for h in bench.proxies]}[path]  # fmt: skip
    label = f"{group} {path} {rate or 'max'}"
    warmup = f"{a.warmup}s" if rate is None else str(rate)
    containers = dep.containers
    cpu0, host0 = container_cpu_seconds(containers), _host_cpu()
    m0 = {h: bench.metrics(h) for h in bench.proxies}
    result = Measured(group, path, rate, read_mode, hosts, None)
    try:
        run = latte.run(label, hosts, FUNCTIONS, rate=rate, duration_s=a.duration, warmup=warmup,
                        concurrency=a.concurrency, threads=a.threads, params={"rows": a.rows})  # fmt: skip
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        result.failed = str(exc)[-600:]
        print(f"{label}: FAILED {result.failed}", flush=True)
        return result
    wall = time.time() - run.started
    cpu1, host1 = container_cpu_seconds(containers), _host_cpu()
    m1 = {h: bench.metrics(h) for h in bench.proxies}
    result.latte = run
    # CPU over the whole latte process (warm-up included), in % of one core
    result.cpu_pct = {c: round(100 * (cpu1[c] - cpu0.get(c, 0.0)) / wall, 1) for c in cpu1}
    result.cpu_pct["latte"] = round(100 * run.cpu_s / run.seconds, 1) if run.seconds else 0.0
    result.host_busy_pct = round(100 * (host1[0] - host0[0]) / max(host1[1] - host0[1], 1), 1)
    for h in bench.proxies:
        before, after = m0[h], m1[h]
        result.proxy_requests[h] = int(after["requests"] - before["requests"]) if before and after else None
        if before and after:
            result.async_reads += int(after["async_reads"] - before["async_reads"])
    print(f"{label:28} {run.throughput:9.1f} ops/s  p50 {run.p50:7.2f}  p95 {run.p95:7.2f}  p99 {run.p99:7.2f} ms  "
          f"errors {run.errors}  proxies {result.proxy_requests}  busy {result.host_busy_pct}%",
          flush=True)  # fmt: skip
    return result


def run_bench(bench: Bench, latte: Latte, results: list[Measured]) -> None:
    """The runs, appended to ``results`` as they finish (a failure keeps the runs before it)."""
    a = bench.args
    dep = bench.dep
    modes = set(bench.read_modes().values())
    if modes != {"PRIMARY_ONLY"}:
        raise RuntimeError(f"the proxies' read mode is {modes}, not PRIMARY_ONLY: phase 1 did not apply")
    print(f"loading {a.rows:,} rows into Origin and Target", flush=True)
    for host in dep.hosts("origin") + dep.hosts("target"):
        latte.schema(dep.address[host])
        latte.load(dep.address[host], params={"rows": a.rows})
    if a.prime:
        print(f"priming: {a.prime} s unthrottled through the proxies, not counted", flush=True)
        hosts = [dep.address[h] for h in bench.proxies]
        latte.run("prime", hosts, FUNCTIONS, rate=None, duration_s=a.prime, warmup="1s",
                  concurrency=a.concurrency, threads=a.threads, params={"rows": a.rows})  # fmt: skip
    for path in a.path_list:
        if path == "proxy1":
            bench.serve_with(bench.proxies[:1])
        try:
            for rate in a.rate_list:
                results.append(measure(bench, latte, "paths", path, rate, "PRIMARY_ONLY"))
        finally:
            if path == "proxy1":
                bench.serve_with(bench.proxies)
    if not a.no_read_modes:
        for phase in (2, 3):
            bench.to_phase(dep, phase)
            modes = set(bench.read_modes().values())
            if len(modes) != 1:
                raise RuntimeError(f"the proxies run different read modes after phase {phase}: {modes}")
            results.append(measure(bench, latte, "read modes", "proxy3", a.read_mode_rate, modes.pop()))


# -- the report -------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _rate(rate: float | None) -> str:
    return "max" if rate is None else f"{rate:,.0f}"


def _requests(m: Measured) -> str:
    if m.path == "direct":
        return "-"
    return " / ".join("stopped" if n is None else f"{n:,}" for n in m.proxy_requests.values()) or "-"


def _cpu(m: Measured, hosts: dict[str, list[str]]) -> str:
    def total(group: str) -> float:
        return sum(m.cpu_pct.get(h, 0.0) for h in hosts[group])

    parts = [f"proxies {total('proxies'):.0f}", f"Origin {total('origin'):.0f}", f"Target {total('target'):.0f}",
             f"latte {m.cpu_pct.get('latte', 0):.0f}"]  # fmt: skip
    return ", ".join(parts)


def goals(results: list[Measured]) -> dict[str, Any]:
    """The measured ratios to direct: p99 at each fixed rate, and the maximum throughput."""
    direct = {m.latte.rate: m.latte for m in results if m.group == "paths" and m.path == "direct" and m.latte}
    p99, throughput = [], {}
    for m in results:
        if m.group != "paths" or m.path == "direct" or not m.latte or m.latte.rate not in direct:
            continue
        base = direct[m.latte.rate]
        if m.latte.rate is None:
            ratio = m.latte.throughput / base.throughput if base.throughput else None
            throughput[m.path] = {"ratio": ratio, "met": ratio is not None and ratio >= THROUGHPUT_GOAL}
        else:
            ratio = m.latte.p99 / base.p99 if base.p99 else None
            p99.append({"path": m.path, "rate": m.latte.rate, "ratio": ratio,
                        "met": ratio is not None and ratio <= P99_GOAL})  # fmt: skip
    return {"p99": p99, "throughput": throughput}


def render(results: list[Measured], m: dict[str, Any], args: argparse.Namespace, hosts: dict[str, list[str]],
           total_s: float, latte_version: str, playbooks: list[dict[str, Any]]) -> str:  # fmt: skip
    g = goals(results)
    p99_ratio = {(x["path"], x["rate"]): x["ratio"] for x in g["p99"]}
    lines = [
        "## ZDM proxy overhead",
        "",
        f"Measured {m['date']} on {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average {m['load_average'][0]} at the start, {m['load_end'][0]} at the end. Everything ran on this "
        "one machine: the bench deployment (`bench/inventory`: Origin and Target of one Cassandra "
        f"{m['cassandra']} node each, 768 MB heap, the server's own JVM options and commit log settings "
        "(`bench/inventory/group_vars/all/cassandra_bench_cluster.yml`); three ZDM proxy "
        f"{m['zdm_proxy']} instances; monitoring and the demo application, whose writer adds one write every "
        f"20 s) and the load generator. The project's playbooks deploy it ({_playbooks(playbooks)} in this run). "
        f"One run of {total_s / 60:.0f} minutes, written by `bench/proxy_bench.py`; the numbers are under "
        "`proxy_bench` in `benchmarks.json`.",
        "",
        f"Workload: latte {LATTE_VERSION} (the crate latte-cli {LATTE_VERSION} from crates.io, Apache-2.0; "
        f"`latte --version`: {latte_version}) running `bench/latte/proxy_mix.rn`: prepared INSERT and "
        f"SELECT of one row by key, with equal weights (`-f read:1 -f write:1`), over {args.rows:,} rows loaded "
        f"into both clusters beforehand; {args.threads} thread, {args.concurrency} requests in flight at most, one "
        "connection per node, consistency LOCAL_QUORUM. Each run: a warm-up that is not counted (latte runs it "
        f"unthrottled: {args.warmup} s before an unthrottled run, one second's worth of cycles before a fixed-rate "
        f"run), then {args.duration} s measured. Latency is latte's cycle latency, from the call to its answer. "
        "Through one proxy, the other two are stopped: a driver learns every proxy from `system.peers`, so one "
        "contact point alone would still spread the requests over all three. Through the proxies every INSERT "
        "goes to both clusters (phase 1: dual writes, reads from Origin).",
        "",
        "| path | rate ops/s | achieved ops/s | p50 ms | p95 ms | p99 ms | p99 read / write ms | errors "
        "| p99 vs direct (goal <= 1.3x) | requests per proxy | CPU, % of a core | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|",
    ]
    for r in _side_by_side([x for x in results if x.group == "paths"], args):
        lines.append(_row(r, hosts, p99_ratio.get((r.path, r.rate))))
    lines.append("")
    lines.append("Goals (shown, not asserted):")
    for x in g["p99"]:
        lines.append(f"- p99 {PATHS[x['path']]} at {_rate(x['rate'])} ops/s: {_ratio(x['ratio'])} direct "
                     f"(goal <= {P99_GOAL}x: {'met' if x['met'] else 'not met'}).")  # fmt: skip
    for path, x in g["throughput"].items():
        lines.append(f"- Maximum throughput {PATHS[path]}: {_ratio(x['ratio'])} direct"
                     + (f" (goal >= {THROUGHPUT_GOAL}x: {'met' if x['met'] else 'not met'})." if path == "proxy3"
                        else "."))  # fmt: skip
    modes = [x for x in results if x.group == "read modes"]
    if modes:
        lines += [
            "",
            f"Read mode through 3 proxies at {args.read_mode_rate:,} ops/s, same workload: PRIMARY_ONLY in phase 2 "
            "(`phase2.yml`), then DUAL_ASYNC_ON_SECONDARY (`phase3.yml`: each read also sent to Target, the client "
            "still answered from Origin).",
            "",
            "| read mode | achieved ops/s | p50 ms | p95 ms | p99 ms | p99 read / write ms | errors "
            "| async reads to Target | CPU, % of a core | machine busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in modes:
            if not r.latte:
                lines.append(f"| {r.read_mode} | FAILED: {r.failed[-200:]} |")
                continue
            x = r.latte
            lines.append(f"| {r.read_mode} | {_fmt(x.throughput, 0)} | {_fmt(x.p50)} | {_fmt(x.p95)} | {_fmt(x.p99)} "
                         f"| {_by_fn(x)} | {_errors(x)} | {r.async_reads:,} | {_cpu(r, hosts)} "
                         f"| {r.host_busy_pct:.0f}% |")  # fmt: skip
    lines += [
        "",
        "CPU is each group's containers' CPU time over the run (warm-up included) and latte's own, in % of one "
        f"core; the machine has {m['cpus']}, which the clusters, the proxies and latte share, so the unthrottled "
        "rows measure this machine as much as the proxy.",
    ]
    return "\n".join(lines)


def _side_by_side(rows: list[Measured], args: argparse.Namespace) -> list[Measured]:
    """The runs by rate (in the order asked), the paths of each rate in the order of PATHS."""
    rates, paths = list(args.rate_list), list(PATHS)
    return sorted(rows, key=lambda r: (rates.index(r.rate) if r.rate in rates else len(rates),
                                       paths.index(r.path)))  # fmt: skip


def _playbooks(playbooks: list[dict[str, Any]]) -> str:
    """The playbooks a run used, e.g. "`lab.yml` 20 s, `site.yml` 400 s"; "none" when it found phase 1 up."""
    names = []
    for p in playbooks:
        extra = " ".join(f"{k}={v}" for k, v in p["extravars"].items())
        names.append(f"`{p['playbook']}{' -e ' + extra if extra else ''}` {p['seconds']:.0f} s")
    return ", ".join(names) or "none: phase 1 was up"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _by_fn(x: LatteRun) -> str:
    fn = x.by_function
    return f"{_fmt(fn.get('read', {}).get('p99'))} / {_fmt(fn.get('write', {}).get('p99'))}"


def _errors(x: LatteRun) -> str:
    text = f"{x.errors:,}"
    if x.request_errors or x.retries:
        text += f" ({x.request_errors:,} request errors, {x.retries:,} retries)"
    if x.error_kinds:
        text += ": " + "; ".join(x.error_kinds)[:160]
    return text


def _row(r: Measured, hosts: dict[str, list[str]], ratio: float | None) -> str:
    if not r.latte:
        return f"| {PATHS[r.path]} | {_rate(r.rate)} | FAILED: {r.failed[-200:]} |"
    x = r.latte
    versus = "" if r.path == "direct" else _ratio(ratio) if x.rate is not None else ""
    if versus and ratio is not None:
        versus += ": met" if ratio <= P99_GOAL else ": not met"
    return (f"| {PATHS[r.path]} | {_rate(x.rate)} | {_fmt(x.throughput, 0)} | {_fmt(x.p50)} | {_fmt(x.p95)} "
            f"| {_fmt(x.p99)} | {_by_fn(x)} | {_errors(x)} | {versus} | {_requests(r)} | {_cpu(r, hosts)} "
            f"| {r.host_busy_pct:.0f}% |")  # fmt: skip


def versions(bench: Bench) -> dict[str, str]:
    """Cassandra's and the proxy's versions, as the roles pin them."""
    found = {}
    for key, role, var in (("cassandra", "cassandra", "cassandra_version"),
                           ("zdm_proxy", "zdm_proxy", "zdm_proxy_version")):  # fmt: skip
        text = (ROOT / "roles" / role / "defaults" / "main.yml").read_text()
        line = next((ln for ln in text.splitlines() if ln.startswith(f"{var}:")), "")
        found[key] = line.partition(":")[2].strip().strip("'\"") or "?"
    return found


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    m = {**machine(), "cpu_model": cpu_model()}
    bench = Bench(args)
    m.update(versions(bench))
    latte = Latte(WORKLOAD, args.username, os.environ.get("ZDMKIT_BENCH_PASSWORD", "cassandra"))
    results: list[Measured] = []
    error = ""
    try:
        bench.deploy()
        run_bench(bench, latte, results)
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        error = str(exc)[-2000:]
        print(f"FAILED: {error}", flush=True)
    finally:
        if not args.keep:
            try:
                bench.remove()
            except RuntimeError as exc:
                print(f"removing the bench deployment failed: {exc}", flush=True)
    total = time.monotonic() - started
    m["load_end"] = [round(x, 1) for x in os.getloadavg()]
    if not results:
        print("nothing measured; docs left as they are")
        return 1
    hosts = {g: bench.dep.hosts(g) for g in ("origin", "target", "proxies")}
    text = render(results, m, args, hosts, total, latte.version(), bench.playbooks)
    print(text)
    out = Path(args.out)
    data = {"machine": m, "args": relative_args(args, leave=("rate_list", "path_list")),
            "seconds": round(total), "latte": latte.version(), "workload": str(WORKLOAD.relative_to(ROOT)),
            "functions": FUNCTIONS, "goals": goals(results), "playbooks": bench.playbooks,
            "runs": [r.row() for r in results], "error": error}  # fmt: skip
    replace_data(out.with_suffix(".json"), "proxy_bench", data)
    replace_section(out, "proxy_bench", text, order=SECTIONS)
    print(f"wrote {out} and {out.with_suffix('.json')} ({total / 60:.1f} min)")
    return 1 if error or any(r.failed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
