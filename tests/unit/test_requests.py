"""Change requests on the embedded bus: codec round trip, serve, duplicates, rejections."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flamingock_es import ChangeContext, Workflow, change_unit
from flamingock_es.adapters.local import LocalEventLog
from flamingock_es.api import history, read_state, request_changes, serve, wait_for_answer
from flamingock_es.core.events import RunOutcome, TraceContext
from flamingock_es.core.state import RunState
from flamingock_es.errors import DecodeError
from flamingock_es.namespace import open_backend
from flamingock_es.request.model import (
    ChangeRequest,
    RequestCodec,
    Stages,
    UndoTo,
    Units,
    WholeWorkflow,
)

APPLIED: list[str] = []


def _undo(ctx: ChangeContext) -> None:
    APPLIED.append(f"undo:{ctx.unit_id}")


@change_unit(id="a", order=1, author="ana", rollback=_undo)
def unit_a(ctx: ChangeContext) -> None:
    APPLIED.append(ctx.unit_id)


@change_unit(id="b", order=1, author="ana", rollback=_undo)
def unit_b(ctx: ChangeContext) -> None:
    APPLIED.append(ctx.unit_id)


@pytest.mark.parametrize("target", [WholeWorkflow(), Stages(("s1", "s2")), Units(("a",)),
                                    UndoTo("a")])
def test_codec_round_trip(target: object) -> None:
    codec = RequestCodec()
    request = ChangeRequest(namespace="ns", target=target, requested_by="svc",  # type: ignore[arg-type]
                            reason="r", trace=TraceContext(traceparent="00-" + "1" * 32 + "-"
                                                           + "2" * 16 + "-01"))
    blob = codec.encode(request)
    assert blob[:2] == b"\xc3\x01"
    assert codec.decode(blob) == request


def test_codec_refuses_garbage() -> None:
    with pytest.raises(DecodeError, match="offset 7"):
        RequestCodec().decode(b"nonsense", 7)


@pytest.fixture
def workflow(tmp_path: Path) -> Workflow:
    APPLIED.clear()
    return Workflow.of("shop", {"s1": [unit_a], "s2": [unit_b]}, bus=f"local:{tmp_path}",
                       lock_timeout=5.0)


@pytest.fixture
def server(workflow: Workflow) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(workflow,), kwargs={"stop": stop})
    thread.start()
    yield stop
    stop.set()
    thread.join(10)


def _ask(workflow: Workflow, **kwargs: object) -> RunState:
    answer = request_changes(workflow, wait=True, timeout=20, reason="test",
                             **kwargs).answer  # type: ignore[arg-type]
    assert isinstance(answer, RunState)
    return answer


def test_request_runs_and_is_answered(workflow: Workflow, server: threading.Event) -> None:
    run = _ask(workflow, units=["b"], requested_by="billing")
    assert run.outcome is RunOutcome.SUCCEEDED
    assert run.trigger == "request"
    assert run.applied == ["b"]
    assert APPLIED == ["b"]
    events = history(workflow, run_id=run.run_id)
    assert {e.event.request_id for e in events} == {run.request_id}
    assert _ask(workflow).applied == ["a"]  # the whole workflow: only a is left
    nothing = _ask(workflow)  # nothing pending: still answered, under the lock
    assert (nothing.outcome, nothing.applied) == (RunOutcome.SUCCEEDED, [])


def test_duplicate_request_runs_once(workflow: Workflow, server: threading.Event) -> None:
    first = _ask(workflow, request_id="same-id", units=["a"])
    again = _ask(workflow, request_id="same-id", units=["a"])
    assert again.run_id == first.run_id
    _ask(workflow, request_id="later")  # the service went past the duplicate
    state = read_state(workflow)
    assert [r.request_id for r in state.runs.values()].count("same-id") == 1
    assert APPLIED == ["a", "b"]


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"units": ["nope"]}, "unknown unit(s) nope"),
    ({"stages": ["s9"]}, "unknown stage(s) s9"),
    ({"undo_to": "zzz"}, "unknown unit(s) zzz"),
])
def test_unknown_targets_are_rejected(workflow: Workflow, server: threading.Event,
                                      kwargs: dict[str, object], why: str) -> None:
    run = _ask(workflow, **kwargs)
    assert run.outcome is RunOutcome.REJECTED
    assert run.error is not None
    assert why in run.error.message
    assert APPLIED == []


def test_malformed_and_foreign_requests_never_stop_the_service(
        workflow: Workflow, server: threading.Event) -> None:
    codec = RequestCodec()
    with open_backend(workflow.settings.bus, "shop") as backend:
        foreign = ChangeRequest(request_id="other-ns", namespace="elsewhere", requested_by="x",
                                reason="r")
        backend.requests.publish(foreign.request_id, codec.encode(foreign))
        garbage = codec.encode(ChangeRequest(namespace="shop", requested_by="x", reason="r"))
        # a frame no reader can decode, keyed with the id a real request will use later
        backend.requests.publish("later", b"\xc3\x01garbage!" + garbage[len(codec.header):])
    foreign = wait_for_answer(workflow, "other-ns", timeout=20)
    assert foreign.outcome is RunOutcome.REJECTED
    assert foreign.error is not None
    assert "serves namespace 'shop'" in foreign.error.message
    ok = _ask(workflow, stages=["s1"], request_id="later")  # the garbage took no id
    assert ok.outcome is RunOutcome.SUCCEEDED
    state = read_state(workflow)
    rejected = [r for r in state.runs.values() if r.outcome is RunOutcome.REJECTED]
    assert [r.request_id for r in rejected] == ["other-ns"]  # garbage: no lock, no event
    assert len(state.runs) == 2
    dead = Path(workflow.settings.bus.removeprefix("local:")) / "shop" / "requests.dead.log"
    (entry,) = [json.loads(record) for _, record in LocalEventLog(dead).read()]
    assert entry["reason"].startswith("undecodable: request at offset")


def test_undo_request(workflow: Workflow, server: threading.Event) -> None:
    _ask(workflow)
    run = _ask(workflow, undo_to="a")
    assert run.outcome is RunOutcome.SUCCEEDED
    assert run.compensated == ["b"]
    assert APPLIED == ["a", "b", "undo:b"]


def test_request_without_wait_returns_the_id(workflow: Workflow) -> None:
    sent = request_changes(workflow, reason="later")
    assert sent.answer is None
    rid = sent.request_id
    stats = serve(workflow, max_requests=1)
    assert stats.request_ids == [rid]
    assert wait_for_answer(workflow, rid, timeout=5).outcome is RunOutcome.SUCCEEDED


def test_sigterm_finishes_the_current_unit_then_stops_and_exits_0(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "u001_slow.py").write_text(textwrap.dedent('''
        import time
        from flamingock_es import ChangeContext, change_unit

        @change_unit(id="slow", order=1, author="t")
        def slow(ctx: ChangeContext) -> None:
            time.sleep(1.5)

        @change_unit(id="after", order=2, author="t")
        def after(ctx: ChangeContext) -> None:
            pass
    '''))
    bus = f"local:{tmp_path / 'bus'}"
    (tmp_path / "flamingock.yaml").write_text(
        f"namespace: shop\nbus: {bus}\nstages:\n  - name: main\n    units: [changes]\n")
    server = subprocess.Popen([sys.executable, "-m", "flamingock_es.cli", "serve", "-q"],
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        rid = request_changes(bus=bus, namespace="shop", reason="slow one").request_id
        deadline = time.monotonic() + 20
        while not any(e.event.kind == "ChangeStarted"
                      for e in history(bus=bus, namespace="shop")):
            assert time.monotonic() < deadline, "the unit never started"
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)  # mid-unit
        assert server.wait(20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    state = read_state(bus=bus, namespace="shop")
    run = next(r for r in state.runs.values() if r.request_id == rid)
    assert run.outcome is RunOutcome.STOPPED  # a stop on request, not a failure
    assert run.error is not None
    assert run.error.type == "Interrupted"
    assert run.not_started == ("after",)
    assert run.applied == ["slow"]  # the current unit finished...
    assert "after" not in state.units  # ...the next one stays pending for the next run
    assert state.lock is None  # released, and recorded as such
