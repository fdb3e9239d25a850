"""A real local HTTP server that records every request it receives, for the template tests.

Each request is kept whole (method, path, headers, body: what reached the target, counted),
and answered with the status set for its path (200 by default). A path can be held: the
request is recorded at once, and answered only when the test releases it, so a test can
kill the runner while its call is in flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class RecordingServer:
    """A ThreadingHTTPServer on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: dict[str, int] = {}
        """The status to answer per path (default 200)."""
        self.held: dict[str, threading.Event] = {}
        """Paths whose answer waits until their event is set."""
        self.latency = 0.0
        """Seconds every answer takes (a remote service's own time)."""
        self.arrived = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(self.command, self.path, dict(self.headers.items()),
                               self.rfile.read(length))
                with server.arrived:
                    server.received.append(got)
                    server.arrived.notify_all()
                hold = server.held.get(self.path) or server.held.get(
                    self.path.partition("?")[0])
                if hold is not None:
                    hold.wait(60)
                if server.latency:
                    time.sleep(server.latency)
                try:
                    self.send_response(server.statuses.get(self.path) or server.statuses.get(
                        self.path.partition("?")[0], 200))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the caller was killed meanwhile
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until ``count`` requests arrived (fail after ``timeout``)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"{count} request(s) expected, {len(self.received)} came")
            return list(self.received)


@contextmanager
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        for event in server.held.values():
            event.set()
        server.httpd.shutdown()
        server.httpd.server_close()
