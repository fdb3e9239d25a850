"""A local stand-in for a SaaS feature-flag and remote-config service (REST, bearer token)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FlagService:
    """``PUT/GET /flags/NAME`` and ``/config/KEY`` with JSON bodies, on a loopback port."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.flags: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlagService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _target(self) -> tuple[dict[str, Any], str] | None:
                parts = self.path.strip("/").split("/", 1)
                if len(parts) != 2 or parts[0] not in ("flags", "config"):
                    return None
                return (service.flags if parts[0] == "flags" else service.config), parts[1]

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                target = self._target()
                if target is None:
                    return self._reply(404, {"error": "not found"})
                store, key = target
                self._reply(200, store.get(key))

            def do_PUT(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {service.token}":
                    return self._reply(401, {"error": "bad token"})
                target = self._target()
                if target is None:
                    return self._reply(404, {"error": "not found"})
                store, key = target
                length = int(self.headers.get("Content-Length", 0))
                store[key] = json.loads(self.rfile.read(length) or b"null")
                self._reply(200, store[key])

        return Handler
