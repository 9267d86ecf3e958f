"""What the migration stories share (the lab's, and the TLS scenario's): the inventory's hosts,
playbook runs, the hosts' units, the writer's journal, CQL sessions on each cluster and through
the proxies, a driver client's load, readiness of the proxies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from integration_env import need

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = os.environ.get("ZDMKIT_TEST_INVENTORY", "")
USER, PASSWORD = "cassandra", "cassandra"  # the lab's superuser, as the public lab uses it
JOURNAL = "/var/lib/zdmkit-writer/journal.jsonl"
# Driver options per contact point (an ssl_context where a cluster or proxy speaks TLS only);
# a story that uses TLS fills it before its first session.
CONNECT_OPTIONS: dict[str, dict] = {}


@dataclass
class Lab:
    inventory: str
    groups: dict[str, list[str]]
    address: dict[str, str]
    state_dir: Path
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.groups["origin"][0]

    @property
    def target(self) -> str:
        return self.groups["target"][0]

    @property
    def proxies(self) -> list[str]:
        return self.groups["proxies"]

    @property
    def client(self) -> str:
        return self.groups["clients"][0]

    @property
    def monitoring(self) -> str:
        return self.groups["monitoring"][0]

    @property
    def app_url(self) -> str:
        return f"http://{self.address[self.client]}:8000"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.address[self.monitoring]}:9090"

    def hosts(self) -> list[str]:
        return sorted({h for g in self.groups.values() for h in g})


def load_lab(inventory: str, optional: tuple[str, ...] = ()) -> Lab:
    """The hosts of an inventory's migration groups (those in ``optional`` may be empty)."""
    need(bool(inventory), "ZDMKIT_TEST_INVENTORY names no inventory")
    listing = subprocess.run(
        ["ansible-inventory", "-i", inventory, "--list"], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(listing)
    groups = {g: data.get(g, {}).get("hosts", []) for g in ("origin", "target", "proxies", "monitoring", "clients")}
    assert all(hosts or name in optional for name, hosts in groups.items()), groups
    hostvars = data["_meta"]["hostvars"]
    address = {h: hostvars[h]["service_address"] for g in groups.values() for h in g}
    if any("{{" in str(a) for a in address.values()):
        address = rendered(inventory, "service_address", list(address))  # a template (Molecule's)
    path = Path(inventory)
    state_dir = (path if path.is_dir() else path.parent) / "state"
    return Lab(inventory, groups, address, state_dir)


def rendered(inventory: str, var: str, hosts: list[str]) -> dict[str, str]:
    """A host variable of each host as Ansible renders it (ansible-inventory shows templates raw)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0"}
    message = f"msg='rendered {{{{ inventory_hostname }}}} {{{{ {var} }}}}'"
    run = subprocess.run(["ansible", ",".join(hosts), "-i", inventory, "-m", "ansible.builtin.debug", "-a", message],
                         capture_output=True, text=True, check=False, env=env, cwd=ROOT)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    found = dict(re.findall(r"^\s*msg: rendered (\S+) (\S+)\s*$", run.stdout, flags=re.M))
    assert set(found) == set(hosts), run.stdout[-2000:]
    return {host: found[host] for host in hosts}


def playbook(lab: Lab, name: str, *args: str, extra: dict | None = None, timeout: int = 1800,
             env: dict | None = None, own_fact_cache: bool = False) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_FORCE_COLOR": "0", **(env or {})}
    for var in ("ANSIBLE_ROLES_PATH", "ANSIBLE_FILTER_PLUGINS", "ANSIBLE_LIBRARY", "ANSIBLE_MODULE_UTILS",
                "ANSIBLE_STRATEGY_PLUGINS"):
        environment.pop(var, None)  # the project's own configuration
    if own_fact_cache:
        # Runs side by side each read a copy of the fact cache: none writes a file another reads.
        import shutil
        import tempfile

        copy = Path(tempfile.mkdtemp(prefix="zdmkit-facts-"))
        if (ROOT / ".cache" / "ansible-facts").is_dir():
            shutil.copytree(ROOT / ".cache" / "ansible-facts", copy, dirs_exist_ok=True)
        environment["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(copy)
    path = ROOT / name if "/" in name else ROOT / "playbooks" / name
    command = ["ansible-playbook", "-i", lab.inventory, str(path), *args]
    if extra:
        command += ["-e", json.dumps(extra)]
    run = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
                         check=False)
    # The YAML callback folds long lines: tests read the output with its whitespace joined.
    run.text = " ".join(run.stdout.split())
    return run


def playbooks_side_by_side(lab: Lab, runs: dict[str, tuple[str, dict]], workers: int = 3) -> dict:
    """Several refused runs at once (they only read): {id: CompletedProcess}."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(playbook, lab, name, extra=extra, own_fact_cache=True)
                   for key, (name, extra) in runs.items()}
        return {key: future.result() for key, future in futures.items()}


