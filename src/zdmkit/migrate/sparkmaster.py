"""A Spark standalone master as the jobs see it: its URL, whether it answers, how many workers it
has, and the address of this machine that its executors can call back (the driver's).

Checked in preflight for the ``spark`` and ``cdm`` engines, before anything is submitted: a job
sent to a master that does not answer, or that has no worker, would wait for resources forever.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

_URL = re.compile(r"^spark://(?P<host>\[[^\]]+\]|[^:/,]+)(?::(?P<port>\d+))?$")
LOCAL = re.compile(r"^local(\[(\*|\d+)(,\d+)?\])?$")


@dataclass(frozen=True)
class Master:
    url: str
    host: str
    port: int

    @property
    def ui(self) -> str:
        return f"http://{self.host}:8080"


def is_local(master: str) -> bool:
    return bool(LOCAL.match(master))


def parse(master: str) -> Master:
    match = _URL.match(master.strip())
    if not match:
        raise ValueError(f"Spark master {master!r} is neither local[N] nor spark://host:port")
    host = match.group("host").strip("[]")
    return Master(master.strip(), host, int(match.group("port") or 7077))


def status(ui: str, timeout: float = 5.0) -> dict[str, Any]:
    """The master's JSON status (``<ui>/json/``): workers, applications, cores."""
    with urllib.request.urlopen(f"{ui.rstrip('/')}/json/", timeout=timeout) as response:  # noqa: S310 - http(s) URL of the operator's master
        return json.loads(response.read().decode("utf-8"))


def driver_address(master: Master) -> str:
    """This machine's address on the route to the master: where executors reach the driver."""
    family = socket.AF_INET6 if ":" in master.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((master.host, master.port))  # UDP: no packet is sent, only the route is chosen
        return sock.getsockname()[0]


def check(master_url: str, ui: str | None = None, timeout: float = 5.0) -> tuple[list[str], dict[str, Any]]:
    """Problems with a master (empty when it can take a job) and its status when it answered."""
    if is_local(master_url):
        return [], {}
    try:
        master = parse(master_url)
    except ValueError as exc:
        return [str(exc)], {}
    try:
        with socket.create_connection((master.host, master.port), timeout=timeout):
            pass
    except OSError as exc:
        return [f"Spark master {master.url} cannot be reached: {exc.strerror or exc} (is the spark role deployed "
                "and the master running? check the address and port)"], {}  # fmt: skip
    ui = ui or master.ui
    try:
        found = status(ui, timeout)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [f"Spark master {master.url} answers, but its status page {ui}/json/ does not: {reason}"], {}
    if found.get("status") not in (None, "ALIVE"):
        return [f"Spark master {master.url} is {found.get('status')}, not ALIVE (a standby master?)"], found
    alive = [w for w in found.get("workers", []) if w.get("state") == "ALIVE"]
    if not alive:
        return [f"Spark master {master.url} has no alive worker: a job would wait forever for executors"], found
    return [], found
