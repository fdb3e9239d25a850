"""The spans: a request's send and process, the lock wait, a run, each change and compensation,
each projection batch. One trace follows a deployment from the requesting service to the
projection worker.

Only ``opentelemetry-api`` is used here. With no SDK provider installed (by the application,
or by :func:`~flamingock_es.telemetry.setup.configure` in the CLI) every helper is a cheap
no-op. The engine knows nothing of OpenTelemetry: :class:`TracingObserver` hears of each step
as the recorder appends it (the same events progress output is drawn from) and opens and
closes its span, current while the step runs, so the recorder writes the span's context
into each audit event (see ``docs/tracing.md``).
Transports describe themselves with their own messaging attributes (``EventLog.messaging``,
``RequestChannel.messaging``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from .._version import __version__
from ..core.events import (
    AuditEvent,
    ChangeFailed,
    ChangeInterrupted,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    Payload,
    RunFinished,
    RunStarted,
    TraceContext,
)
from ..core.recorder import LockGone, NoRollback, Notice, Stopping, UpToDate, Waiting
from . import setup
from .propagation import current_trace, extract, inject

if TYPE_CHECKING:
    from ..core.codec import Recorded
    from ..core.ports import Delivery, Lease, Lock, WaitCallback

__all__ = [
    "NAMESPACE",
    "OUTCOME",
    "REQUEST_ID",
    "RUN_ID",
    "UNIT_ID",
    "TracedLock",
    "TracingObserver",
    "deploy_span",
    "enabled",
    "process_span",
    "projection_batch_span",
    "request_process",
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
def request_process(transport: Mapping[str, str], delivery: Delivery, request_id: str,
                    namespace: str, fallback: TraceContext | None,
                    group: str) -> Iterator[Callable[[str], None]]:
    """:func:`process_span` around handling one delivered request; yields a function that
    records the request's outcome on the span."""
    with process_span(transport, delivery.headers, group=group, offset=delivery.position,
                      key=delivery.key, request_id=request_id, namespace=namespace,
                      fallback=fallback) as span:
        if span is None:
            yield lambda outcome: None
        else:
            yield lambda outcome: span.set_attribute(OUTCOME, outcome)


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


class TracingObserver:
    """Spans from the steps a run records: the run, each change, each compensation.

    A span opens as its first event is about to be recorded and is made current (in the
    thread recording it), so that event and the ones of its step carry its context; it ends
    once its outcome is durable. Spans are kept by step, not on a stack, so steps recorded
    from several threads each keep their own.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._tracer = tracer()
        self._open: dict[tuple[str, str], tuple[Span, object]] = {}
        self._run_id = ""
        self._attached = threading.local()
        """Per thread, the contexts attached, oldest first: each is detached once it and
        every one attached after it have ended (one unit's outcome and the next unit's
        start share an append, so the next span opens before the last one ends)."""

    def recording(self, payload: Payload) -> None:
        if isinstance(payload, RunStarted):
            self._start("run", "", "flamingock.run", {"flamingock.run.planned":
                                                      len(payload.planned)})
        elif isinstance(payload, ChangeStarted):
            self._start("unit", payload.unit_id, f"flamingock.change {payload.unit_id}", {
                UNIT_ID: payload.unit_id, "flamingock.stage": payload.stage,
                "flamingock.reason": payload.reason})
        elif isinstance(payload, CompensationStarted):
            self._start("compensation", payload.unit_id,
                        f"flamingock.compensation {payload.unit_id}",
                        {UNIT_ID: payload.unit_id, "flamingock.reason": payload.reason})

    def recorded(self, event: AuditEvent) -> None:
        p = event.payload
        if isinstance(p, RunStarted):
            self._run_id = event.run_id
            self._attribute("run", "", RUN_ID, event.run_id)
        elif isinstance(p, ChangeSucceeded):
            self._end("unit", p.unit_id, "APPLIED")
        elif isinstance(p, ChangeFailed):
            self._end("unit", p.unit_id, "FAILED", p.error)
        elif isinstance(p, ChangeInterrupted):
            role = "compensation" if p.compensating else "unit"
            self._end(role, p.unit_id, "INTERRUPTED",
                      ErrorInfo(type="Interrupted", message=f"{p.signal}: {p.reason}"))
        elif isinstance(p, CompensationSucceeded):
            self._end("compensation", p.unit_id, "ROLLED_BACK")
        elif isinstance(p, CompensationFailed):
            self._end("compensation", p.unit_id, "ROLLBACK_FAILED", p.error)
        elif isinstance(p, RunFinished):
            self.close(p.outcome.value, p.error)

    def notice(self, notice: Notice) -> None:
        span = trace.get_current_span()
        if isinstance(notice, Waiting):
            span.add_event("waiting for the lock",
                           {"seconds": notice.seconds, "holder": notice.holder})
        elif isinstance(notice, UpToDate):
            span.set_attribute(OUTCOME, "UP_TO_DATE")
        elif isinstance(notice, LockGone):
            self.close("LOCK_LOST", ErrorInfo(type="LockLostError", message=notice.why))
        elif isinstance(notice, NoRollback):
            span.add_event("no rollback", {UNIT_ID: notice.unit_id})
        elif isinstance(notice, Stopping):  # told from the signals' thread: the run's span
            run = self._open.get(("run", ""))
            if run is not None:
                run[0].add_event("stop requested", {"signal": notice.signal,
                                                    "grace_s": notice.grace})

    def _start(self, role: str, unit_id: str, name: str, attrs: dict[str, Any]) -> None:
        attrs = {NAMESPACE: self.namespace, **attrs}
        if self._run_id:
            attrs[RUN_ID] = self._run_id
        run = self._open.get(("run", ""))
        parent = trace.set_span_in_context(run[0]) if run is not None and role != "run" \
            else None
        span = self._tracer.start_span(name, context=parent, attributes=attrs)
        token = otel_context.attach(trace.set_span_in_context(span))
        self._open[(role, unit_id)] = (span, token)
        self._stack().append([token, False])

    def _attribute(self, role: str, unit_id: str, key: str, value: str) -> None:
        found = self._open.get((role, unit_id))
        if found is not None:
            found[0].set_attribute(key, value)

    def _end(self, role: str, unit_id: str, outcome: str,
             error: ErrorInfo | None = None) -> None:
        found = self._open.pop((role, unit_id), None)
        if found is None:
            return
        span, token = found
        span.set_attribute(OUTCOME, outcome)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.set_attribute(error_attributes.ERROR_TYPE, error.type)
        span.end()
        stack = self._stack()
        for entry in stack:
            if entry[0] is token:
                entry[1] = True
        while stack and stack[-1][1]:
            otel_context.detach(stack.pop()[0])

    def _stack(self) -> list[list[Any]]:
        stack: list[list[Any]] | None = getattr(self._attached, "stack", None)
        if stack is None:
            stack = self._attached.stack = []
        return stack

    def close(self, outcome: str | None = None, error: ErrorInfo | None = None) -> None:
        """End every span still open, the run's last (a run that raised before its
        ``RunFinished`` leaves its steps' spans open)."""
        for role, unit_id in [key for key in self._open if key[0] != "run"][::-1]:
            self._end(role, unit_id, "INTERRUPTED")
        if ("run", "") in self._open:
            self._end("run", "", outcome or "FAILED", error)
