"""Append cost per change unit on Kafka, against the floor of bare transactional commits.

A unit costs what the runner spends on it: two ``Recorder.record()`` calls (ChangeStarted,
then ChangeSucceeded), each its own fenced transaction. The floor is two bare transactional
commits of one record each, with a raw confluent_kafka producer on the same broker.

    eval "$(scripts/services env)"; python bench/kafka_append.py [UNITS]
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from confluent_kafka import Producer

from flamingock_es.core.events import ChangeStarted, ChangeSucceeded
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import State
from flamingock_es.namespace import open_backend

BOOTSTRAP = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
UNITS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
WARMUP = 20
TUNED = {"retry.backoff.ms": 5, "retry.backoff.max.ms": 200}
"""What KafkaLogWriter sets: fast retries of CONCURRENT_TRANSACTIONS after a commit."""


def runner_units(units: int) -> float:
    backend = open_backend(f"kafka://{BOOTSTRAP}", f"bench-append-{uuid.uuid4().hex[:8]}")
    lease = backend.lock.acquire("bench", 30)
    recorder = Recorder(backend.log.writer(lease), State(),
                        RunIdentity(backend.namespace, "bench-run", local_actor()))

    def unit(i: int) -> None:
        recorder.record(ChangeStarted(unit_id=f"u{i}", stage="default", author="bench",
                                      checksum="c" * 64, template=None, parameters="{}",
                                      attempt=1, reason="pending"))
        recorder.record(ChangeSucceeded(unit_id=f"u{i}", checksum="c" * 64, duration_ms=1.0))

    for i in range(WARMUP):
        unit(-i - 1)
    started = time.perf_counter()
    for i in range(units):
        unit(i)
    elapsed = time.perf_counter() - started
    recorder.writer.close()
    lease.release()
    backend.close()
    return elapsed / units


def floor_units(units: int, tuned: bool) -> float:
    backend = open_backend(f"kafka://{BOOTSTRAP}", f"bench-floor-{uuid.uuid4().hex[:8]}")
    topic = f"flamingock.audit.{backend.namespace}"
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": topic,
                         "acks": "all", "enable.idempotence": True, "linger.ms": 0,
                         **(TUNED if tuned else {})})
    producer.init_transactions(30)
    record = b"x" * 400  # about the size of an encoded event

    def commit() -> None:
        producer.begin_transaction()
        producer.produce(topic, record, partition=0)
        producer.commit_transaction(30)

    for _ in range(WARMUP * 2):
        commit()
    started = time.perf_counter()
    for _ in range(units):
        commit()
        commit()
    elapsed = time.perf_counter() - started
    producer.flush(5)
    backend.close()
    return elapsed / units


def main() -> None:
    default_floor = floor_units(UNITS, tuned=False)
    floor = floor_units(UNITS, tuned=True)
    ours = runner_units(UNITS)
    print(f"units: {UNITS} (2 transactions each) on {BOOTSTRAP}")
    print(f"floor, librdkafka defaults:           {default_floor * 1000:8.2f} ms/unit")
    print(f"floor, same retry backoff as ours:    {floor * 1000:8.2f} ms/unit")
    print(f"flamingock-es (2 Recorder.record):    {ours * 1000:8.2f} ms/unit")
    print(f"ratio vs the tuned floor: {ours / floor:.2f} (goal <= 1.5); "
          f"vs the default floor: {ours / default_floor:.2f}")


if __name__ == "__main__":
    main()
