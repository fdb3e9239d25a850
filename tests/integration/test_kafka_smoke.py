"""Smoke tests of the Kafka features flamingock-es relies on, against the real broker.

* transactions: a read_committed consumer sees committed records, never aborted ones,
  and consumer offsets commit atomically with the produced records;
* KIP-848 consumer groups (``group.protocol=consumer``) on a one-partition topic act
  as a lock: exactly one member holds the partition, and it moves on when the holder
  leaves (the handover time is measured and printed);
* fencing: a transactional offset commit carrying a departed member's group metadata
  is refused by the group coordinator.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.kafka

WAIT_S = 20.0


def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)], operation_timeout=10
    )
    futures[name].result(timeout=15)


def _consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    # With group.protocol=consumer (KIP-848) the session timeout and heartbeat
    # interval are the broker's (group.consumer.*); setting session.timeout.ms or
    # heartbeat.interval.ms client-side is rejected.
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(extra)
    return Consumer(config)


def _transactional_producer(bootstrap: str, txn_id: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": txn_id,
            "enable.idempotence": True,
            "linger.ms": 0,
        }
    )
    producer.init_transactions(15)
    return producer


def _wait_until(
    condition: Callable[[], bool], consumers: list[Consumer], timeout: float = WAIT_S
) -> float:
    """Poll every consumer (so they heartbeat) until condition() holds; return the time taken."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        for consumer in consumers:
            msg = consumer.poll(0.02)
            if msg is not None and msg.error() is not None:
                raise KafkaException(msg.error())
        if condition():
            return time.monotonic() - start
    raise AssertionError(f"condition not met within {timeout}s")


def _owners(consumers: list[Consumer]) -> list[int]:
    return [i for i, c in enumerate(consumers) if c.assignment()]


def _report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n{text}")


@pytest.fixture
def closing() -> Iterator[list[Consumer | Producer]]:
    """Clients appended here are closed/flushed at the end of the test."""
    clients: list[Consumer | Producer] = []
    yield clients
    for client in clients:
        if isinstance(client, Consumer):
            with contextlib.suppress(RuntimeError):  # already closed by the test
                client.close()
        else:
            client.flush(5)


def test_transactions_read_committed(
    kafka_bootstrap: str, unique_name: str, closing: list[Consumer | Producer]
) -> None:
    source, sink, group = f"{unique_name}-in", f"{unique_name}-out", f"{unique_name}-g"
    _create_topic(kafka_bootstrap, source)
    _create_topic(kafka_bootstrap, sink)

    plain = Producer({"bootstrap.servers": kafka_bootstrap})
    plain.produce(source, key=b"k", value=b"input-1")
    assert plain.flush(10) == 0

    consumer = _consumer(kafka_bootstrap, group)
    closing.append(consumer)
    consumer.subscribe([source])
    msg = None
    deadline = time.monotonic() + WAIT_S
    while msg is None and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
    assert msg is not None, "input record not consumed"
    assert msg.error() is None, msg.error()
    assert msg.value() == b"input-1"

    producer = _transactional_producer(kafka_bootstrap, f"{unique_name}-txn")
    closing.append(producer)

    # Committed transaction: output record + consumed offset, atomically.
    producer.begin_transaction()
    producer.produce(sink, key=b"k", value=b"committed-1")
    offsets = [TopicPartition(source, msg.partition(), msg.offset() + 1)]
    producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 10)
    producer.commit_transaction(15)

    # Aborted transaction: must stay invisible to read_committed readers.
    producer.begin_transaction()
    producer.produce(sink, key=b"k", value=b"aborted-1")
    producer.flush(10)
    producer.abort_transaction(15)

    producer.begin_transaction()
    producer.produce(sink, key=b"k", value=b"committed-2")
    producer.commit_transaction(15)

    reader = _consumer(kafka_bootstrap, f"{unique_name}-reader")
    closing.append(reader)
    reader.assign([TopicPartition(sink, 0, 0)])
    seen: list[bytes] = []
    deadline = time.monotonic() + WAIT_S
    while len(seen) < 2 and time.monotonic() < deadline:
        record = reader.poll(0.2)
        if record is None:
            continue
        assert record.error() is None, record.error()
        seen.append(record.value())
    # Anything after committed-2 would have shown up by now as well.
    extra = reader.poll(1.0)
    if extra is not None and extra.error() is None:
        seen.append(extra.value())
    assert seen == [b"committed-1", b"committed-2"]

    committed = consumer.committed([TopicPartition(source, 0)], timeout=10)
    assert committed[0].offset == msg.offset() + 1


