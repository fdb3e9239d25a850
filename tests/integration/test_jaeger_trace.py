"""The three-process trace, exported to a real Jaeger and read back through its query API.

``test_tracing.py`` checks the spans as the project's own receiver gets them; this test
checks what an operator sees: Jaeger's ``/api/traces`` JSON, with the service names,
CHILD_OF references for parents, FOLLOWS_FROM references for the projection batch's span
links, and the unit ids as span tags. Service names carry a suffix unique to this run, so
traces of earlier runs (Jaeger keeps them in memory) never match.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .tracing_support import UNITS, Services, run_traced_request

pytestmark = [pytest.mark.kafka, pytest.mark.jaeger]


@dataclass(frozen=True)
class JaegerSpan:
    """A span of Jaeger's JSON model, with its service and tags resolved."""

    trace_id: str
    span_id: str
    name: str
    service: str
    tags: dict[str, Any]
    references: list[tuple[str, str]]
    """``(refType, spanID)``: CHILD_OF for the parent, FOLLOWS_FROM for links."""

    def refs(self, kind: str) -> list[str]:
        return [span_id for ref_type, span_id in self.references if ref_type == kind]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def _traces(query: str, service: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"service": service, "lookback": "1h", "limit": "20"})
    data: list[dict[str, Any]] = _get(f"{query}/api/traces?{params}")["data"] or []
    return data


def _spans(trace: dict[str, Any]) -> list[JaegerSpan]:
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    return [JaegerSpan(span["traceID"], span["spanID"], span["operationName"],
                       services[span["processID"]],
                       {tag["key"]: tag["value"] for tag in span["tags"]},
                       [(ref["refType"], ref["spanID"]) for ref in span["references"]])
            for span in trace["spans"]]


def _wait_for_trace(query: str, services: Services, timeout: float = 60.0) -> list[JaegerSpan]:
    """The requester's trace once Jaeger has the runner's consumer span and the projector's
    batch in it too (Jaeger's collector queues what it receives: a span a process sent
    before it exited may become queryable after spans sent later by another)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        for trace in _traces(query, services.requester):
            spans = _spans(trace)
            seen = sorted({f"{s.service}/{s.name}" for s in spans})
            projected = any(s.service == services.projector
                            and s.name == "flamingock.projection.batch" for s in spans)
            processed = any(s.service == services.runner and s.tags.get("span.kind") == "consumer"
                            for s in spans)
            if projected and processed:
                return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"Jaeger has no complete trace after {timeout:g}s; saw {seen}")
        time.sleep(0.5)


def test_jaeger_shows_one_trace_from_requester_to_projector(
        tmp_path: Path, kafka_bootstrap: str, unique_name: str, jaeger_query: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    services = Services(f"requester-{suffix}", f"runner-{suffix}", f"projector-{suffix}")
    namespace = unique_name[-40:].strip("-.")
    spans = run_traced_request(
        tmp_path, f"kafka://{kafka_bootstrap}", namespace, os.environ["FLAMINGOCK_JAEGER_OTLP"],
        until=lambda: _wait_for_trace(jaeger_query, services), services=services)

    assert {s.service for s in spans} == {services.requester, services.runner, services.projector}
    by_id = {s.span_id: s for s in spans}
    (send,) = [s for s in spans if s.service == services.requester
               and s.tags.get("span.kind") == "producer"]
    assert send.tags["messaging.destination.name"] == f"flamingock.requests.{namespace}"
    runner = {s.name: s for s in spans if s.service == services.runner}
    (process,) = [s for s in runner.values() if s.tags.get("span.kind") == "consumer"]
    run = runner["flamingock.run"]
    assert process.refs("CHILD_OF") == [send.span_id]
    assert run.refs("CHILD_OF") == [process.span_id]
    assert run.tags["flamingock.namespace"] == namespace
    for unit in UNITS:
        change = runner[f"flamingock.change {unit}"]
        assert change.refs("CHILD_OF") == [run.span_id]
        assert change.tags["flamingock.unit.id"] == unit

    # A batch's parent (the last traced event's span) is one of its links too; Jaeger's
    # model then keeps one reference to it, FOLLOWS_FROM, first. The OTLP view (/api/v3)
    # still has the parent and every link as sent.
    otlp = _otlp_batches(jaeger_query, send.trace_id)
    batches = [s for s in spans if s.name == "flamingock.projection.batch"]
    assert batches
    assert {b.span_id for b in batches} == set(otlp)
    for batch in batches:
        assert batch.service == services.projector
        assert batch.tags["span.kind"] == "consumer"
        assert {kind for kind, _ in batch.references} == {"FOLLOWS_FROM"}, batch.references
        linked = batch.refs("FOLLOWS_FROM")
        assert all(by_id[span_id].service == services.runner for span_id in linked)
        parent, links = otlp[batch.span_id]
        assert parent == linked[0]
        assert set(links) == set(linked)
    every_link = {link for batch in batches for link in batch.refs("FOLLOWS_FROM")}
    assert runner[f"flamingock.change {UNITS[0]}"].span_id in every_link


def _otlp_batches(query: str, trace_id: str) -> dict[str, tuple[str, list[str]]]:
    """span id -> (parent span id, linked span ids) of each projection batch, as OTLP."""
    trace = _get(f"{query}/api/v3/traces/{trace_id}")["result"]
    return {span["spanId"]: (span["parentSpanId"], [link["spanId"] for link in span["links"]])
            for resource in trace["resourceSpans"] for scope in resource["scopeSpans"]
            for span in scope["spans"] if span["name"] == "flamingock.projection.batch"}
