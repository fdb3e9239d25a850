"""Replay speed on Kafka: the runner's fold over the audit topic vs a bare consume+decode.

Fills a fresh audit topic with real sealed events (a chained run of ChangeStarted and
ChangeSucceeded), then times, in turn, (a) ``fold(AuditCodec().decode_all(KafkaEventLog
.read()))`` (hash checked per event, chain, seq, signatures collected, unreadable records
noted) and (b) a bare ``read_committed`` consumer decoding each value with
``fastavro.schemaless_reader``, over the same topic. Goal: (a) >= 0.9 x (b).

    eval "$(scripts/services env)"; python bench/kafka_replay.py [EVENTS] [ROUNDS]
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from flamingock_es.adapters.kafka.event_log import _READ_CONFIG
from flamingock_es.core.codec import AuditCodec, compiled_reader
from flamingock_es.core.events import ChangeStarted, ChangeSucceeded, Payload
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import State, fold
from flamingock_es.namespace import open_backend

BOOTSTRAP = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
BATCH = 10_000


class Collect:
    """A LogWriter that keeps the sealed bytes, to be produced in big transactions."""

    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def append(self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
               ) -> list[int]:
        start = len(self.blobs)
        self.blobs.extend(records)
        return list(range(start, start + len(records)))

    def close(self) -> None:
        pass


def sealed_events(namespace: str, count: int) -> list[bytes]:
    collect = Collect()
    recorder = Recorder(collect, State(), RunIdentity(namespace, "bench", local_actor()))
    payloads: list[Payload] = []
    for i in range(count // 2):
        payloads.append(ChangeStarted(unit_id=f"unit-{i:06d}", stage="default", author="bench",
                                      checksum="c" * 64, template=None, parameters="{}",
                                      attempt=1, reason="pending"))
        payloads.append(ChangeSucceeded(unit_id=f"unit-{i:06d}", checksum="c" * 64,
                                        duration_ms=1.5))
    for start in range(0, len(payloads), 1000):
        recorder.record(*payloads[start:start + 1000])
    return collect.blobs


def fill(topic: str, blobs: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": f"{topic}.fill",
                         "linger.ms": 5, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 1_000_000})
    producer.init_transactions(30)
    for start in range(0, len(blobs), BATCH):
        producer.begin_transaction()
        for blob in blobs[start:start + BATCH]:
            producer.produce(topic, blob, partition=0)
        producer.commit_transaction(60)


def bare(topic: str) -> tuple[int, float]:
    schema = AuditCodec().schema
    # The reader's own consumer settings: the floor is the same fetching, minus our work.
    consumer = Consumer({**_READ_CONFIG, "bootstrap.servers": BOOTSTRAP,
                         "group.id": f"{topic}.bare"})
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, 0, 0)])
    count, done, reader = 0, False, fastavro.schemaless_reader
    while not done:
        # The same fetch pattern as KafkaEventLog.read: wait for the first message, then take
        # what has arrived (consume() alone would wait its whole timeout on the last batch).
        first = consumer.poll(1.0)
        for msg in [] if first is None else [first, *consumer.consume(BATCH, 0)]:
            err = msg.error()
            if err is not None:
                done = err.code() == KafkaError._PARTITION_EOF
                continue
            reader(io.BytesIO(msg.value()[10:]), schema)
            count += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return count, elapsed


def ours(backend_log: Any, reader: bool | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    state = fold(AuditCodec(reader=reader).decode_all(backend_log.read()))
    elapsed = time.perf_counter() - started
    assert state.breaks == [], state.breaks[:3]
    return state.events, elapsed


def measure(events: int, rounds: int, *, pure_too: bool = False) -> dict[str, list[float]]:
    """Fill a fresh namespace with ``events`` events, then ``rounds`` rounds of each variant
    taken in turn: events/s of ``bare``, ``ours`` (and ``pure``, the fastavro decoder)."""
    backend = open_backend(f"kafka://{BOOTSTRAP}", f"bench-replay-{uuid.uuid4().hex[:8]}")
    try:
        topic = f"flamingock.audit.{backend.namespace}"
        blobs = sealed_events(backend.namespace, events)
        fill(topic, blobs)
        bare(topic)  # warm the broker's page cache for both
        variants = {"bare": lambda: bare(topic), "ours": lambda: ours(backend.log)}
        if pure_too:
            variants["pure"] = lambda: ours(backend.log, reader=False)
        rates: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                count, elapsed = variants[name]()
                assert count == len(blobs), (name, count, len(blobs))
                rates[name].append(count / elapsed)
        return rates
    finally:
        backend.close()


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(f"{events:,} events on {BOOTSTRAP}, {rounds} rounds each, in turn; reader: "
          f"{'compiled' if compiled_reader() else 'pure Python'}")
    rates = measure(events, rounds, pure_too=compiled_reader())
    for name, values in rates.items():
        print(f"{name:5} median {statistics.median(values):9,.0f} events/s "
              f"(min {min(values):,.0f}, max {max(values):,.0f})")
    ratios = [o / b for o, b in zip(rates["ours"], rates["bare"], strict=True)]
    print(f"ratio fold/bare: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; goal >= 0.9)")


if __name__ == "__main__":
    main()
