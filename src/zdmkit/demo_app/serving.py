"""Serving the application under systemd without losing a request across a restart.

- **Socket activation.** ``zdmkit-demo-app.socket`` owns the listening socket and passes it
  to the service (the ``LISTEN_FDS`` protocol, fd 3). The socket stays open while the
  service restarts: a connection made in between waits in the kernel's listen backlog
  and is served by the new process, instead of being refused.
- **Ready when connected.** The new process starts accepting only once its CQL session is
  open (the application's lifespan waits for it), then tells systemd ``READY=1``, so
  ``systemctl restart`` returns when the new process serves.
- **Graceful stop.** On SIGTERM the old process stops accepting (the backlog keeps filling
  for the next one), gives connections it has just accepted a moment to deliver their
  request, answers every request it has started, and only then closes its session.

Without ``LISTEN_FDS`` (run by hand) the server binds the configured address itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping, MutableMapping

import uvicorn

from .logs import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)

# The first file descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
# Seconds between "stop accepting" and closing idle connections: a connection accepted just
# before the stop has its request read and answered instead of being closed unanswered.
DRAIN_SECONDS = 0.25


class ActivationError(Exception):
    """The sockets passed by systemd cannot be served; the message says why."""


def inherited_sockets(
    environ: MutableMapping[str, str] | None = None, first_fd: int = LISTEN_FDS_START
) -> list[socket.socket]:
    """The listening sockets systemd passed to this process; empty when it passed none.

    Follows sd_listen_fds(3): ``LISTEN_PID`` must name this process, ``LISTEN_FDS``
    counts the descriptors from fd 3 on. The variables are removed afterwards so that
    no child process takes the sockets for its own.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID", ""), env.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not pid or not count:
        return []
    if not pid.isdigit() or int(pid) != os.getpid():
        return []
    if not count.isdigit() or int(count) < 1:
        raise ActivationError(f"LISTEN_FDS is {count!r}: expected a count of passed sockets")
    sockets = []
    for fd in range(first_fd, first_fd + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ActivationError(f"fd {fd} passed by systemd is not a socket: {exc.strerror}") from None
        if sock.type != socket.SOCK_STREAM or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0:
            sock.detach()  # not ours to close
            raise ActivationError(f"fd {fd} passed by systemd is not a listening stream socket")
        sockets.append(sock)
    return sockets


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``) to systemd; False when not run by it."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
        except OSError as exc:
            log.warning("cannot notify systemd: %s", exc.strerror, extra={"fields": {"event": "notify_failed"}})
            return False
    return True


def describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if isinstance(name, tuple):
        host = f"[{name[0]}]" if ":" in name[0] else name[0]
        return f"{host}:{name[1]}"
    return str(name)


class Server(uvicorn.Server):
    """uvicorn's server, telling systemd when it serves and draining before it stops."""

    drain_seconds = DRAIN_SECONDS

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # The application's lifespan (run first by uvicorn) waits for the CQL session;
        # the listening sockets are served from here on.
        await super().startup(sockets=sockets)
        if self.started:
            notify("READY=1")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        notify("STOPPING=1")
        for server in self.servers:
            server.close()  # stop accepting; pending connections stay in the shared backlog
        await asyncio.sleep(self.drain_seconds)
        await super().shutdown(sockets=sockets)
