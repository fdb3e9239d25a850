"""Projection lag: how long after an audit event is appended its effect is readable.

Appends ChangeStarted/ChangeSucceeded events at ``--rate`` per second for ``--seconds``
through the runner's path (a Recorder on a leased writer), while a ProjectionWorker follows
the log into the store. A poller reads each event's unit document by key until it reflects
the event's position, and records the lag from the append's return. Then it fills a backlog
and times a catch-up, for the worker's maximum sustainable events/s.

    eval "$(scripts/services env)"
    PYTHONPATH=. python bench/projection_lag.py             # Kafka + Couchbase from the env
    PYTHONPATH=. python bench/projection_lag.py --bus local:/tmp/b  # embedded log
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time
import uuid

from flamingock_es.projections import ProjectionWorker
from flamingock_es.projections.documents import unit_key
from flamingock_es.projections.stores import ProjectionStore

from flamingock_es.core.events import ChangeStarted, ChangeSucceeded, Payload
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import State
from flamingock_es.namespace import Backend, open_backend, open_store

UNITS = 200


def payload(i: int) -> Payload:
    unit = f"u-{(i // 2) % UNITS:04d}"
    if i % 2 == 0:
        return ChangeStarted(unit_id=unit, stage="bench", author="bench", checksum="c",
                             template=None, parameters="{}", attempt=1, reason="bench")
    return ChangeSucceeded(unit_id=unit, checksum="c", duration_ms=1.0)


def recorder(backend: Backend) -> tuple[Recorder, object]:
    lease = backend.lock.acquire("bench", 60)
    identity = RunIdentity(backend.namespace, f"bench-{uuid.uuid4().hex[:8]}", local_actor())
    return Recorder(backend.log.writer(lease), State(), identity), lease


def measure_lag(bus: str, store_url: str, rate: float, seconds: float) -> None:
    namespace = f"lag-{uuid.uuid4().hex[:8]}"
    backend = open_backend(bus, namespace)
    worker_store, poll_store = open_store(store_url), open_store(store_url)
    stop = threading.Event()
    worker = ProjectionWorker(backend.log, worker_store, namespace, batch_size=500)
    worker_thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    worker_thread.start()
    pending: queue.Queue[tuple[str, int, float] | None] = queue.Queue()
    lags: list[float] = []
    poller = threading.Thread(target=poll, args=(poll_store, pending, lags), daemon=True)
    poller.start()
    rec, lease = recorder(backend)
    total = int(rate * seconds)
    started = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        batch = [payload(i) for i in range(sent, due)]
        if batch:
            events = rec.record(*batch)
            now = time.monotonic()
            for event in events:
                unit = event.payload.unit_id  # type: ignore[attr-defined]
                position = rec.state.units[unit].position
                pending.put((unit_key(namespace, unit), position, now))
            sent = due
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    elapsed = time.monotonic() - started
    pending.put(None)
    poller.join()
    stop.set()
    worker_thread.join(timeout=30)
    rec.writer.close()
    lease.release()  # type: ignore[attr-defined]
    backend.close()
    worker_store.close()
    poll_store.close()
    lags.sort()
    ms = [x * 1000 for x in lags]
    print(f"appended {sent} events in {elapsed:.1f}s ({sent / elapsed:.0f}/s) on {bus}")
    print(f"lag until readable in {store_url.split('?')[0]}: p50 {statistics.median(ms):.1f} ms"
          f"  p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms  max {ms[-1]:.1f} ms  (n={len(ms)})")


def poll(store: ProjectionStore, pending: queue.Queue[tuple[str, int, float] | None],
         lags: list[float]) -> None:
    """Every 2 ms, read the unit documents of all events not yet seen (one multi-get by key)
    and record the lag of each event whose document now reflects its position."""
    outstanding: list[tuple[str, int, float]] = []
    finished = False
    while not (finished and not outstanding):
        while True:
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
            if item is None:
                finished = True
            else:
                outstanding.append(item)
        if outstanding:
            found = store.get_many(sorted({key for key, _, _ in outstanding}))
            now = time.monotonic()
            waiting = []
            for key, position, appended in outstanding:
                doc = found.get(key)
                if doc is not None and doc.doc["position"] >= position:
                    lags.append(now - appended)
                else:
                    waiting.append((key, position, appended))
            outstanding = waiting
        time.sleep(0.002)


def measure_throughput(bus: str, store_url: str, backlog: int) -> None:
    namespace = f"tput-{uuid.uuid4().hex[:8]}"
    backend = open_backend(bus, namespace)
    rec, lease = recorder(backend)
    for start in range(0, backlog, 500):
        rec.record(*(payload(i) for i in range(start, min(backlog, start + 500))))
    rec.writer.close()
    lease.release()  # type: ignore[attr-defined]
    store = open_store(store_url)
    started = time.monotonic()
    ProjectionWorker(backend.log, store, namespace, batch_size=1000).run(once=True)
    elapsed = time.monotonic() - started
    store.close()
    backend.close()
    print(f"catch-up of a {backlog}-event backlog: {elapsed:.2f}s = "
          f"{backlog / elapsed:.0f} events/s (fold + documents + checkpoint)")


def main() -> None:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", default=f"kafka://{env.get('FLAMINGOCK_KAFKA_BOOTSTRAP', '')}")
    parser.add_argument("--store", default=f"{env.get('FLAMINGOCK_COUCHBASE_URL', '')}"
                        f"?bucket={env.get('FLAMINGOCK_COUCHBASE_BUCKET', 'default')}")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--backlog", type=int, default=20000)
    args = parser.parse_args()
    measure_lag(args.bus, args.store, args.rate, args.seconds)
    measure_throughput(args.bus, args.store, args.backlog)


if __name__ == "__main__":
    main()
