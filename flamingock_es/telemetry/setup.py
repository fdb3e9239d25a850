"""Setting the OpenTelemetry SDK up for the CLI and the services; libraries never call this.

The library itself uses only ``opentelemetry-api`` (the OpenTelemetry convention for
instrumented libraries): an application that embeds flamingock-es and installed its own SDK
``TracerProvider`` gets the spans there. The ``flamingock-es`` commands, being applications,
call :func:`configure`, which reads the standard environment when the ``[otel]`` extra is
installed: ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``; ``none`` turns it off), or an
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``;
``OTEL_SDK_DISABLED=true`` wins over both. Export is OTLP/HTTP with the exporter's own
``OTEL_EXPORTER_OTLP_*`` variables; the service name comes from ``OTEL_SERVICE_NAME``.
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import Any

__all__ = ["configure", "provider", "shutdown", "wanted_exporter"]

log = logging.getLogger(__name__)

EXPORT_TIMEOUT_MS = 2000
"""Bounds a process's exit when the OTLP endpoint does not answer (at most this long, once:
see :mod:`flamingock_es.telemetry.export`)."""

_provider: Any = None
"""The SDK ``TracerProvider`` that :func:`configure` installed, if any."""


def provider() -> Any:
    """The provider :func:`configure` installed, or ``None``."""
    return _provider


def wanted_exporter(env: Any = None) -> str | None:
    """The exporter the environment asks for, or None when tracing is off."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return None if exporter == "none" else exporter.split(",")[0].strip()
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def configure(exporter: Any = None, *, force: bool = False) -> bool:
    """Install an SDK provider from the environment (once); True if spans are recorded.

    ``exporter`` (a ``SpanExporter``) overrides the environment: tests and benchmarks pass
    an in-memory one. Without the ``[otel]`` extra, tracing asked for by the environment is
    reported once and left off.
    """
    global _provider
    if _provider is not None and not force:
        return True
    if force:
        shutdown()
    kind = "custom" if exporter is not None else wanted_exporter()
    if kind is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("OTEL_* asks for traces, but the OpenTelemetry SDK is not installed: "
                    "pip install 'flamingock-es[otel]'. Tracing stays off.")
        return False
    installed = TracerProvider(resource=Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", "flamingock-es")}))
    if exporter is not None:
        installed.add_span_processor(SimpleSpanProcessor(exporter))
    elif kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        installed.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        from .export import BoundedExporter

        timeout = min(float(os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT", EXPORT_TIMEOUT_MS)),
                      EXPORT_TIMEOUT_MS) / 1000
        # The exporter's own retry warnings would repeat what BoundedExporter says once.
        logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
        endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "the OTLP endpoint")
        installed.add_span_processor(BatchSpanProcessor(
            BoundedExporter(OTLPSpanExporter(timeout=timeout), endpoint, timeout),
            export_timeout_millis=EXPORT_TIMEOUT_MS))
    _provider = installed
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Flush and stop the provider :func:`configure` installed (no-op otherwise)."""
    global _provider
    installed, _provider = _provider, None
    if installed is not None:
        installed.shutdown()