def recap(output: str) -> dict[str, dict[str, int]]:
    counts = {}
    for host, rest in re.findall(r"^(\S+)\s+: (ok=.*)$", output, flags=re.M):
        counts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
    return counts


def changed_hosts(output: str) -> dict[str, int]:
    return {host: c["changed"] for host, c in recap(output).items() if c.get("changed")}


def task_outcomes(output: str, task: str) -> dict[str, set[str]]:
    """What each host answered to one task of a playbook's output: {host: {"ok", "skipping", ...}}."""
    outcomes: dict[str, set[str]] = {}
    for section in re.split(r"^(?=TASK \[|PLAY )", output, flags=re.M):
        if section.startswith(f"TASK [{task}]"):
            for status, host in re.findall(r"^(ok|changed|skipping|failed|fatal): \[([^\]\s]+)", section, flags=re.M):
                outcomes.setdefault(host, set()).add(status)
    return outcomes


def docker_exec(host: str, *command: str, check: bool = True) -> str:
    run = subprocess.run(["docker", "exec", host, *command], capture_output=True, text=True, check=False)
    if check and run.returncode != 0:
        raise AssertionError(f"{host}: {' '.join(command)} exited {run.returncode}: {run.stderr[-2000:]}")
    return run.stdout


def unit_starts(lab: Lab, units: dict[str, list[str]]) -> dict[str, str]:
    """Start time and main PID of each running unit, per host: {host/unit: 'monotonic/pid'}."""
    starts = {}
    for host, names in units.items():
        out = docker_exec(host, "systemctl", "show", "-p", "Id,ActiveEnterTimestampMonotonic,MainPID", *names)
        for block in out.strip().split("\n\n"):
            fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if fields.get("MainPID", "0") != "0":
                starts[f"{host}/{fields['Id']}"] = f"{fields['ActiveEnterTimestampMonotonic']}/{fields['MainPID']}"
    return starts


def lab_units(lab: Lab) -> dict[str, list[str]]:
    units = {h: ["prometheus-node-exporter.service"] for h in lab.hosts()}
    for host in lab.groups["origin"] + lab.groups["target"]:
        units[host].append("cassandra.service")
    for host in lab.proxies:
        units[host].append("zdm-proxy.service")
    units[lab.monitoring] += ["prometheus.service", "prometheus-blackbox-exporter.service"]
    units[lab.client] += ["zdmkit-demo-app.service"]
    return units


def journal(lab: Lab, *, in_flight: bool = False) -> list[dict]:
    """The writer's finished attempts, one each (the line journaled before sending is not one);
    with ``in_flight`` also those still under way, with the outcome ``unknown``."""
    from zdmkit.writer.journal import parse_journal

    text = docker_exec(lab.client, "sh", "-c", f"cat {JOURNAL} 2>/dev/null || true")
    return [dataclasses.asdict(attempt) for attempt in parse_journal(text, JOURNAL, in_flight=in_flight)]