def test_consumer_group_lock_handover(
    kafka_bootstrap: str,
    unique_name: str,
    closing: list[Consumer | Producer],
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    topic, group = f"{unique_name}-lock", f"{unique_name}-g"
    _create_topic(kafka_bootstrap, topic, partitions=1)

    members = [_consumer(kafka_bootstrap, group) for _ in range(3)]
    closing.extend(members)
    for member in members:
        member.subscribe([topic])

    # Exactly one member holds the single partition, and it stays that way.
    _wait_until(lambda: len(_owners(members)) == 1, members)
    settle_until = time.monotonic() + 1.0
    while time.monotonic() < settle_until:
        for member in members:
            member.poll(0.02)
        assert len(_owners(members)) <= 1, "two members hold the lock partition at once"
    owners = _owners(members)
    assert len(owners) == 1
    holder = members[owners[0]]
    rest = [m for m in members if m is not holder]

    start = time.monotonic()
    holder.close()  # leaves the group: its partition is reassigned
    closed = time.monotonic() - start
    _wait_until(lambda: len(_owners(rest)) == 1, rest)
    handover = time.monotonic() - start

    record_property("lock_handover_seconds", round(handover, 3))
    _report(capsys, f"lock handover: {handover:.3f}s (holder's close() took {closed:.3f}s)")
    assert handover < 10.0


def test_stale_member_offset_commit_is_fenced(
    kafka_bootstrap: str,
    unique_name: str,
    closing: list[Consumer | Producer],
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    topic, sink, group = f"{unique_name}-lock", f"{unique_name}-out", f"{unique_name}-g"
    _create_topic(kafka_bootstrap, topic, partitions=1)
    _create_topic(kafka_bootstrap, sink)

    first = _consumer(kafka_bootstrap, group)
    closing.append(first)
    first.subscribe([topic])
    _wait_until(lambda: bool(first.assignment()), [first])
    stale_metadata = first.consumer_group_metadata()

    second = _consumer(kafka_bootstrap, group)
    closing.append(second)
    second.subscribe([topic])
    first.close()  # the first holder is gone; the second one takes the partition
    _wait_until(lambda: bool(second.assignment()), [second])

    producer = _transactional_producer(kafka_bootstrap, f"{unique_name}-txn")
    closing.append(producer)
    producer.begin_transaction()
    producer.produce(sink, value=b"written-by-stale-holder")
    with pytest.raises(KafkaException) as excinfo:
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], stale_metadata, 10)
    error: KafkaError = excinfo.value.args[0]
    record_property("stale_commit_error", error.name())
    _report(capsys, f"stale member offset commit refused: {error.name()} ({error.str()})")
    assert error.code() in {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_MEMBER_EPOCH,
        KafkaError.STALE_MEMBER_EPOCH,
        KafkaError.ILLEGAL_GENERATION,
    }, error.name()
    producer.abort_transaction(15)

    # Control: the current holder's metadata is accepted.
    producer.begin_transaction()
    producer.produce(sink, value=b"written-by-current-holder")
    producer.send_offsets_to_transaction(
        [TopicPartition(topic, 0, 1)], second.consumer_group_metadata(), 10
    )
    producer.commit_transaction(15)
    committed = second.committed([TopicPartition(topic, 0)], timeout=10)
    assert committed[0].offset == 1
