"""``KafkaRequestChannel``: change requests on ``{prefix}.requests.{ns}``.

Requests are keyed by request id and carry the W3C trace context in their headers; publishing
returns only after the broker's delivery report (acks=all, idempotent producer). Runners read
in their own consumer group (``{prefix}.runner.{ns}``, ``read_committed``) and commit an offset
by hand, once the request's answer is durable in the audit log. Undecodable requests are
copied to ``{prefix}.requests-dlq.{ns}`` with the reason in headers, as Kafka Connect does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_SYSTEM,
)

from ...core.ports import DeadLetter, Delivery
from ...errors import AppendError
from .admin import admin_client, end_offsets
from .config import KafkaSettings, Topics, new_client
from .errors import is_transient, unavailable

__all__ = ["KafkaRequestChannel", "KafkaRequestConsumer", "confirming_producer",
           "next_message", "produce_confirmed"]

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 30.0
REASON_HEADER = "flamingock.dlq.reason"
SOURCE_HEADER = "flamingock.dlq.source.offset"
KEY_HEADER = "flamingock.dlq.key_id"
SIGNATURE_HEADER = "flamingock.dlq.signature"
_DLQ_READ_TIMEOUT = 5.0


class KafkaRequestChannel:
    """The requests topic of one namespace."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings, self.topics = settings, topics
        self.destination = topics.requests
        self.dead_letter_destination = topics.dead_letters
        self.messaging = {MESSAGING_SYSTEM: "kafka", MESSAGING_DESTINATION_NAME: self.destination}
        self.group = topics.runner_group
        self._producer: Producer | None = None

    def publish(self, key: str, value: bytes, headers: Mapping[str, str] | None = None) -> int:
        return self._produce(self.destination, key, value, headers)

    def dead_letter(self, delivery: Delivery, reason: str, key_id: str | None = None,
                    signature: bytes | None = None) -> None:
        headers = {**delivery.headers, REASON_HEADER: reason,
                   SOURCE_HEADER: str(delivery.position)}
        if key_id is not None and signature is not None:
            headers |= {KEY_HEADER: key_id, SIGNATURE_HEADER: signature.hex()}
        self._produce(self.topics.dead_letters, delivery.key or "", delivery.value, headers)

    def dead_letter_end(self) -> int:
        try:
            return end_offsets(admin_client(self.settings), self.topics.dead_letters)[1]
        except KafkaException as exc:
            raise unavailable(f"find the end of {self.topics.dead_letters}",
                              self.settings.describe(), exc) from exc

    def dead_letters(self, start: int = 0) -> Iterator[DeadLetter]:
        end = self.dead_letter_end()
        if start >= end:
            return
        consumer = new_client(Consumer, self.settings.config({
            "group.id": f"{self.topics.dead_letters}.reader", "enable.auto.commit": False,
            "enable.partition.eof": True}))
        try:
            consumer.assign([TopicPartition(self.topics.dead_letters, 0, start)])
            deadline = time.monotonic() + _DLQ_READ_TIMEOUT
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                offset = int(msg.offset() or 0)
                found = _dead_letter(offset, msg)
                if found is not None:
                    yield found
                if offset + 1 >= end:
                    return
        finally:
            consumer.close()

    def _produce(self, topic: str, key: str, value: bytes,
                 headers: Mapping[str, str] | None) -> int:
        if self._producer is None:
            self._producer = confirming_producer(self.settings)
        return produce_confirmed(self._producer, self.settings, topic, [(key, value)],
                                 headers)[0]

    def consumer(self, group: str | None = None) -> KafkaRequestConsumer:
        return KafkaRequestConsumer(self, group or self.group)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


