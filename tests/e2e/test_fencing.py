"""Fencing that reaches the target: what a step hands to the systems it changes.

A real local HTTP server records every request (method, URL, headers, JSON body): the
``Idempotency-Key`` an ``http-request`` sends is the same when an ``always-retry`` unit is
re-run after the runner was killed with SIGKILL mid-call, and another one once the unit was
undone and applied anew. A Python unit asks whether it still holds the lock, before and after
the lock file is replaced under it (what the embedded lock calls lost), and reads its fencing
token, which names the generation the audit log recorded.
"""

from __future__ import annotations

import json
import threading
import uuid
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
recovery: always-retry
apply: {method: PUT, url: "${FLAGS_URL}/flags/on?env=prod", json: {enabled: true, by: ana}}
rollback: {method: PUT, url: "${FLAGS_URL}/flags/off", json: {enabled: false}}
"""


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with recording_server() as running:
        yield running


@pytest.fixture
def flag(project: Project, server: RecordingServer) -> Project:
    project.write("changes/units.py", "")
    project.write("changes/flag.yaml", FLAG)
    project.env["FLAGS_URL"] = server.url
    return project


def payloads(project: Project, kind: str) -> list[dict[str, object]]:
    events = json.loads(ok(project.cli("history", "--json")).stdout)
    return [e["payload"] for e in events if e["payload"]["type"] == kind]


def test_an_always_retry_unit_rerun_after_sigkill_sends_the_same_idempotency_key(
        flag: Project, server: RecordingServer) -> None:
    server.held["/flags/on?env=prod"] = threading.Event()
    runner = flag.spawn("run")
    (first,) = server.wait_for(1)
    runner.kill()  # SIGKILL while the call is in flight: no outcome is recorded
    runner.communicate()
    server.held.pop("/flags/on?env=prod").set()
    last = json.loads(ok(flag.cli("history", "--json")).stdout)[-1]
    assert last["payload"]["type"] == "ChangeStarted"  # in doubt

    ok(flag.cli("run"))  # always-retry: applied again

    retried = server.wait_for(2)[1]
    for got in (first, retried):
        assert (got.method, got.path) == ("PUT", "/flags/on?env=prod")
        assert got.json == {"enabled": True, "by": "ana"}
        assert got.header("Content-Type") == "application/json"
    key = first.header("Idempotency-Key")
    assert key is not None
    assert uuid.UUID(key).version == 5
    assert retried.header("Idempotency-Key") == key  # the same application: the same key
    assert [p["attempt"] for p in payloads(flag, "ChangeStarted")] == [1, 2]

    ok(flag.cli("undo", "--all"))
    ok(flag.cli("run"))  # undone, then applied anew: a new application

    rollback, again = server.wait_for(4)[2:]
    assert rollback.path == "/flags/off"
    keys = {key, rollback.header("Idempotency-Key"), again.header("Idempotency-Key")}
    assert len(keys) == 3  # the rollback has its own; the next application another


def test_the_idempotency_header_can_be_renamed_or_left_out(
        flag: Project, server: RecordingServer) -> None:
    flag.write("changes/named.yaml", """\
        id: named
        order: 2
        author: ana
        template: http-request
        apply: {method: POST, url: "${FLAGS_URL}/named", idempotency_header: X-Request-Key}
    """)
    flag.write("changes/off.yaml", """\
        id: no-key
        order: 3
        author: ana
        template: http-request
        apply: {method: POST, url: "${FLAGS_URL}/off", idempotency_header: off}
    """)

    ok(flag.cli("run"))

    by_path = {r.path: r for r in server.wait_for(3)}
    assert by_path["/named"].header("X-Request-Key") is not None
    assert by_path["/named"].header("Idempotency-Key") is None
    assert by_path["/off"].header("Idempotency-Key") is None
    assert by_path["/off"].header("X-Request-Key") is None
    assert len({by_path["/flags/on?env=prod"].header("Idempotency-Key"),
                by_path["/named"].header("X-Request-Key")}) == 2  # one key per unit


LOSES_THE_LOCK = '''\
import os
from pathlib import Path

from flamingock_es import change_unit
from flamingock_es.errors import LockLostError


def _note(line):
    with open("effects.txt", "a") as f:
        f.write(line + "\\n")


@change_unit(id="careful", order=1, author="ana")
def careful(ctx):
    _note(f"token {ctx.fencing.generation} {ctx.fencing.run_id} {ctx.fencing.unit_id}")
    _note(f"holds {ctx.holds_lock()}")
    lock = Path(".flamingock/shop/lock")
    os.replace(lock, lock.with_name("lock.old"))  # another runner's lock file now
    lock.write_text("99 elsewhere:1:other-run\\n")
    _note(f"holds {ctx.holds_lock()}")
    try:
        ctx.check_lock()
    except LockLostError as exc:
        _note(f"refused: {type(exc).__name__}")
        raise
    _note("side effect")  # never reached
'''


def test_a_unit_asks_whether_it_still_holds_the_lock_and_stops_when_it_does_not(
        project: Project) -> None:
    project.write("changes/units.py", LOSES_THE_LOCK)

    result = ok(project.cli("run"), 3)  # the lock was lost

    assert "LOCK LOST" in result.stderr
    acquired = payloads(project, "LockAcquired")[-1]
    started = json.loads(ok(project.cli("history", "--json")).stdout)[-1]
    assert started["payload"]["type"] == "ChangeStarted"  # fenced: nothing after it
    token, holds, lost, refused = project.effects()
    assert token == f"token {acquired['generation']} {started['run_id']} careful"
    assert (holds, lost, refused) == ("holds True", "holds False", "refused: LockLostError")
