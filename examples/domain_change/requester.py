"""The "orders" service: asks, over the bus, for the domain change, and waits for the answer.

Run: python requester.py   (after `flamingock-es serve` is up; see README.md)
"""

from __future__ import annotations

import sys

from flamingock_es import telemetry
from flamingock_es.api import request_changes
from flamingock_es.core.state import RunState

if __name__ == "__main__":
    telemetry.configure()  # an application sets the SDK up: OTEL_* variables decide
    tracer = telemetry.tracer("orders-service")
    with tracer.start_as_current_span("release orders v2 (delivery window)"):
        answer = request_changes(
            bus="kafka://127.0.0.1:19092", namespace="orders-domain",
            reason="release 2.0: delivery window", requested_by="orders-service",
            service="orders-service 2.0.0", wait=True, timeout=120).answer
    telemetry.shutdown()
    assert isinstance(answer, RunState)
    print(f"request {answer.request_id}: {answer.outcome} (run {answer.run_id}), "
          f"applied {', '.join(answer.applied) or 'nothing'}"
          + (f"; error: {answer.error}" if answer.error else ""))
    sys.exit(0 if answer.outcome == "SUCCEEDED" else 1)
