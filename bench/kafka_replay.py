"""Replay speed on Kafka: the runner's fold over the audit topic vs a bare consume+decode.

Fills a fresh audit topic with real sealed events (a chained run of ChangeStarted and
ChangeSucceeded), then times (a) ``fold(AuditCodec().decode_all(KafkaEventLog.read()))``
and (b) a bare ``read_committed`` consumer decoding each value with
``fastavro.schemaless_reader``, over the same topic.

    eval "$(scripts/services env)"; python bench/kafka_replay.py [EVENTS]
"""

from __future__ import annotations

import io
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from flamingock_es.adapters import open_backend
from flamingock_es.codec import AuditCodec
from flamingock_es.events import ChangeStarted, ChangeSucceeded, Payload
from flamingock_es.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.state import State, fold

BOOTSTRAP = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
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
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"{topic}.bare",
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "enable.auto.commit": False, "fetch.max.bytes": 64 * 1024 * 1024,
                         "max.partition.fetch.bytes": 32 * 1024 * 1024})
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


def ours(backend_log: object) -> tuple[int, float]:
    started = time.perf_counter()
    state = fold(AuditCodec().decode_all(backend_log.read()))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    assert state.breaks == [], state.breaks[:3]
    return state.events, elapsed


def main() -> None:
    backend = open_backend(f"kafka://{BOOTSTRAP}", f"bench-replay-{uuid.uuid4().hex[:8]}")
    topic = f"flamingock.audit.{backend.namespace}"
    blobs = sealed_events(backend.namespace, EVENTS)
    t0 = time.perf_counter()
    fill(topic, blobs)
    print(f"filled {topic} with {len(blobs)} events ({sum(map(len, blobs)) / len(blobs):.0f} "
          f"bytes each) in {time.perf_counter() - t0:.1f}s")
    bare(topic)  # warm the broker's page cache for both
    n_bare, t_bare = bare(topic)
    n_ours, t_ours = ours(backend.log)
    assert n_bare == n_ours == len(blobs), (n_bare, n_ours)
    print(f"bare consume + schemaless_reader:     {n_bare / t_bare:10.0f} events/s")
    print(f"KafkaEventLog.read + decode_all + fold: {n_ours / t_ours:8.0f} events/s")
    print(f"ratio: {t_bare / t_ours:.2f} (goal >= 0.7)")
    backend.close()


if __name__ == "__main__":
    main()
