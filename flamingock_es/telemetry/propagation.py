"""W3C trace context: from the current span into audit events and message headers, and back."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..core.events import TraceContext

__all__ = ["current_trace", "extract", "inject"]

_W3C = TraceContextTextMapPropagator()


def current_trace() -> TraceContext | None:
    """The current span's W3C context, for the recorder; None when there is none."""
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
