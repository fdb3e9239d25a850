"""Tracing on the embedded bus, in one process: the span tree and the context in the events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from flamingock_es import ChangeContext, Workflow, change_unit, telemetry
from flamingock_es.api import request_changes, serve, verify
from flamingock_es.core.state import RunState


def _fail(ctx: ChangeContext) -> None:
    raise RuntimeError("nope")


def _undo(ctx: ChangeContext) -> None: ...


@change_unit(id="ok", order=1, author="ana", rollback=_undo)
def unit_ok(ctx: ChangeContext) -> None: ...


@change_unit(id="bad", order=2, author="ana", rollback=_undo)
def unit_bad(ctx: ChangeContext) -> None:
    _fail(ctx)


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    memory = InMemorySpanExporter()
    assert telemetry.configure(memory, force=True)
    yield memory
    telemetry.shutdown()
    assert not telemetry.configure(force=True)


def _hex(value: int) -> str:
    return f"{value:016x}"


def test_one_trace_from_request_to_projection(tmp_path: Path,
                                              exporter: InMemorySpanExporter) -> None:
    wf = Workflow.of("shop", {"main": [unit_ok, unit_bad]}, bus=f"local:{tmp_path}",
                     lock_timeout=5.0)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(wf,), kwargs={"stop": stop})
    thread.start()
    try:
        answer = request_changes(wf, reason="t", wait=True, timeout=20).answer
    finally:
        stop.set()
        thread.join(10)
    assert isinstance(answer, RunState)
    assert answer.outcome is not None
    records = verify(wf).records
    with telemetry.projection_batch_span(
            records, {"messaging.destination.name": "file:audit.log"}, "shop"):
        pass

    spans = {s.name: s for s in exporter.get_finished_spans()}
    send, process = spans["send file:" + str(tmp_path / "shop" / "requests.log")], None
    process = next(s for n, s in spans.items() if n.startswith("process "))
    run, lock = spans["flamingock.run"], spans["flamingock.lock.wait"]
    ok, bad = spans["flamingock.change ok"], spans["flamingock.change bad"]
    comp = spans["flamingock.compensation bad"]
    batch = spans["flamingock.projection.batch"]
    trace_id = send.context.trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert send.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert run.parent is not None
    assert run.parent.span_id == process.context.span_id
    assert lock.parent is not None
    assert lock.parent.span_id == process.context.span_id
    for child in (ok, bad, comp):
        assert child.parent is not None
        assert child.parent.span_id == run.context.span_id
    assert ok.attributes is not None
    assert ok.attributes["flamingock.unit.id"] == "ok"
    assert ok.attributes["flamingock.outcome"] == "APPLIED"
    assert bad.attributes is not None
    assert bad.attributes["flamingock.outcome"] == "FAILED"
    assert run.attributes is not None
    assert run.attributes["flamingock.outcome"] == "ROLLED_BACK"
    assert run.attributes["flamingock.run.id"] == answer.run_id
    assert send.attributes is not None
    assert send.attributes["messaging.operation.type"] == "send"
    # The audit events carry the context of the span they were written in.
    by_kind = {(r.event.kind, getattr(r.event.payload, "unit_id", "")): r.event for r in records}
    assert by_kind[("ChangeStarted", "ok")].trace is not None
    assert _hex(ok.context.span_id) in by_kind[("ChangeStarted", "ok")].trace.traceparent
    assert by_kind[("RunFinished", "")].trace_id == f"{trace_id:032x}"
    linked = {link.context.span_id for link in batch.links}
    assert {ok.context.span_id, bad.context.span_id, comp.context.span_id} <= linked
    assert batch.parent is not None
    assert batch.context.trace_id == trace_id


def test_off_by_default_and_cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not telemetry.configure(force=True)
    assert telemetry.current_trace() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    assert not telemetry.configure(force=True)


def test_a_run_without_a_request_is_one_trace_rooted_in_a_deploy_span(
        tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    from flamingock_es import run

    wf = Workflow.of("shop", {"main": [unit_ok]}, bus=f"local:{tmp_path}", lock_timeout=5.0)
    run(wf)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"flamingock.deploy", "flamingock.lock.wait", "flamingock.run",
                          "flamingock.change ok"}
    root = spans["flamingock.deploy"]
    assert root.parent is None
    assert {span.context.trace_id for span in spans.values()} == {root.context.trace_id}
    assert spans["flamingock.lock.wait"].parent.span_id == root.context.span_id
    assert spans["flamingock.run"].parent.span_id == root.context.span_id
    assert spans["flamingock.change ok"].parent.span_id == spans["flamingock.run"].context.span_id
    # the audit events carry the run's trace
    events = verify(wf).records
    assert {r.event.trace_id for r in events} == {_hex(root.context.trace_id).rjust(32, "0")}
