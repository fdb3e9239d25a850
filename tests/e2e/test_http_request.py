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


class Creates(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(201)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def creating_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Creates)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


CREATE = """\
    id: create
    order: 4
    author: ana
    template: http-request
    apply: {{url: "${{SERVICE_URL}}/things", expect_status: {status}}}
"""


@pytest.mark.parametrize("status", ["201", "[200, 201]", '"${CREATED}"'],
                         ids=["one-status", "a-list", "from-a-variable"])
def test_expect_status_takes_one_status_or_a_list(project: Project, creating_service: str,
                                                  status: str) -> None:
    project.write("changes/create.yaml", CREATE.format(status=status))
    project.env.update(SERVICE_URL=creating_service, CREATED="201")

    ok(project.cli("plan", "--check"))
    result = ok(project.cli("run"))

    assert "main/create (pending) ... applied" in result.stderr


def test_a_status_that_is_not_the_one_expected_fails_the_unit(project: Project,
                                                             creating_service: str) -> None:
    project.write("changes/create.yaml", CREATE.format(status="200"))
    project.env.update(SERVICE_URL=creating_service)

    result = ok(project.cli("run"), 8)

    assert "expected 200, got 201 (Created)" in result.stderr


@pytest.mark.parametrize(("block", "problem"), [
    ('expect_status: "201"', "expect_status: Input should be a valid integer"),
    ('timeout: "10"', "timeout: Input should be a valid number"),
], ids=["quoted-status", "quoted-timeout"])
def test_a_quoted_literal_is_refused_before_anything_runs(project: Project, block: str,
                                                          problem: str) -> None:
    project.write("changes/create.yaml", f"""\
        id: create
        order: 4
        author: ana
        template: http-request
        apply: {{url: "http://127.0.0.1:9/things", {block}}}
    """)

    result = ok(project.cli("run"), 2)

    assert "create.yaml:5: the apply block does not fit template 'http-request'" in result.stderr
    assert problem in result.stderr
    assert project.effects() == []
