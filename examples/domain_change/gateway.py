"""A tiny API gateway admin API for the example: routes kept in memory, on loopback.

    PUT /routes/NAME  (JSON body)   DELETE /routes/NAME   GET /routes

Run: python gateway.py [PORT]   (default 8780)
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROUTES: dict[str, Any] = {}


class Admin(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(200, ROUTES)

    def do_PUT(self) -> None:
        name = self.path.removeprefix("/routes/")
        length = int(self.headers.get("Content-Length", "0"))
        ROUTES[name] = json.loads(self.rfile.read(length) or b"{}")
        print(f"gateway: route {name} -> {ROUTES[name]}", flush=True)
        self._reply(200, {"route": name})

    def do_DELETE(self) -> None:
        name = self.path.removeprefix("/routes/")
        found = ROUTES.pop(name, None)
        print(f"gateway: route {name} removed", flush=True)
        self._reply(200 if found is not None else 404, {"route": name})


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8780
    print(f"gateway admin API on http://127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Admin).serve_forever()