def utc_now(offset_s: float = 0) -> str:
    """Now (or ``offset_s`` from now) as the writer's journal stamps its attempts."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + offset_s)) + ".000Z"


def attempts_between(entries: list[dict], start: str, end: str | None = None) -> list[dict]:
    return [e for e in entries if e["ts"] >= start and (end is None or e["ts"] <= end)]


def failures(entries: list[dict]) -> list[dict]:
    """Attempts the writer cannot count as stored: anything but acknowledged."""
    return [e for e in entries if e["outcome"] != "acknowledged"]


@contextlib.contextmanager
def cql(*hosts: str, port: int = 9042, pin: bool = False, **options) -> Iterator:
    """A session on the given contact points (pinned to the first one with ``pin``)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    options = {**CONNECT_OPTIONS.get(hosts[0], {}), **options}
    profiles = {}
    if pin:
        profiles[EXEC_PROFILE_DEFAULT] = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy(hosts[:1]))
    cluster = Cluster(list(hosts), port=port, auth_provider=PlainTextAuthProvider(USER, PASSWORD),
                      execution_profiles=profiles, **options)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def writer_rows(lab: Lab, host: str, user: str = "writer") -> set[str]:
    with cql(lab.address[host]) as session:
        rows = session.execute("SELECT status FROM zdmapp.user_status WHERE user = %s", (user,))
        return {row.status for row in rows}


def wait_until(predicate, timeout: float, interval: float = 1.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout:.0f} s")
        time.sleep(interval)


