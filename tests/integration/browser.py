"""Headless Chromium driven through chromedriver's W3C WebDriver API (plain HTTP, with httpx).

Debian's ``chromium`` and ``chromium-driver`` packages are all it needs: no browser download, no
driver manager. The browser starts with a fresh profile and with its own background traffic
(updates, sync, field trials, QUIC) switched off, so the only pages it loads are the ones asked for.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--metrics-recording-only",
    "--no-default-browser-check",
]


class BrowserError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """One chromedriver process and one browser session; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        self.chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.driver_binary = shutil.which("chromedriver")
        if not self.chromium or not self.driver_binary:
            raise BrowserError("chromium and chromedriver are needed (Debian: chromium, chromium-driver)")
        self.width, self.height = width, height
        self.profile = Path(tempfile.mkdtemp(prefix="zdmkit-chromium-"))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(timeout=60)
        self.driver: subprocess.Popen[bytes] | None = None
        self.session = ""

    def __enter__(self) -> Browser:
        self.driver = subprocess.Popen(
            [self.driver_binary, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.http.get(f"{self.base}/status").json()["value"]["ready"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                self.close()
                raise BrowserError("chromedriver did not start")
            time.sleep(0.2)
        args = [*CHROMIUM_ARGS, f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}"]
        capabilities = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": self.chromium, "args": args},
                }
            }
        }
        answer = self.http.post(f"{self.base}/session", json=capabilities).json()["value"]
        if "sessionId" not in answer:
            self.close()
            raise BrowserError(f"no browser session: {answer.get('message', answer)}")
        self.session = f"{self.base}/session/{answer['sessionId']}"
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.session:
            with contextlib.suppress(httpx.HTTPError):
                self.http.delete(self.session)
            self.session = ""
        if self.driver is not None:
            self.driver.terminate()
            try:
                self.driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()
            self.driver = None
        self.http.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, f"{self.session}{path}", json=body)
        value = response.json().get("value")
        if response.status_code != 200:
            message = value.get("message", value) if isinstance(value, dict) else value
            raise BrowserError(f"{method} {path}: {message}")
        return value

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        """Run JavaScript in the page (a function body: use `return`); async when it awaits."""
        if "await " in script:
            wrapped = (
                "const done = arguments[arguments.length - 1];"
                f"(async () => {{ {script} }})().then(done, e => done({{error: String(e)}}));"
            )
            return self._call("POST", "/execute/async", {"script": wrapped, "args": list(args)})
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def resize(self, width: int, height: int) -> None:
        self._call("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path
