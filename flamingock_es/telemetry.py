"""OpenTelemetry tracing: one trace from the requesting service to the projection worker.

Off unless the standard environment says otherwise: ``OTEL_TRACES_EXPORTER`` (``otlp`` or
``console``; ``none`` turns it off), or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins over both. Export is
OTLP/HTTP, configured by the exporter's own ``OTEL_EXPORTER_OTLP_*`` variables; the service
name by ``OTEL_SERVICE_NAME``. An application that installed its own SDK ``TracerProvider``
gets the spans there. When off, every helper here is a cheap no-op.

The engine knows nothing of OpenTelemetry: :class:`TracingReporter` turns the runner's
:class:`~flamingock_es.reporting.Reporter` callbacks into spans and makes them current, and
:func:`current_trace` hands the current span's W3C context to the
:class:`~flamingock_es.recorder.Recorder`, which writes it into each audit event and its
Kafka headers. See ``docs/tracing.md`` for the span tree.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .events import ErrorInfo, TraceContext
from .reporting import Reporter

if TYPE_CHECKING:
    from .codec import Recorded
    from .engine import RunResult
    from .planner import Plan, PlannedUnit
    from .ports import Lease, Lock, WaitCallback
    from .requests import ChangeRequest

__all__ = [
    "TracingReporter",
    "configure",
    "current_trace",
    "enabled",
    "extract",
    "inject",
    "process_span",
    "projection_batch_span",
    "request_span",
    "shutdown",
    "traced_lock",
    "tracer",
]

NAMESPACE = "flamingock.namespace"
UNIT_ID = "flamingock.unit.id"
RUN_ID = "flamingock.run.id"
OUTCOME = "flamingock.outcome"
REQUEST_ID = "flamingock.request.id"
# Semantic-convention names (opentelemetry.semconv's incubating messaging attributes).
MSG_SYSTEM = "messaging.system"
MSG_DESTINATION = "messaging.destination.name"
MSG_OPERATION_TYPE = "messaging.operation.type"
MSG_OPERATION_NAME = "messaging.operation.name"
MSG_MESSAGE_ID = "messaging.message.id"
MSG_CONSUMER_GROUP = "messaging.consumer.group.name"
MSG_KAFKA_KEY = "messaging.kafka.message.key"
MSG_KAFKA_OFFSET = "messaging.kafka.offset"
MSG_BATCH_COUNT = "messaging.batch.message_count"

_W3C = TraceContextTextMapPropagator()
_state: dict[str, Any] = {"configured": False, "enabled": False, "provider": None}


def _wanted() -> str | None:
    """The exporter the environment asks for, or None when tracing is off."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return None if exporter == "none" else exporter.split(",")[0].strip()
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or \
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def configure(exporter: Any = None, *, force: bool = False) -> bool:
    """Set tracing up from the environment (once); True if spans are recorded.

    ``exporter`` (a ``SpanExporter``) overrides the environment: tests and benchmarks pass
    an in-memory one. An SDK provider the application installed is used as it is.
    """
    if _state["configured"] and not force:
        return bool(_state["enabled"])
    _state["configured"] = True
    from opentelemetry.sdk.trace import TracerProvider

    if exporter is None and isinstance(trace.get_tracer_provider(), TracerProvider):
        _state["enabled"] = True
        return True
    kind = "custom" if exporter is not None else _wanted()
    if kind is None:
        _state["enabled"] = False
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "flamingock-es")}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _state["provider"] = provider
    _state["enabled"] = True
    atexit.register(shutdown)
    return True


def enabled() -> bool:
    """True if spans are recorded (configures from the environment on first call)."""
    return bool(_state["enabled"]) if _state["configured"] else configure()


def shutdown() -> None:
    """Flush and stop the provider this module installed (no-op otherwise)."""
    provider = _state.get("provider")
    if provider is not None:
        _state["provider"] = None
        provider.shutdown()


def tracer(name: str = "flamingock_es") -> trace.Tracer:
    """A tracer from the provider in use (this module's, or the application's)."""
    from . import __version__

    enabled()
    provider = _state.get("provider")
    if provider is not None:
        return provider.get_tracer(name, __version__)  # type: ignore[no-any-return]
    return trace.get_tracer(name, __version__)


_tracer = tracer


# W3C context ------------------------------------------------------------------------------

def current_trace() -> TraceContext | None:
    """The current span's W3C context, for :class:`Recorder`; None when there is none."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    state = ctx.trace_state.to_header() if ctx.trace_state else ""
    return TraceContext(traceparent=f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-"
                                    f"{int(ctx.trace_flags):02x}", tracestate=state or None)


def inject() -> dict[str, str]:
    """The current context as message headers (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None = None,
            fallback: TraceContext | None = None) -> otel_context.Context | None:
    """The context in ``headers``, else in ``fallback`` (an event's or request's field)."""
    carrier = dict(headers or {})
    if "traceparent" not in carrier and fallback is not None:
        carrier = {"traceparent": fallback.traceparent}
        if fallback.tracestate:
            carrier["tracestate"] = fallback.tracestate
    if "traceparent" not in carrier:
        return None
    ctx = _W3C.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