def prometheus(lab: Lab, query: str) -> list[dict]:
    import httpx

    answer = httpx.get(f"{lab.prometheus_url}/api/v1/query", params={"query": query}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def firing(lab: Lab, alert: str, instance: str | None = None) -> list[dict]:
    """The alert's firing instances in Prometheus (of one instance only, when given)."""
    selector = f'alertname="{alert}", alertstate="firing"' + (f', instance="{instance}"' if instance else "")
    return prometheus(lab, f"ALERTS{{{selector}}}")


def readiness(lab: Lab, proxy: str) -> tuple[int, dict]:
    import httpx

    try:
        answer = httpx.get(f"http://{lab.address[proxy]}:14001/health/readiness", timeout=5)
    except httpx.HTTPError as exc:
        return 0, {"error": type(exc).__name__}
    return answer.status_code, answer.json() if answer.content else {}


def side_status(lab: Lab, proxy: str, side: str) -> str:
    """What a proxy's readiness says of one side: UP, DOWN, or why it did not answer."""
    code, body = readiness(lab, proxy)
    return (body.get(f"{side}Status") or {}).get("Status", f"no answer ({code})")


def report(title: str, **counts) -> None:
    """Counts in the test output (pytest -s shows them; -rA keeps them with the result)."""
    print(f"\n[lab] {title}: " + ", ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


def world_readable_files_holding(host: str, secret: str) -> str:
    """Files on a host that anyone may read and that hold the secret (empty when none)."""
    return docker_exec(host, "sh", "-c",
                       "find /etc /opt /var /srv /home /root /tmp /usr/local -xdev -type f -perm -o=r -size -20M "
                       f"-exec grep -l -F '{secret}' {{}} + 2>/dev/null || true").strip()


def restart_monitoring_under_traffic(lab: Lab, label: str) -> None:
    """Restart the monitoring host while the API takes 60 POSTs (about 15 s) and the writer
    writes: every request answered, no write failed, Prometheus ready again."""
    import httpx

    start = utc_now()
    codes: list = []

    def post_statuses() -> None:  # bounded: 60 requests, about 15 s
        with httpx.Client(base_url=lab.app_url, timeout=30) as api:
            for i in range(60):
                try:
                    codes.append(api.post(f"/status/monitoringrestart/s{i:02d}").status_code)
                except httpx.HTTPError as exc:
                    codes.append(type(exc).__name__)
                time.sleep(0.25)

    load = threading.Thread(target=post_statuses)
    load.start()
    subprocess.run(["docker", "restart", "--time", "20", lab.monitoring], check=True, capture_output=True)
    load.join(timeout=120)
    window = attempts_between(journal(lab), start)
    report(f"monitoring host restarted in {label}", posts=len(codes), posts_ok=codes.count(200),
           writer_attempts=len(window), writer_failed=len(failures(window)))
    assert codes == [200] * 60, codes
    assert failures(window) == []

    def prometheus_ready() -> bool:
        try:
            return httpx.get(f"{lab.prometheus_url}/-/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(prometheus_ready, 180, 3, "Prometheus back after the monitoring host restarted")


class ClientLoad:
    """A cassandra-driver client left at its defaults except that its statements are prepared
    and marked idempotent (so the driver may retry them on another host), and that it checks its
    idle connections every 5 s, as the demo app does (the driver's 30 s would have every step of
    a proxy roll wait that long for this client's connection to the restarted proxy, which its
    token-aware requests never use): INSERTs of its own rows
    and SELECTs, ``in_flight`` at a time, at a bounded rate, until stopped or ``max_seconds``
    passed. Counts every operation and every error the client saw; ``written`` holds the rows
    whose INSERT was acknowledged, ``failed_writes`` those whose INSERT failed."""

    def __init__(self, hosts: list[str], rate: float = 50.0, max_seconds: float = 600.0, user: str | None = None,
                 port: int = 9042, in_flight: int = 1, **cluster_options) -> None:
        import uuid

        self.hosts, self.rate, self.max_seconds, self.port, self.in_flight = hosts, rate, max_seconds, port, in_flight
        self.user = user or f"load{uuid.uuid4().hex[:8]}"
        self.options = {"idle_heartbeat_interval": 5, **CONNECT_OPTIONS.get(hosts[0], {}), **cluster_options}
        self.ops = self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.written: list[str] = []
        self.failed_writes: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def __enter__(self) -> ClientLoad:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("the client load could not connect within 60 s")
        if self._failure:
            raise self._failure
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=180)

    def _done(self, status: str | None, error: BaseException | None) -> None:
        with self._lock:
            self.ops += 1
            if error is not None:
                self.errors += 1
                kind = type(error).__name__
                self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
                if status:
                    self.failed_writes.append(status)
            elif status:
                self.written.append(status)

    def _run(self) -> None:
        import datetime as dt
        import threading

        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import Cluster

        try:
            cluster = Cluster(self.hosts, port=self.port, auth_provider=PlainTextAuthProvider(USER, PASSWORD),
                              **self.options)
            session = cluster.connect()
            insert = session.prepare("INSERT INTO zdmapp.user_status (user, when, status) VALUES (?, ?, ?)")
            select = session.prepare("SELECT status FROM zdmapp.user_status WHERE user = ? LIMIT 1")
            insert.is_idempotent = select.is_idempotent = True
        except BaseException as exc:  # reported to the test by __enter__
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        slots = threading.BoundedSemaphore(self.in_flight)
        started = time.monotonic()
        interval = 1.0 / self.rate
        seq = 0
        try:
            while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
                seq += 1
                if not slots.acquire(timeout=30):
                    continue
                status = f"load_{seq:07d}" if seq % 2 else None
                if status:
                    when = dt.datetime(2030, 1, 1) + dt.timedelta(milliseconds=seq)
                    future = session.execute_async(insert, (self.user, when, status), timeout=20)
                else:
                    future = session.execute_async(select, (self.user,), timeout=20)

                def finished(_rows, status=status):
                    self._done(status, None)
                    slots.release()

                def failed(error, status=status):
                    self._done(status, error)
                    slots.release()

                future.add_callbacks(finished, failed)
                self._stop.wait(interval)
            for _ in range(self.in_flight):  # the last answers
                slots.acquire(timeout=30)
        finally:
            cluster.shutdown()
