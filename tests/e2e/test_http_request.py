"""The ``http-request`` template's errors, as a user reads them after a failed run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


class Unavailable(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        self.send_response(503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def down_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_unexpected_status_is_said_in_one_short_phrase(project: Project,
                                                          down_service: str) -> None:
    project.write("changes/flag.yaml", """\
        id: flag
        order: 4
        author: ana
        template: http-request
        apply: {method: PUT, url: "${FLAGS_URL}/flags/x?token=${FLAGS_TOKEN}"}
    """)
    project.env.update(FLAGS_URL=down_service, FLAGS_TOKEN="tok-123")

    result = ok(project.cli("run"), 8)

    assert f"PUT {down_service}/flags/x?...: expected 2xx, got 503 (Service Unavailable)" \
        in result.stderr
    assert "expected one of" not in result.stderr
    history = ok(project.cli("history", "--unit", "flag", "--json")).stdout
    assert "tok-123" not in history  # the query, where tokens travel, stays out of the log
