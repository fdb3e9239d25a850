"""An exporter wrapper that bounds what an unreachable OTLP endpoint costs a process.

The OTLP exporter retries a refused or silent endpoint with backoff; at exit the batch
processor waits for it, and each failed attempt logs its own lines. A command must not take
seconds longer, nor print a stack of warnings, because a collector is down: every export
gets at most ``timeout`` seconds (in a thread, so a slow exporter version cannot hold the
caller longer), the first failure logs one warning line, and while the endpoint is down
(``cooldown`` seconds) further spans are dropped at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["BoundedExporter"]

log = logging.getLogger("flamingock_es.telemetry")


class BoundedExporter(SpanExporter):
    """Wraps ``inner``: a bounded export, one warning per outage, no retry storm."""

    def __init__(self, inner: SpanExporter, endpoint: str, timeout: float,
                 cooldown: float = 30.0) -> None:
        self.inner, self.endpoint = inner, endpoint
        self.timeout, self.cooldown = timeout, cooldown
        self._down_until = 0.0
        self._dropped = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if time.monotonic() < self._down_until:
            self._dropped += len(spans)
            return SpanExportResult.FAILURE
        outcome: list[Any] = []
        worker = threading.Thread(target=lambda: outcome.append(self._export(spans)),
                                  daemon=True, name="flamingock-otlp-export")
        worker.start()
        worker.join(self.timeout)
        result = outcome[0] if outcome else None
        if result is SpanExportResult.SUCCESS:
            if self._down_until:
                log.info("traces reach %s again", self.endpoint)
            self._down_until = 0.0
            return result
        if not self._down_until:
            why = f"no answer within {self.timeout:g}s" if result is None else (
                result if isinstance(result, str) else "the export failed")
            log.warning("traces could not be exported to %s (%s); spans are dropped while "
                        "it is down (tracing never delays or fails a run)", self.endpoint, why)
        self._down_until = time.monotonic() + self.cooldown
        self._dropped += len(spans)
        return SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult | str:
        try:
            return self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not reach the run
            return f"{type(exc).__name__}: {exc}"

    def shutdown(self) -> None:
        worker = threading.Thread(target=self.inner.shutdown, daemon=True)
        worker.start()
        worker.join(self.timeout)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
