"""A headless Chromium driven over the DevTools protocol: just what the report tests need.

Open a page, evaluate expressions in it, collect what it logs as an error, take a
full-page screenshot or a PDF. The protocol is JSON over one websocket; commands for the
page go through a flattened session (``Target.attachToTarget(flatten=True)``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
INSTALL = "apt-get install -y chromium"
ROOT = Path(__file__).resolve().parents[2]

# The machine's network is closed: without these, Chromium's own connections (updates,
# sync, field trials) are refused and logged as errors that are not the page's.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--remote-debugging-port=0")


def artifacts() -> Path:
    """Where CI picks up the screenshots: ``$FLAMINGOCK_ARTIFACTS`` or build/artifacts."""
    path = Path(os.environ.get("FLAMINGOCK_ARTIFACTS") or ROOT / "build" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_path() -> str | None:
    """The Chromium executable, if one is installed."""
    return shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)


class Browser:
    """One Chromium process with one page; use as a context manager."""

    def __init__(self, executable: str, profile: Path, width: int = 1280,
                 height: int = 900) -> None:
        self._closing = ExitStack()
        process = subprocess.Popen(
            [executable, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._closing.callback(_stop, process)
        try:
            self._socket: ClientConnection = self._closing.enter_context(
                connect(_endpoint(profile, process), max_size=None, open_timeout=60))
            self._next_id = 0
            self.events: list[dict[str, Any]] = []
            target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.send("Target.attachToTarget",
                                      {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.page(f"{domain}.enable")
            self.page("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self._closing.close()
            raise

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.close()

    # The protocol ---------------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        self._socket.send(json.dumps(message))
        while True:
            reply = self._receive(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command for the page's session."""
        return self.send(method, params, self._session)

    def _receive(self, timeout: float) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self._socket.recv(timeout=timeout))
        if "method" in message:
            self.events.append(message)
        return message

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first event named ``method`` (already received, or the next to come)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            self._receive(max(deadline - time.monotonic(), 0.01))

    # What the tests use ---------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.events.clear()
        self.page("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        reply = self.page("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def errors(self) -> list[str]:
        """What the page logged as an error: console.error, uncaught exceptions, failed
        loads and the browser's own complaints about the page."""
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                                "assert"):
                out.append(" ".join(str(a.get("value", a.get("description")))
                                    for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                out.append(str(params["exceptionDetails"].get("text")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(str(params["entry"].get("text")))
        return out

    def media(self, media: str) -> None:
        """Emulate ``print`` or ``screen`` media."""
        self.page("Emulation.setEmulatedMedia", {"media": media})

    def wait_until(self, expression: str, timeout: float = 20.0, what: str = "") -> None:
        """Poll a JavaScript expression until it is truthy (in JavaScript's sense: a DOM
        node is). The page goes on by itself meanwhile (nothing is reloaded)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.evaluate(f"Boolean({expression})"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{what or expression} did not happen in {timeout:.0f} s")
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        """The whole page, as tall as it is, saved as a PNG."""
        size = self.page("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.page("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def pdf(self, path: Path) -> Path:
        """The page printed (its print stylesheet applies), saved as a PDF."""
        printed = self.page("Page.printToPDF", {"printBackground": True,
                                                 "preferCSSPageSize": True})
        path.write_bytes(base64.b64decode(printed["data"]))
        return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _endpoint(profile: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """The browser's websocket URL, from the DevToolsActivePort file Chromium writes."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} before listening")
        lines = port_file.read_text().splitlines() if port_file.exists() else []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        time.sleep(0.05)
    raise RuntimeError(f"chromium did not open its DevTools port within {timeout:.0f} s")