# Messaging spans --------------------------------------------------------------------------

def _messaging(destination: str, operation: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {MSG_DESTINATION: destination, MSG_OPERATION_TYPE: operation,
                             MSG_OPERATION_NAME: operation}
    if not destination.startswith("file:"):
        attrs[MSG_SYSTEM] = "kafka"
    return attrs


@contextmanager
def request_span(destination: str, request: ChangeRequest
                 ) -> Iterator[tuple[ChangeRequest, dict[str, str]]]:
    """A PRODUCER span around publishing ``request``; yields it with its trace and headers.

    With tracing off, a context the application itself made current is still propagated.
    """
    if not enabled():
        trace_ctx = current_trace()
        yield (replace(request, trace=trace_ctx) if trace_ctx else request), inject()
        return
    attrs = {**_messaging(destination, "send"), MSG_MESSAGE_ID: request.request_id,
             MSG_KAFKA_KEY: request.request_id, NAMESPACE: request.namespace,
             REQUEST_ID: request.request_id}
    with _tracer().start_as_current_span(f"send {destination}", kind=SpanKind.PRODUCER,
                                         attributes=attrs):
        yield replace(request, trace=current_trace()), inject()


@contextmanager
def process_span(destination: str, headers: Mapping[str, str], request: ChangeRequest | None,
                 *, group: str, offset: int, key: str | None) -> Iterator[Span | None]:
    """A CONSUMER span for handling one request, child of the requester's span."""
    if not enabled():
        yield None
        return
    parent = extract(headers, request.trace if request else None)
    attrs: dict[str, Any] = {**_messaging(destination, "process"), MSG_CONSUMER_GROUP: group,
                             MSG_KAFKA_OFFSET: offset}
    if key:
        attrs[MSG_KAFKA_KEY] = key
    if request is not None:
        attrs |= {MSG_MESSAGE_ID: request.request_id, REQUEST_ID: request.request_id,
                  NAMESPACE: request.namespace}
    with _tracer().start_as_current_span(f"process {destination}", context=parent,
                                         kind=SpanKind.CONSUMER, attributes=attrs) as span:
        yield span


@contextmanager
def projection_batch_span(records: Sequence[Recorded], destination: str = "",
                          namespace: str = "") -> Iterator[Span | None]:
    """A span for one projection batch: linked to every traced event in it.

    Its parent is the context of the batch's last traced event, so a deployment's trace
    continues into the read side; the links name all of them (a batch may span runs).
    """
    if not enabled() or not records:
        yield None
        return
    links: list[Link] = []
    seen: set[int] = set()
    parent: otel_context.Context | None = None
    for record in records:
        event = record.event
        if event.trace is None:
            continue
        ctx = extract(None, event.trace)
        sc = trace.get_current_span(ctx).get_span_context() if ctx is not None else None
        if sc is None or sc.span_id in seen:
            continue
        seen.add(sc.span_id)
        links.append(Link(sc, {"flamingock.event.seq": event.seq}))
        parent = trace.set_span_in_context(trace.NonRecordingSpan(sc))
    if destination.startswith("kafka:"):  # an EventLog name: kafka:TOPIC@BOOTSTRAP
        destination = destination[len("kafka:"):].split("@", 1)[0]
    attrs: dict[str, Any] = {**_messaging(destination or "audit", "process"),
                             MSG_BATCH_COUNT: len(records)}
    if namespace or records[0].event.namespace:
        attrs[NAMESPACE] = namespace or records[0].event.namespace
    with _tracer().start_as_current_span("flamingock.projection.batch", context=parent,
                                         kind=SpanKind.CONSUMER, links=links,
                                         attributes=attrs) as span:
        yield span


# Lock and engine spans --------------------------------------------------------------------

class TracedLock:
    """Wraps a :class:`~flamingock_es.ports.Lock` so that waiting for it is a span."""

    def __init__(self, inner: Lock, namespace: str) -> None:
        self.inner, self.namespace = inner, namespace

    def acquire(self, holder: str, timeout: float,
                on_wait: WaitCallback | None = None) -> Lease:
        with _tracer().start_as_current_span(
                "flamingock.lock.wait", attributes={NAMESPACE: self.namespace,
                                                    "flamingock.lock.holder": holder}) as span:
            lease = self.inner.acquire(holder, timeout, on_wait)
            span.set_attributes({"flamingock.lock.name": lease.lock,
                                 "flamingock.lock.generation": lease.generation})
            return lease

    def close(self) -> None:
        self.inner.close()


def traced_lock(lock: Lock, namespace: str) -> Lock:
    """``lock`` with a span around each acquisition when tracing is on; else ``lock`` itself."""
    return TracedLock(lock, namespace) if enabled() else lock


class TracingReporter(Reporter):
    """Opens and closes spans on the runner's callbacks, then forwards them to ``inner``.

    Spans are made current, so the audit events written inside them carry their context.
    """

    def __init__(self, inner: Reporter, namespace: str) -> None:
        self.inner, self.namespace = inner, namespace
        self._tracer = _tracer()
        self._stack: list[tuple[str, Span, object]] = []
        self._run_id = ""

    def _open(self, role: str, name: str, attrs: dict[str, Any]) -> None:
        span = self._tracer.start_span(name, attributes={NAMESPACE: self.namespace, **attrs})
        token = otel_context.attach(trace.set_span_in_context(span))
        self._stack.append((role, span, token))

    def _close(self, role: str, outcome: str | None = None,
               error: ErrorInfo | None = None) -> None:
        """End the innermost ``role`` span (and anything left open inside it)."""
        if not any(r == role for r, _, _ in self._stack):
            return
        while self._stack:
            r, span, token = self._stack.pop()
            if r == role:
                if outcome is not None:
                    span.set_attribute(OUTCOME, outcome)
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, str(error)))
                    span.set_attribute("error.type", error.type)
            span.end()
            otel_context.detach(token)  # type: ignore[arg-type]
            if r == role:
                return

    def close(self) -> None:
        """End every span still open (a run that raised before ``run_finished``)."""
        while self._stack:
            self._close(self._stack[-1][0])

    def waiting(self, seconds: float, holder: str) -> None:
        trace.get_current_span().add_event("waiting for the lock",
                                           {"seconds": seconds, "holder": holder})
        self.inner.waiting(seconds, holder)

    def up_to_date(self, plan: Plan, after_wait: bool = False) -> None:
        trace.get_current_span().set_attribute(OUTCOME, "UP_TO_DATE")
        self.inner.up_to_date(plan, after_wait)

    def run_started(self, run_id: str, plan: Plan) -> None:
        self._run_id = run_id
        self._open("run", "flamingock.run", {RUN_ID: run_id,
                                             "flamingock.run.planned": len(plan.to_run)})
        self.inner.run_started(run_id, plan)

    def drift_accepted(self, unit_id: str) -> None:
        trace.get_current_span().add_event("checksum drift accepted", {UNIT_ID: unit_id})
        self.inner.drift_accepted(unit_id)

    def unit_started(self, index: int, total: int, planned: PlannedUnit) -> None:
        self._open("unit", f"flamingock.change {planned.unit.id}", {
            UNIT_ID: planned.unit.id, RUN_ID: self._run_id, "flamingock.stage": planned.stage,
            "flamingock.reason": planned.reason})
        self.inner.unit_started(index, total, planned)

    def unit_applied(self, unit_id: str, ms: float) -> None:
        self._close("unit", "APPLIED")
        self.inner.unit_applied(unit_id, ms)

    def unit_failed(self, unit_id: str, error: ErrorInfo, ms: float) -> None:
        self._close("unit", "FAILED", error)
        self.inner.unit_failed(unit_id, error, ms)

    def compensation_started(self, unit_id: str, reason: str) -> None:
        self._open("compensation", f"flamingock.compensation {unit_id}", {
            UNIT_ID: unit_id, RUN_ID: self._run_id, "flamingock.reason": reason})
        self.inner.compensation_started(unit_id, reason)

    def compensation_succeeded(self, unit_id: str, ms: float) -> None:
        self._close("compensation", "ROLLED_BACK")
        self.inner.compensation_succeeded(unit_id, ms)

    def compensation_failed(self, unit_id: str, error: ErrorInfo,
                            original: ErrorInfo | None) -> None:
        self._close("compensation", "ROLLBACK_FAILED", error)
        self.inner.compensation_failed(unit_id, error, original)

    def no_rollback(self, unit_id: str) -> None:
        trace.get_current_span().add_event("no rollback", {UNIT_ID: unit_id})
        self.inner.no_rollback(unit_id)

    def lock_lost(self, why: str) -> None:
        self._close("run", "LOCK_LOST", ErrorInfo(type="LockLostError", message=why))
        self.inner.lock_lost(why)

    def run_finished(self, result: RunResult) -> None:
        outcome = result.outcome.value if result.outcome else "UP_TO_DATE"
        self._close("run", outcome, result.error)
        self.inner.run_finished(result)