class KafkaRequestConsumer:
    """A runner group's consumer; offsets are committed by hand, synchronously."""

    def __init__(self, channel: KafkaRequestChannel, group: str) -> None:
        self._channel = channel
        self._consumer = new_client(Consumer, channel.settings.config({
            "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "enable.partition.eof": False}))
        self._consumer.subscribe([channel.destination])

    def poll(self, timeout: float) -> Delivery | None:
        msg = next_message(self._consumer, timeout, self._channel.destination,
                           self._channel.settings)
        if msg is None:
            return None
        headers: dict[str, str] = {}
        for name, raw in list(msg.headers() or []):
            if raw is not None:
                headers[str(name)] = raw.decode(errors="replace") if isinstance(raw, bytes) \
                    else str(raw)
        key, value = msg.key(), msg.value()
        offset = int(msg.offset() or 0)
        return Delivery(offset, value if isinstance(value, bytes) else b"",
                        key.decode(errors="replace") if isinstance(key, bytes) else None,
                        headers, offset + 1)

    def commit(self, delivery: Delivery) -> None:
        position = TopicPartition(self._channel.destination, 0, delivery.end)
        try:
            self._consumer.commit(offsets=[position], asynchronous=False)
        except KafkaException as exc:
            raise unavailable(f"commit the position of handled requests on "
                              f"{self._channel.destination}", self._channel.settings.describe(),
                              exc) from exc

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the requests consumer: %s", exc)


def _dead_letter(offset: int, msg: Message) -> DeadLetter | None:
    """A dead letter as the runners wrote it (its headers say where and why)."""
    headers: dict[str, str] = {}
    for name, raw in list(msg.headers() or []):
        if isinstance(raw, bytes):
            headers[str(name)] = raw.decode(errors="replace")
    value = msg.value()
    try:
        source = int(headers[SOURCE_HEADER])
        signature = headers.get(SIGNATURE_HEADER)
        return DeadLetter(offset, source, headers.get(REASON_HEADER, ""),
                          value if isinstance(value, bytes) else b"", headers.get(KEY_HEADER),
                          bytes.fromhex(signature) if signature else None)
    except (KeyError, ValueError):  # not written by a runner: not an answer
        return None


def next_message(consumer: Consumer, timeout: float, topic: str,
                 settings: KafkaSettings) -> Message | None:
    """The next message ``consumer`` reads from ``topic`` within ``timeout``; ``None`` for
    none, or for what librdkafka retries itself (the end of a partition, a broker away)."""
    msg = consumer.poll(timeout)
    if msg is None:
        return None
    err = msg.error()
    if err is not None:
        if err.code() == KafkaError._PARTITION_EOF or is_transient(KafkaException(err)):
            log.debug("consumer of %s: %s", topic, err)
            return None
        raise unavailable(f"read {topic}", settings.describe(), KafkaException(err))
    return msg


def confirming_producer(settings: KafkaSettings) -> Producer:
    """A producer whose records count once confirmed by every in-sync replica."""
    return new_client(Producer, settings.config(
        {"acks": "all", "enable.idempotence": True, "linger.ms": 0}))


def produce_confirmed(producer: Producer, settings: KafkaSettings, topic: str,
                      records: list[tuple[str, bytes]],
                      headers: Mapping[str, str] | None = None) -> list[int]:
    """Send ``(key, value)`` records to ``topic`` (partitioned by key) and return their
    offsets once the broker confirmed every one; an :class:`AppendError` if it did not."""
    outcome: list[KafkaError | int] = []

    def report(err: KafkaError | None, msg: Message) -> None:
        outcome.append(err if err is not None else int(msg.offset() or 0))

    try:
        for key, value in records:
            producer.produce(
                topic, value, key=key.encode() or None,
                headers=[(k, v.encode()) for k, v in (headers or {}).items()] or None,
                on_delivery=report)
            producer.poll(0)
        left = producer.flush(PUBLISH_TIMEOUT)
    except KafkaException as exc:
        raise unavailable(f"publish to {topic}", settings.describe(), exc) from exc
    failed = [o for o in outcome if isinstance(o, KafkaError)]
    if left or len(outcome) != len(records) or failed:
        raise AppendError(
            f"the broker did not confirm {len(records) - len(outcome) + len(failed)} record(s) "
            f"for {topic} ({failed[0] if failed else 'no delivery report'}); publish them "
            "again with the same ids (each runs once).")
    return [o for o in outcome if isinstance(o, int)]
