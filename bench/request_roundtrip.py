"""Change-request round trip and tracing overhead; prints figures (not a timed test).

1. Round trip: publish a request, wait until its answer (``RunFinished`` with the request id)
   is visible in the audit log; ``serve`` runs in this process, in a thread. The workflow has
   one run-always no-op unit, so every request is a full run: lock, four events per run plus
   two per unit, unlock. Median and p99 over ``-n`` requests.
2. Tracing overhead: the same kind of no-op units run by the engine on an in-memory log and
   lock (so that fsync noise does not drown the figure), ``--units`` per run, with tracing
   off and on (spans to an in-memory exporter, or to an OTLP/HTTP endpoint if
   ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set); per-unit cost compared, runs interleaved.

    python bench/request_roundtrip.py --bus kafka://127.0.0.1:19092 -n 50
    python bench/request_roundtrip.py --bus local:/tmp/rt -n 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from flamingock_es import ChangeContext, Workflow, change_unit, telemetry
from flamingock_es.api import serve
from flamingock_es.core.backend import Backend
from flamingock_es.core.recorder import Observer
from flamingock_es.namespace import open_backend
from flamingock_es.request.client import OutcomeFollower
from flamingock_es.request.model import ChangeRequest, RequestCodec
from flamingock_es.run.progress import Progress
from flamingock_es.run.runner import Runner


def _noop(ctx: ChangeContext) -> None:
    pass


def _units(count: int, run_always: bool = True) -> list[object]:
    return [change_unit(id=f"noop-{i:04d}", order=i, author="bench",
                        run_always=run_always)(_noop)
            for i in range(count)]


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def round_trip(bus: str, count: int, run_always: bool = True) -> list[float]:
    """Seconds from publish to answer visible, per request: each runs its one no-op unit
    (``run_always``), or finds it applied already and only answers."""
    namespace = f"bench-rt-{uuid.uuid4().hex[:8]}"
    units = {"main": _units(1, run_always)}
    wf = Workflow.of(namespace, units, bus=bus, lock_timeout=60.0)  # type: ignore[arg-type]
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(wf,), kwargs={"stop": stop,
                                                                 "progress": Progress()})
    server.start()
    backend = open_backend(bus, namespace)
    follower = OutcomeFollower(backend)
    times: list[float] = []
    try:
        codec = RequestCodec()
        for i in range(count + 1):
            request = ChangeRequest(namespace=namespace, requested_by="bench",
                                    reason="round trip")
            started = time.perf_counter()
            backend.requests.publish(request.request_id, codec.encode(request))
            follower.wait(request.request_id, 120.0)
            if i:  # the first pays for topic creation and group joins (and applies the unit)
                times.append(time.perf_counter() - started)
    finally:
        follower.close()
        backend.close()
        stop.set()
        server.join(60)
    return times


class _MemoryLog:
    """An in-memory log and lock, so that the tracing figure is not lost in fsync noise."""

    name = "memory"
    messaging: dict[str, str] = {}

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.holder, self.lock, self.generation, self.lost = "bench", "memory", 1, False

    def read(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        yield from list(enumerate(self.records))[start:]

    def writer(self, lease: object) -> _MemoryLog:
        return self

    def append(self, records: Sequence[bytes], headers: object = None) -> list[int]:
        self.records.extend(records)
        return list(range(len(self.records) - len(records), len(self.records)))

    def acquire(self, holder: str, timeout: float, on_wait: object = None) -> _MemoryLog:
        return self

    def exists(self) -> bool:
        return True

    def latest(self) -> bytes | None:  # no snapshots: each run starts from an empty log
        return None

    def save(self, data: bytes) -> None: ...
    def check(self) -> None: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


def per_unit_cost(units: int, runs: int, exporter: object) -> dict[bool, float]:
    """Median seconds per no-op unit, tracing off and on, runs interleaved, in memory."""
    samples: dict[bool, list[float]] = {False: [], True: []}
    defined = _units(units)
    wf = Workflow.of("bench-trace", {"main": defined})  # type: ignore[dict-item]
    for _ in range(runs):
        for traced in (False, True):
            memory = _MemoryLog()
            backend = Backend("memory", wf.namespace, memory, memory,  # type: ignore[arg-type]
                              memory, memory)  # type: ignore[arg-type]
            observers: list[Observer] = [Progress()]
            if traced:
                telemetry.configure(exporter, force=True)
                observers.append(telemetry.TracingObserver(wf.namespace))
            runner = Runner(wf, backend, observers=observers,
                            trace=telemetry.current_trace if traced else (lambda: None))
            started = time.perf_counter()
            runner.run()
            samples[traced].append((time.perf_counter() - started) / units)
            if traced:
                telemetry.shutdown()
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default_bus = (f"kafka://{os.environ['FLAMINGOCK_KAFKA_BOOTSTRAP']}"
                   if os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP") else "")
    parser.add_argument("--bus", default=default_bus,
                        help="kafka://HOST:PORT or local:PATH (default: Kafka from "
                             "FLAMINGOCK_KAFKA_BOOTSTRAP, else a temporary local bus)")
    parser.add_argument("-n", type=int, default=50, help="requests (default 50)")
    parser.add_argument("--units", type=int, default=200, help="units per traced run")
    parser.add_argument("--runs", type=int, default=5, help="runs per tracing setting")
    args = parser.parse_args()

    telemetry.configure(force=True)
    with tempfile.TemporaryDirectory() as tmp:
        bus = args.bus or f"local:{Path(tmp)}"
        rows = {"nothing to run (answered only)": round_trip(bus, args.n, run_always=False),
                "one run-always no-op unit": round_trip(bus, args.n)}
    print(f"request round trip on {bus.split('?')[0]} ({args.n} requests each; goal on Kafka, "
          "nothing to run: median < 300 ms)")
    for label, times in rows.items():
        print(f"  {label:<32} median {statistics.median(times) * 1000:7.1f} ms   p99 "
              f"{_percentile(times, 99) * 1000:7.1f} ms   min {min(times) * 1000:.1f} ms   "
              f"max {max(times) * 1000:.1f} ms")

    exporter: object = None
    where = f"OTLP/HTTP {os.environ.get('OTEL_EXPORTER_OTLP_ENDPOINT')}"
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter, where = InMemorySpanExporter(), "in-memory exporter"
    cost = per_unit_cost(args.units, args.runs, exporter)
    off, on = cost[False], cost[True]
    print(f"per-unit cost of the engine ({args.units} no-op units x {args.runs} runs each way, "
          f"in-memory log and lock; tracing on = {where}):")
    print(f"  off {off * 1e6:8.1f} us/unit   on {on * 1e6:8.1f} us/unit   overhead "
          f"{(on - off) * 1e6:+8.1f} us/unit ({(on / off - 1) * 100:+.1f}%)")

if __name__ == "__main__":
    main()
