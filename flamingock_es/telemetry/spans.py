"""The spans: a request's send and process, the lock wait, a run, each change and compensation,
each projection batch. One trace follows a deployment from the requesting service to the
projection worker.

Only ``opentelemetry-api`` is used here. With no SDK provider installed (by the application,
or by :func:`~flamingock_es.telemetry.setup.configure` in the CLI) every helper is a cheap
no-op. The engine knows nothing of OpenTelemetry: :class:`TracingProgress` turns the runner's
:class:`~flamingock_es.run.progress.Progress` callbacks into spans and makes them current, and the
recorder writes the current context into each audit event (see ``docs/tracing.md``).
Transports describe themselves with their own messaging attributes (``EventLog.messaging``,
``RequestChannel.messaging``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from .._version import __version__
from ..core.events import ErrorInfo, TraceContext
from ..run.progress import Progress
from . import setup
from .propagation import current_trace, extract, inject

if TYPE_CHECKING:
    from ..core.codec import Recorded
    from ..core.ports import Lease, Lock, WaitCallback
    from ..run.planner import Plan, PlannedUnit
    from ..run.results import RunResult

__all__ = [
    "NAMESPACE",
    "OUTCOME",
    "REQUEST_ID",
    "RUN_ID",
    "UNIT_ID",
    "TracedLock",
    "TracingProgress",
    "deploy_span",
    "enabled",
    "process_span",
    "projection_batch_span",
    "request_span",
    "traced_lock",
    "tracer",
]

NAMESPACE = "flamingock.namespace"
UNIT_ID = "flamingock.unit.id"
RUN_ID = "flamingock.run.id"
OUTCOME = "flamingock.outcome"
REQUEST_ID = "flamingock.request.id"


def enabled() -> bool:
    """True if spans are recorded: the CLI configured an SDK, or the application installed one."""
    if setup.provider() is not None:
        return True
    return not isinstance(trace.get_tracer_provider(),
                          trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer(name: str = "flamingock_es") -> trace.Tracer:
    """A tracer from the provider in use (the CLI's, or the application's)."""
    installed = setup.provider()
    if installed is not None:
        return installed.get_tracer(name, __version__)  # type: ignore[no-any-return]
    return trace.get_tracer(name, __version__)


# Messaging spans --------------------------------------------------------------------------

def _messaging(transport: Mapping[str, str], operation: str) -> dict[str, Any]:
    return {**transport, msg.MESSAGING_OPERATION_TYPE: operation,
            msg.MESSAGING_OPERATION_NAME: operation}


@contextmanager
def request_span(transport: Mapping[str, str], request_id: str, namespace: str
                 ) -> Iterator[tuple[TraceContext | None, dict[str, str]]]:
    """A PRODUCER span around publishing a request; yields its trace context and headers.

    With tracing off, a context the application itself made current is still propagated.
    """
    if not enabled():
        yield current_trace(), inject()
        return
    destination = transport.get(msg.MESSAGING_DESTINATION_NAME, "requests")
    attrs = {**_messaging(transport, "send"), msg.MESSAGING_MESSAGE_ID: request_id,
             msg.MESSAGING_KAFKA_MESSAGE_KEY: request_id, NAMESPACE: namespace,
             REQUEST_ID: request_id}
    with tracer().start_as_current_span(f"send {destination}", kind=SpanKind.PRODUCER,
                                        attributes=attrs):
        yield current_trace(), inject()


@contextmanager
def process_span(transport: Mapping[str, str], headers: Mapping[str, str], *,
                 group: str, offset: int, key: str | None, request_id: str | None,
                 namespace: str | None, fallback: TraceContext | None
                 ) -> Iterator[Span | None]:
    """A CONSUMER span for handling one request, child of the requester's span."""
    if not enabled():
        yield None
        return
    parent = extract(headers, fallback)
    attrs: dict[str, Any] = {**_messaging(transport, "process"),
                             msg.MESSAGING_CONSUMER_GROUP_NAME: group,
                             msg.MESSAGING_KAFKA_OFFSET: offset}
    if key:
        attrs[msg.MESSAGING_KAFKA_MESSAGE_KEY] = key
    if request_id is not None:
        attrs |= {msg.MESSAGING_MESSAGE_ID: request_id, REQUEST_ID: request_id}
    if namespace is not None:
        attrs[NAMESPACE] = namespace
    destination = transport.get(msg.MESSAGING_DESTINATION_NAME, "requests")
    with tracer().start_as_current_span(f"process {destination}", context=parent,
                                        kind=SpanKind.CONSUMER, attributes=attrs) as span:
        yield span


@contextmanager
def projection_batch_span(records: Sequence[Recorded], transport: Mapping[str, str],
                          namespace: str) -> Iterator[Span | None]:
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
    attrs: dict[str, Any] = {**_messaging(transport, "process"), NAMESPACE: namespace,
                             msg.MESSAGING_BATCH_MESSAGE_COUNT: len(records)}
    with tracer().start_as_current_span("flamingock.projection.batch", context=parent,
                                        kind=SpanKind.CONSUMER, links=links,
                                        attributes=attrs) as span:
        yield span


# Lock and engine spans --------------------------------------------------------------------

@contextmanager
def deploy_span(namespace: str) -> Iterator[None]:
    """The root span of a deployment that no request started: the lock wait and the run."""
    if not enabled():
        yield
        return
    with tracer().start_as_current_span("flamingock.deploy", attributes={NAMESPACE: namespace}):
        yield


class TracedLock:
    """Wraps a :class:`~flamingock_es.core.ports.Lock` so that waiting for it is a span."""

    def __init__(self, inner: Lock, namespace: str) -> None:
        self.inner, self.namespace = inner, namespace

    def acquire(self, holder: str, timeout: float,
                on_wait: WaitCallback | None = None) -> Lease:
        if not enabled():
            return self.inner.acquire(holder, timeout, on_wait)
        with tracer().start_as_current_span(
                "flamingock.lock.wait", attributes={NAMESPACE: self.namespace,
                                                    "flamingock.lock.holder": holder}) as span:
            lease = self.inner.acquire(holder, timeout, on_wait)
            span.set_attribute("flamingock.lock.name", lease.lock)
            return lease

    def holder(self) -> str | None:
        return self.inner.holder()

    def close(self) -> None:
        self.inner.close()


def traced_lock(lock: Lock, namespace: str) -> Lock:
    """``lock`` with a span around each acquisition whenever tracing is on."""
    return TracedLock(lock, namespace)


class TracingProgress(Progress):
    """Opens and closes spans on the runner's callbacks, then forwards them to ``inner``.

    Spans are made current, so the audit events written inside them carry their context.
    """

    def __init__(self, inner: Progress, namespace: str) -> None:
        self.inner, self.namespace = inner, namespace
        self._tracer = tracer()
        self._stack: list[tuple[str, Span, object]] = []
        self._run_id = ""

    @classmethod
    def wrap(cls, inner: Progress, namespace: str) -> Progress:
        """``inner`` traced when tracing is on, else ``inner`` itself."""
        return cls(inner, namespace) if enabled() else inner

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
                    span.set_attribute(error_attributes.ERROR_TYPE, error.type)
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
