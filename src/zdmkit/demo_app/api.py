"""The demo application: the public lab's user-status API, served by FastAPI.

Endpoints, as in the lab:

- ``GET /status/{user}?entries=N``: the N newest statuses of ``user``, newest first
  (``entries`` missing, not an integer or below 1 means 1; above ``max_entries``,
  100 by default, means ``max_entries``); an unknown user gives ``[]``.
- ``POST /status/{user}/{status}``: store a new status stamped with the current
  UTC time (millisecond precision) and return it.

Each item is ``{"user": ..., "when": "2022-10-10T14:00:00.000", "status": ...}``.

Added for running it as a service: ``GET /healthz`` (a query against the cluster),
``GET /metrics`` (Prometheus text format), one JSON log line per request.

``uvicorn zdmkit.demo_app.api:app`` loads the settings when ``app`` is first looked up;
a configuration problem ends the process with one line on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zdmkit import __version__

from .config import ConfigError, Settings, load_settings
from .db import ClusterError, Database, NotConnected
from .inputs import BadInput, MillisClock, check_segment, parse_entries, raw_segments, status_entry
from .logs import LOGGER_NAME, setup_logging, shorten
from .metrics import CONTENT_TYPE, AppMetrics

log = logging.getLogger(LOGGER_NAME)

ROUTE_KEY = "zdmkit.route"
GET_ROUTE = "/status/{user}"
POST_ROUTE = "/status/{user}/{status}"
NOT_FOUND = f"Not Found: the API serves GET {GET_ROUTE}?entries=N and POST {POST_ROUTE}"


def lab_segments(request: Request, method: str) -> list[str]:
    """``[user]`` for a GET, ``[user, status]`` for a POST, taken from the raw request path."""
    raw = request.scope.get("raw_path") or quote(request.scope["path"]).encode("ascii")
    segments = raw_segments(raw)
    expected = 1 if method == "GET" else 2
    if len(segments) != expected:
        # Same answers as the two routes alone would give: a path of the other method is 405.
        if method == "POST" and len(segments) == 1 and segments[0]:
            raise BadInput(405, "Method Not Allowed", {"Allow": "GET"})
        if method == "GET" and len(segments) == 2 and segments[0] and segments[1]:
            raise BadInput(405, "Method Not Allowed", {"Allow": "POST"})
        raise BadInput(404, NOT_FOUND)
    request.scope[ROUTE_KEY] = GET_ROUTE if method == "GET" else POST_ROUTE
    return segments


class RequestLog:
    """ASGI middleware: count, time and log every HTTP request, whatever happens inside."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics, mode: str) -> None:
        self.app = app
        self.metrics = metrics
        self.mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        error: str | None = None

        async def send_and_record(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            elapsed = time.perf_counter() - started
            # A handler may name the lab route it served through a catch-all route.
            template = scope.get(ROUTE_KEY) or getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.inc(method, template, str(status_code))
            self.metrics.latency.observe(elapsed, method, template)
            if status_code >= 500:
                self.metrics.errors.inc(method, template)
            fields: dict[str, Any] = {
                "event": "request",
                "method": method,
                "path": shorten(scope.get("path", "")),
                "query": shorten(scope.get("query_string", b"").decode("latin-1")),
                "route": template,
                "status": status_code,
                "duration_ms": round(elapsed * 1000, 3),
                "mode": self.mode,
                "client": (scope.get("client") or ("", 0))[0],
            }
            detail = scope.get("state", {}).get("zdmkit_error") if isinstance(scope.get("state"), dict) else None
            if error or detail:
                fields["error"] = shorten(error or detail or "", 500)
            log.log(logging.ERROR if status_code >= 500 else logging.INFO, "request", extra={"fields": fields})


def create_app(settings: Settings, *, connect: bool = True, metrics: AppMetrics | None = None) -> FastAPI:
    """Build the application for ``settings``.

    With ``connect=False`` the application never opens a CQL session: every data
    endpoint answers 503, which is what the input-validation tests rely on.
    """
    setup_logging()
    metrics = metrics or AppMetrics()
    database = Database(settings, metrics)
    clock = MillisClock()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info(
            "starting",
            extra={"fields": {"event": "start", "version": __version__, "settings": settings.describe()}},
        )
        connector = asyncio.create_task(database.keep_connecting()) if connect else None
        if connector is not None and settings.startup_wait > 0:
            # The server accepts connections only after this: requests that arrive while the
            # session opens wait in the listen backlog (held by systemd across a restart)
            # instead of being answered 503. A cluster still out of reach after the wait
            # gets the 503s, and /healthz says why, while the connector keeps trying.
            await asyncio.wait({connector}, timeout=settings.startup_wait)
            if not database.connected:
                log.warning(
                    "serving before the cluster answered; data requests get 503 until it does",
                    extra={"fields": {"event": "start_unconnected", "waited_seconds": settings.startup_wait}},
                )
        try:
            yield
        finally:
            if connector is not None:
                connector.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connector
            await asyncio.to_thread(database.close)
            log.info("stopped", extra={"fields": {"event": "stop"}})

    app = FastAPI(
        title="zdmkit demo application",
        version=__version__,
        lifespan=lifespan,
        # "/status/eva/" must be a clear 4xx, not a redirect to another route.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = metrics
    app.add_middleware(RequestLog, metrics=metrics, mode=settings.mode.value)

    def remember(request: Request, detail: str) -> None:
        request.scope.setdefault("state", {})["zdmkit_error"] = detail

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        remember(request, exc.detail)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(NotConnected)
    async def not_connected(request: Request, exc: NotConnected) -> JSONResponse:
        detail = f"not connected to the cluster ({settings.mode.value}): {exc}"
        remember(request, detail)
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ClusterError)
    async def cluster_failure(request: Request, exc: ClusterError) -> JSONResponse:
        detail = f"the cluster request failed: {exc}"
        remember(request, detail)
        if exc.transient:
            return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"detail": detail}, status_code=500)

    async def read(request: Request, entries: str | None) -> list[dict[str, str]]:
        (user,) = lab_segments(request, "GET")
        check_segment("user", user, settings.max_user_bytes)
        limit = parse_entries(entries, settings.max_entries)
        rows = await database.read_statuses(user, limit)
        return [status_entry(row.user, row.when, row.status) for row in rows]

    async def write(request: Request) -> dict[str, str]:
        user, status = lab_segments(request, "POST")
        check_segment("user", user, settings.max_user_bytes)
        check_segment("status", status, settings.max_status_bytes)
        when = clock()
        await database.write_status(user, when, status)
        return status_entry(user, when, status)

    @app.get(GET_ROUTE)
    async def get_status(user: str, request: Request, entries: str | None = None) -> list[dict[str, str]]:
        """The ``entries`` newest statuses of ``user``, newest first (1 by default, at most max_entries)."""
        return await read(request, entries)

    @app.post(POST_ROUTE)
    async def post_status(user: str, status: str, request: Request) -> dict[str, str]:
        """Store ``status`` as the newest status of ``user``, stamped with the current UTC time."""
        return await write(request)

    # Paths the two routes above cannot match once decoded: an escaped "/" inside a value,
    # an empty segment, a missing or extra one. They get the same handling, or a clear 4xx.
    @app.get("/status/{rest:path}", include_in_schema=False)
    async def get_status_raw(request: Request, entries: str | None = None) -> list[dict[str, str]]:
        return await read(request, entries)

    @app.post("/status/{rest:path}", include_in_schema=False)
    async def post_status_raw(request: Request) -> dict[str, str]:
        return await write(request)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when a query against the cluster answers, 503 otherwise."""
        body: dict[str, Any] = {"mode": settings.mode.value, "version": __version__}
        try:
            body["release_version"] = await database.ping()
        except NotConnected as exc:
            return JSONResponse({**body, "status": "connecting", "error": str(exc)}, status_code=503)
        except Exception as exc:
            return JSONResponse({**body, "status": "down", "error": f"{type(exc).__name__}: {exc}"}, status_code=503)
        return JSONResponse({**body, "status": "ok"})

    @app.get("/metrics")
    async def prometheus_metrics() -> PlainTextResponse:
        """Request counters, errors and a latency histogram in the Prometheus text format."""
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    return app


def load_or_exit() -> Settings:
    """Load the settings, or end the process with one line saying what to fix."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"zdmkit-demo-app: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access so that importing this module (tests, tools)
    # needs no configuration file, while ``uvicorn zdmkit.demo_app.api:app`` still works.
    global _app
    if name == "app":
        if _app is None:
            _app = create_app(load_or_exit())
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
