"""What an attacker with network access to a broker that has no ACLs can do to a namespace:
produce to its audit topic with a plain client (no transactional id, no runner's key).

Forged events continue the hash chain (the schema is public, the hash is SHA-256): only a
signature tells them apart. Side effects of the units of these tests land in a Kafka topic
of their own, read back with a plain consumer: counted at a service the project did not
write.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence

from confluent_kafka import Consumer, Producer, TopicPartition

from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import ManualMark, MarkedAs, Payload
from flamingock_es.core.reading import LogReader
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.namespace import open_backend

GARBAGE = b"\xc3\x01not an event at all"


class PlainProducer:
    """A log writer that is a plain producer: what any client of an open broker has."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def append(self, records: Sequence[bytes],
               headers: Mapping[str, str] | None = None) -> list[int]:
        offsets: list[int] = []

        def delivered(err: object, msg: object) -> None:
            assert err is None, err
            offsets.append(msg.offset())  # type: ignore[attr-defined]

        for record in records:
            self._producer.produce(self.topic, record, partition=0, on_delivery=delivered)
        assert self._producer.flush(30) == 0
        return offsets

    def close(self) -> None:
        self._producer.flush(30)


def audit_topic(namespace: str) -> str:
    return f"flamingock.audit.{namespace}"


def forge(bootstrap: str, namespace: str, *payloads: Payload, principal: str = "runner-prod",
          request_id: str | None = None) -> list[int]:
    """Chain-continuing forgeries, each produced on its own like separate attacks; their
    offsets."""
    codec = AuditCodec()
    with open_backend(f"kafka://{bootstrap}", namespace, create=False) as backend:
        state = LogReader(codec).catch_up(backend.log)  # past garbage too
    writer = PlainProducer(bootstrap, audit_topic(namespace))
    recorder = Recorder(writer, state, RunIdentity(
        namespace, "r-forged", local_actor(principal=principal), request_id), codec)
    offsets = []
    for payload in payloads:
        before = state.position
        recorder.record(payload)
        assert state.position > before
        offsets.append(state.position)
    writer.close()
    return offsets


def garbage(bootstrap: str, namespace: str) -> int:
    (offset,) = PlainProducer(bootstrap, audit_topic(namespace)).append([GARBAGE])
    return offset


def rolled_back(unit: str) -> ManualMark:
    return ManualMark(unit_id=unit, marked_as=MarkedAs.ROLLED_BACK, reason="reverted")


# Side effects, at the broker -----------------------------------------------------------------

def effects_topic(bootstrap: str) -> str:
    """A new topic for side effects (the broker creates no topic by itself)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"it-effects-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    return topic


def effect(topic: str, line: str) -> None:
    """Record one side effect of a unit: a record on ``topic``, acknowledged by the broker."""
    producer = Producer({"bootstrap.servers": os.environ["FLAMINGOCK_KAFKA_BOOTSTRAP"],
                         "acks": "all"})
    producer.produce(topic, line.encode(), partition=0)
    if producer.flush(30):
        raise RuntimeError(f"the side effect {line!r} was not acknowledged")


def effects(bootstrap: str, topic: str) -> list[str]:
    """Every side effect recorded on ``topic``, in order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        part = TopicPartition(topic, 0)
        low, high = consumer.get_watermark_offsets(part, timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        out: list[str] = []
        while len(out) < high - low:
            message = consumer.poll(10)
            assert message is not None, f"{topic}: {len(out)} of {high - low} effects read"
            assert message.error() is None, message.error()
            out.append(message.value().decode())
        return out
    finally:
        consumer.close()
