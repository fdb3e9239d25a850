"""OpenTelemetry: the spans the library records (API only), the W3C context it propagates,
and the SDK set-up the CLI does. See ``docs/tracing.md``."""

from __future__ import annotations

from .propagation import current_trace, extract, inject
from .setup import configure, shutdown
from .spans import (
    TracedLock,
    TracingObserver,
    deploy_span,
    enabled,
    process_span,
    projection_batch_span,
    request_span,
    traced_lock,
    tracer,
)

__all__ = [
    "TracedLock",
    "TracingObserver",
    "configure",
    "current_trace",
    "deploy_span",
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
