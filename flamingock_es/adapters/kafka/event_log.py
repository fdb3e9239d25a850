"""``KafkaEventLog``: the audit log as a one-partition topic, written in transactions.

Reads use a ``read_committed`` consumer without a group (the partition is assigned), so a
reader sees exactly the committed transactions, in order; a record's position is its offset.

Writes go through a transactional producer whose ``transactional.id`` is per namespace, so
a new holder's ``init_transactions`` fences every older producer. Each transaction also
commits the lock group's offset with the holder's ``consumer_group_metadata()``: the group
coordinator refuses that commit from a member that was evicted or replaced, which aborts the
transaction. A runner that lost its lock can therefore never append.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_SYSTEM,
)

from ...errors import AppendError, ConfigError, LockLostError
from ...ports import Lease, StoredRecord
from .admin import topic_exists
from .config import KafkaSettings, Topics, new_client, redacted
from .errors import error_of, is_fencing, is_transient, transient_retry, unavailable
from .group_lock import KafkaLease

__all__ = ["KafkaEventLog", "KafkaLogWriter"]

log = logging.getLogger(__name__)

READ_BATCH = 10_000
IDLE_LIMIT = 30.0
"""A read that gets nothing at all from the broker for this long fails (broker down)."""
TXN_TIMEOUT = 30.0
_APPEND_ATTEMPTS = 4

_READ_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 32 * 1024 * 1024,
    "fetch.wait.max.ms": 50,
    "queued.min.messages": 200_000,
    "queued.max.messages.kbytes": 256 * 1024,
    "socket.timeout.ms": 15_000,
}


class KafkaEventLog:
    """One namespace's audit topic (``{prefix}.audit.{ns}``, partition 0)."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings, self.topics = settings, topics
        self.topic = topics.audit
        self.name = f"kafka:{self.topic}@{settings.bootstrap}"
        self.messaging = {MESSAGING_SYSTEM: "kafka", MESSAGING_DESTINATION_NAME: self.topic}

    def exists(self) -> bool:
        return topic_exists(self.settings, self.topic)

    def _consumer(self, start: int) -> tuple[Consumer, TopicPartition]:
        conf = self.settings.config({**_READ_CONFIG, "group.id": f"{self.topic}.reader"})
        log.debug("audit reader config: %s", redacted(conf))
        consumer = new_client(Consumer, conf)
        tp = TopicPartition(self.topic, 0, start)
        consumer.assign([tp])
        return consumer, tp

    def _end(self, consumer: Consumer, tp: TopicPartition) -> int:
        """The last stable offset now (read_committed: open transactions excluded)."""

        @transient_retry(seconds=IDLE_LIMIT)
        def query() -> int:
            _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            return int(high)

        try:
            return query()
        except KafkaException as exc:
            raise unavailable(f"find the end of {self.topic}", self.settings.describe(),
                              exc) from exc

    def read(self, start: int = 0) -> Iterator[StoredRecord]:
        consumer, tp = self._consumer(start)
        try:
            end = self._end(consumer, tp)
            if start >= end:
                return
            deadline = time.monotonic() + IDLE_LIMIT
            while True:
                batch = _fetch(consumer, 1.0)
                if not batch:
                    if time.monotonic() > deadline:
                        raise unavailable(f"read {self.topic} (no data for {IDLE_LIMIT:g}s)",
                                          self.settings.describe(), None)
                    continue
                deadline = time.monotonic() + IDLE_LIMIT
                for msg in batch:
                    if msg.error() is not None:
                        if self._eof_or_raise(msg) >= end:
                            return
                        continue
                    offset: int = msg.offset()  # type: ignore[assignment]
                    if offset >= end:
                        return
                    yield offset, msg.value()  # type: ignore[misc]
                    if offset + 1 >= end:
                        return
        finally:
            consumer.close()

    def _eof_or_raise(self, msg: Message) -> int:
        """The position an end-of-partition event reports; other errors are raised."""
        err = msg.error()
        assert err is not None
        if err.code() == KafkaError._PARTITION_EOF:
            return int(msg.offset() or 0)
        if is_transient(KafkaException(err)):
            log.warning("reading %s: %s (retrying)", self.topic, err)
            return -1
        raise unavailable(f"read {self.topic}", self.settings.describe(), KafkaException(err))

    def follow(self, start: int, stop: threading.Event) -> Iterator[StoredRecord | None]:
        consumer, _ = self._consumer(start)
        try:
            while not stop.is_set():
                got = False
                for msg in _fetch(consumer, 0.05):  # short wait: a tail's latency shows
                    if msg.error() is not None:
                        self._eof_or_raise(msg)
                        continue
                    got = True
                    yield msg.offset(), msg.value()  # type: ignore[misc]
                if not got:
                    yield None
        finally:
            consumer.close()

    def writer(self, lease: Lease) -> KafkaLogWriter:
        if not isinstance(lease, KafkaLease):
            raise ConfigError(
                f"a Kafka audit log can only be written under a Kafka group lock, not "
                f"{lease.lock!r}."
            )
        lease.check()
        return KafkaLogWriter(self.settings, self.topic, lease)

    def close(self) -> None:
        pass


