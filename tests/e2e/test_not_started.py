"""Failures that provably did nothing are "not started": no rollback, fix it and run again.

Produced for real: a port nobody listens on (connection refused), a name that cannot resolve
(``.invalid`` is reserved for that), a real HTTP server that answers 4xx, 5xx or too late, and
a python-call to a function that does not exist. The server counts every request it gets, so
a rollback that was (or was not) sent to it is seen, not inferred.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from .conftest import Project, ok
from .http_server import RecordingServer, recording_server

pytestmark = pytest.mark.e2e

FLAG = """\
id: flag
order: 1
author: ana
template: http-request
apply: {method: PUT, url: "${FLAGS_URL}/flags/on", json: {enabled: true}, timeout: 1}
rollback: {method: PUT, url: "${FLAGS_URL}/flags/off", json: {enabled: false}}
"""


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with recording_server() as running:
        yield running


@pytest.fixture
def flag(project: Project) -> Project:
    project.write("changes/units.py", "")  # only the http unit
    project.write("changes/flag.yaml", FLAG)
    return project


def closed_port() -> str:
    """A port that was just bound and closed again: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def payloads(project: Project, kind: str) -> list[dict[str, object]]:
    events = json.loads(ok(project.cli("history", "--json")).stdout)
    return [e["payload"] for e in events if e["payload"]["type"] == kind]


@pytest.mark.parametrize(("target", "said"), [
    ("refused", "Connection refused"),
    ("unresolvable", "the request was never sent"),
    ("4xx", "got 403 (Forbidden); the server refused the request"),
])
def test_a_call_that_never_reached_the_target_is_not_started_and_not_rolled_back(
        flag: Project, server: RecordingServer, target: str, said: str) -> None:
    url = {"refused": closed_port(), "unresolvable": "http://no-such-host.invalid",
           "4xx": server.url}[target]
    server.statuses["/flags/on"] = 403
    flag.env["FLAGS_URL"] = url

    result = ok(flag.cli("run"), 8)

    assert said in result.stderr
    (failed,) = payloads(flag, "ChangeFailed")
    assert (failed["unit_id"], failed["not_started"]) == ("flag", True)
    assert payloads(flag, "CompensationStarted") == []  # no rollback against a dead target
    assert [r.path for r in server.received] == (["/flags/on"] if target == "4xx" else [])
    status = ok(flag.cli("status"))  # nothing for a person to decide
    assert "failed before it started" in status.stdout
    server.statuses.clear()
    flag.env["FLAGS_URL"] = server.url  # fixed: the next run applies it
    ok(flag.cli("run"))
    assert [r.path for r in server.received].count("/flags/on") == (2 if target == "4xx" else 1)


@pytest.mark.parametrize("fault", ["5xx", "timeout"])
def test_a_call_that_may_have_done_something_is_failed_and_compensated(
        flag: Project, server: RecordingServer, fault: str) -> None:
    if fault == "5xx":
        server.statuses["/flags/on"] = 503
    else:
        server.held["/flags/on"] = threading.Event()  # answered after the 1 s timeout
    flag.env["FLAGS_URL"] = server.url

    result = ok(flag.cli("run"), 8)

    assert ("got 503" if fault == "5xx" else "timed out") in result.stderr
    (failed,) = payloads(flag, "ChangeFailed")
    assert failed["not_started"] is False
    assert [p["unit_id"] for p in payloads(flag, "CompensationSucceeded")] == ["flag"]
    assert [r.path for r in server.wait_for(2)] == ["/flags/on", "/flags/off"]


def test_a_python_call_to_a_missing_function_is_refused_before_anything_runs(
        project: Project) -> None:
    project.write("changes/units.py", "")
    project.write("helpers.py", "def present(**kwargs):\n    open('called', 'w').close()\n")
    project.write("changes/call.yaml", """\
        id: call
        order: 1
        author: ana
        template: python-call
        apply: {function: "helpers:absent"}
        rollback: {function: "helpers:present"}
    """)

    result = ok(project.cli("run"), 2)  # looked up before the lock, as plan --check does

    assert "cannot find function 'helpers:absent'" in result.stderr
    assert not project.log.exists()  # no lock taken, nothing recorded
    assert not (project.path / "called").exists()  # nothing was called
    (project.path / "changes" / "call.yaml").write_text(
        (project.path / "changes" / "call.yaml").read_text().replace("absent", "present"))
    ok(project.cli("run"))  # the fixed unit runs: it never applied, so this is no drift
    assert (project.path / "called").exists()


def test_a_python_call_with_arguments_the_function_does_not_take_is_not_started(
        project: Project) -> None:
    project.write("changes/units.py", "")
    project.write("helpers.py", "def add(collection):\n    open('called', 'w').close()\n")
    project.write("changes/call.yaml", """\
        id: call
        order: 1
        author: ana
        template: python-call
        apply: {function: "helpers:add", args: {colection: users}}
    """)

    result = ok(project.cli("run"), 8)

    assert "helpers:add was not called" in result.stderr
    assert payloads(project, "ChangeFailed")[0]["not_started"] is True
    assert not (project.path / "called").exists()
