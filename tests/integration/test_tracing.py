"""One trace across three processes: requester -> ``flamingock-es serve`` -> projection worker.

Each process exports OTLP/HTTP to :class:`OtlpReceiver` (the project's own, on loopback);
the test asserts one trace id spans all three services, with the expected structure:
the runner's CONSUMER span is a child of the requester's PRODUCER span, the run and its
changes descend from it, and the projection batch continues the trace with links to the
audit events' spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .otlp_receiver import OtlpReceiver, ReceivedSpan
from .tracing_support import UNITS, run_traced_request

pytestmark = pytest.mark.kafka


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def test_one_trace_spans_requester_runner_and_projector(
        tmp_path: Path, kafka_bootstrap: str, unique_name: str,
        receiver: OtlpReceiver) -> None:
    bus = f"kafka://{kafka_bootstrap}"
    namespace = unique_name[-40:].strip("-.")

    def complete(spans: list[ReceivedSpan]) -> bool:
        sends = [s for s in spans if s.service == "requester" and s.kind == "PRODUCER"]
        if not sends:
            return False
        trace_id = sends[0].trace_id
        return any(s.service == "projector" and s.trace_id == trace_id
                   and s.name == "flamingock.projection.batch" for s in spans)

    spans = run_traced_request(tmp_path, bus, namespace, receiver.endpoint,
                               until=lambda: receiver.wait_for(complete, timeout=60))

    send = next(s for s in spans if s.service == "requester" and s.kind == "PRODUCER")
    trace = [s for s in spans if s.trace_id == send.trace_id]
    assert {s.service for s in trace} == {"requester", "runner", "projector"}
    by_id = {s.span_id: s for s in trace}
    runner = {s.name: s for s in trace if s.service == "runner"}
    process = next(s for s in runner.values() if s.kind == "CONSUMER")
    run = runner["flamingock.run"]
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["messaging.destination.name"] == f"flamingock.requests.{namespace}"
    assert process.parent_id == send.span_id
    assert process.attributes["messaging.consumer.group.name"] == f"flamingock.runner.{namespace}"
    assert run.parent_id == process.span_id
    assert runner["flamingock.lock.wait"].parent_id == process.span_id
    for unit in UNITS:
        change = runner[f"flamingock.change {unit}"]
        assert change.parent_id == run.span_id
        assert change.attributes["flamingock.unit.id"] == unit
        assert change.attributes["flamingock.outcome"] == "APPLIED"
    assert run.attributes["flamingock.outcome"] == "SUCCEEDED"
    assert run.attributes["flamingock.namespace"] == namespace
    batches = [s for s in trace if s.name == "flamingock.projection.batch"]
    for batch in batches:
        assert batch.service == "projector"
        assert batch.kind == "CONSUMER"
        assert by_id[batch.parent_id].service == "runner"
        assert batch.links
        assert all(t == send.trace_id and sid in by_id for t, sid in batch.links)
    linked = {sid for batch in batches for _, sid in batch.links}
    assert runner["flamingock.change add-route"].span_id in linked