def _fetch(consumer: Consumer, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for the first message or event, then take what has arrived.

    ``consume()`` alone blocks for its whole timeout unless the batch fills, and the end of a
    transactional log is a commit marker, never a record: every read would wait it out.
    """
    first = consumer.poll(timeout)
    return [] if first is None else [first, *consumer.consume(READ_BATCH, 0)]


class KafkaLogWriter:
    """Appends in transactions fenced by the producer epoch and the lock group's metadata."""

    def __init__(self, settings: KafkaSettings, topic: str, lease: KafkaLease) -> None:
        self.settings, self.topic, self._lease = settings, topic, lease
        self._disconnected = False
        self._producer: Producer | None = None
        self._open()

    def _open(self) -> None:
        """A fresh transactional producer; its ``init_transactions`` fences any older one."""
        self._disconnected = False
        self._producer = new_client(Producer, self.settings.config({
            "transactional.id": self.topic,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            # The coordinator answers CONCURRENT_TRANSACTIONS while the previous commit's
            # markers are still being written; retrying after the default 100 ms would
            # dominate the cost of an append.
            "retry.backoff.ms": 5,
            "retry.backoff.max.ms": 200,
            "transaction.timeout.ms": int(TXN_TIMEOUT * 1000),
            "message.timeout.ms": int(TXN_TIMEOUT * 1000),
            "error_cb": self._on_error,
        }))
        try:
            self._init()
        except KafkaException as exc:
            self._producer = None
            if is_fencing(exc):
                self._lease.mark_lost(f"fenced while starting the audit writer: {exc}")
                raise LockLostError(
                    f"the audit writer for {self.topic} was fenced ({exc}).") from exc
            raise unavailable(f"start a transactional writer for {self.topic}",
                              self.settings.describe(), exc) from exc

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self._disconnected = True

    def _reconnect_if_needed(self) -> None:
        """Start over with a new producer if the broker connection was lost since the last
        append: after a broker restart librdkafka (2.16) can keep a stale coordinator and
        block forever in ``send_offsets_to_transaction`` (confluentinc/librdkafka#5511)."""
        assert self._producer is not None
        self._producer.poll(0)  # serve the error events queued while the unit ran
        if self._disconnected:
            log.warning("the connection to %s was lost since the last append; starting a new "
                        "transactional writer", self.settings.describe())
            self._producer = None
            self._open()

    @transient_retry(seconds=TXN_TIMEOUT)
    def _init(self) -> None:
        assert self._producer is not None
        self._producer.init_transactions(TXN_TIMEOUT)

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        self._lease.check()
        if self._producer is None:
            raise AppendError(f"the audit writer for {self.topic} is closed or was fenced.")
        kafka_headers: list[tuple[str, str | bytes | None]] = [
            (k, v.encode()) for k, v in (headers or {}).items()
        ]
        last: KafkaException | None = None
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            self._lease.check()
            try:
                self._reconnect_if_needed()
                assert self._producer is not None
                return self._transaction(self._producer, records, kafka_headers)
            except KafkaException as exc:
                last = exc
                if self._producer is not None:
                    self._abort(self._producer)
                err = error_of(exc)
                stale_epoch = err is not None and err.code() in (
                    KafkaError.STALE_MEMBER_EPOCH, KafkaError.ILLEGAL_GENERATION)
                if is_fencing(exc) and not (stale_epoch and attempt < _APPEND_ATTEMPTS):
                    self._fenced(exc)
                retriable = stale_epoch or is_transient(exc) or (
                    err is not None and err.txn_requires_abort() and not err.fatal())
                if not retriable or attempt == _APPEND_ATTEMPTS:
                    break
                log.warning("audit append to %s failed (attempt %d): %s; retrying the "
                            "transaction", self.topic, attempt, exc)
                # A waiter joining bumps the holder's member epoch; give the lock thread a
                # moment to learn the new one (or to learn that the lock is gone).
                time.sleep(0.2 * attempt)
        raise AppendError(
            f"could not make {len(records)} audit event(s) durable on {self.topic}: {last}. "
            "Nothing of this batch is visible (the transaction was aborted); the run stops "
            "here. Check the broker, then rerun."
        ) from last

    def _transaction(self, producer: Producer, records: Sequence[bytes],
                     headers: list[tuple[str, str | bytes | None]]) -> list[int]:
        positions: list[int] = [-1] * len(records)
        failures: list[KafkaError] = []

        def delivered(index: int) -> Any:
            def report(err: KafkaError | None, msg: Message) -> None:
                if err is not None:
                    failures.append(err)
                else:
                    positions[index] = int(msg.offset() or 0)
            return report

        producer.begin_transaction()
        for index, record in enumerate(records):
            producer.produce(self.topic, record, partition=0, headers=headers or None,
                             on_delivery=delivered(index))
        lease = self._lease
        producer.send_offsets_to_transaction(
            [TopicPartition(lease.topic, 0, lease.claim_offset + 1)],
            lease.group_metadata(), TXN_TIMEOUT,
        )
        producer.commit_transaction(TXN_TIMEOUT)
        producer.poll(0)  # serve any delivery report not served by the commit's flush
        if failures or min(positions, default=0) < 0:
            raise AppendError(
                f"the broker committed a transaction on {self.topic} but did not confirm "
                f"every record ({failures or 'missing delivery reports'}); check the log "
                "with `flamingock-es verify` before rerunning."
            )
        return positions

    def _abort(self, producer: Producer) -> None:
        try:
            producer.abort_transaction(TXN_TIMEOUT)
        except KafkaException as exc:
            log.debug("aborting the audit transaction on %s: %s", self.topic, exc)

    def _fenced(self, exc: KafkaException) -> None:
        self._lease.mark_lost(f"fenced: {exc}")
        err = error_of(exc)
        if err is not None and err.fatal():
            self._producer = None
        raise LockLostError(
            f"this runner's audit writer was fenced on {self.topic} ({exc}): another runner "
            "holds the lock now. Nothing of this batch was written; stopping here."
        ) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
