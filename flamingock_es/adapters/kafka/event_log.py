"""``KafkaEventLog``: the audit log as a one-partition topic, written in transactions.

Reads use a ``read_committed`` consumer without a group (the partition is assigned), so a
reader sees exactly the committed transactions, in order; a record's position is its offset.
One reader is kept per log and re-positioned for each read: a new consumer costs a connection.

Writes go through :mod:`.writer`: transactions fenced by the producer epoch and the lock
group. Before a new holder reads, :meth:`KafkaEventLog.writer` makes sure no transaction of
an earlier holder is still open (its records would be hidden from ``read_committed``
readers until it times out): the common case costs two offset lookups; only after a holder
died mid-append does it start the transactional producer, whose ``init_transactions`` aborts
the dead one's transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import takewhile
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_SYSTEM,
)

from ...core.ports import Lease, StoredRecord
from ...errors import (
    ChainBrokenError,
    ConfigError,
    OpenTransactionError,
    Remedy,
    RemedyKind,
)
from .admin import admin_client, end_offsets, topic_exists
from .config import KafkaSettings, Topics, new_client, redacted
from .errors import is_transient, unavailable
from .group_lock import KafkaLease
from .writer import KafkaLogWriter, TransactionalProducer

__all__ = ["KafkaEventLog"]

log = logging.getLogger(__name__)

READ_BATCH = 10_000
FOREIGN_WAIT = 3.0
"""After this namespace's own writer started (which ends a transaction of its id), how long
the end may still stay hidden before the open transaction is known to be someone else's."""
SETTLE_WAIT = 0.25
"""How long the end of a just-committed transaction may stay hidden before it counts as left
open (its commit markers take a few milliseconds)."""
IDLE_LIMIT = 30.0
"""A read that gets nothing at all from the broker for this long fails (broker down)."""
FOLLOW_WAIT = 0.5
"""How long a follower's fetch (and poll) waits for a record: how often an idle follower
asks. At 50 ms, the 300 followers of one ``project --all-tenants`` kept a machine at a load
of 140. The broker mostly answers as soon as a record is committed (the tail's median lag
stayed 55 ms), but a commit does not always end the wait: an event can trail by this much."""

_READ_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 32 * 1024 * 1024,
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
        self._reader: Consumer | None = None
        self._reading_now = False
        """A read is under way on ``_reader`` (a read inside it needs a consumer of its own)."""
        self._admin: AdminClient | None = None
        self._transactions = TransactionalProducer(settings, self.topic)

    def exists(self) -> bool:
        return topic_exists(self.settings, self.topic)

    def _consumer(self, start: int, fetch_wait_ms: int = 50) -> tuple[Consumer, TopicPartition]:
        conf = self.settings.config({**_READ_CONFIG, "group.id": f"{self.topic}.reader",
                                     "fetch.wait.max.ms": fetch_wait_ms})
        log.debug("audit reader config: %s", redacted(conf))
        consumer = new_client(Consumer, conf)
        tp = TopicPartition(self.topic, 0, start)
        consumer.assign([tp])
        return consumer, tp

    @contextmanager
    def _reading(self, start: int) -> Iterator[Consumer]:
        """The log's reader, positioned at ``start``; a read begun while another is under way
        (a fold that starts over from inside a read) gets a consumer of its own."""
        # A read knows where the end is: the broker has the records, so it need not hold a
        # fetch back waiting for more (a long wait would delay every re-positioning).
        if self._reading_now:
            consumer, _ = self._consumer(start, fetch_wait_ms=2)
            try:
                yield consumer
            finally:
                consumer.close()
            return
        if self._reader is None:
            self._reader, _ = self._consumer(start, fetch_wait_ms=2)
        else:
            self._reader.assign([TopicPartition(self.topic, 0, start)])
        self._reading_now = True
        try:
            yield self._reader
        finally:
            self._reading_now = False

    def _offsets(self) -> tuple[int, int]:
        """The last stable offset (the end a ``read_committed`` reader sees: an open
        transaction's records excluded) and the high watermark, asked of the broker by an
        admin client: the reader's own fetches would make it wait."""
        try:
            if self._admin is None:
                self._admin = admin_client(self.settings)
            return end_offsets(self._admin, self.topic)
        except KafkaException as exc:
            raise unavailable(f"find the end of {self.topic}", self.settings.describe(),
                              exc) from exc

    def _end(self) -> int:
        """Where a read stops: the last stable offset, once the commit markers of a
        transaction that just committed have reached the partition (they follow the commit's
        reply by milliseconds; a reader must see what its own runner wrote). A transaction
        still open after ``SETTLE_WAIT`` is another holder's: its records are not yet history.
        """
        deadline = time.monotonic() + SETTLE_WAIT
        while True:
            stable, written = self._offsets()
            if stable >= written or time.monotonic() > deadline:
                return stable
            time.sleep(0.005)

    def read(self, start: int = 0) -> Iterator[StoredRecord]:
        end = self._end()
        if start >= end:
            return
        with self._reading(start) as consumer:
            yield from self._read(consumer, end)

    def record_at(self, position: int) -> bytes | None:
        for at, data in self.read(position):
            return data if at == position else None
        return None

    def _read(self, consumer: Consumer, end: int) -> Iterator[StoredRecord]:
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
        consumer, _ = self._consumer(start, fetch_wait_ms=int(FOLLOW_WAIT * 1000))
        try:
            while not stop.is_set():
                got = False
                for msg in _fetch(consumer, FOLLOW_WAIT):  # returns at the first record
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
        end = self._settle()
        self._check_end(lease, end)
        return KafkaLogWriter(self._transactions, lease, end, self._committed_between)

    def _committed_between(self, start: int, stop: int) -> list[int]:
        """The offsets of the committed records in ``[start, stop)``."""
        return list(takewhile(lambda offset: offset < stop,
                              (offset for offset, _ in self.read(start))))

    def _settle(self) -> int:
        """Return once no earlier holder's transaction is open (what follows is readable),
        with the high watermark then."""
        settled_at = time.monotonic() + SETTLE_WAIT
        started = False
        while True:
            committed, written = self._offsets()
            if committed >= written:
                return written
            if not started and time.monotonic() > settled_at:
                log.info("%s: a transaction left open hides the end of the log from offset %d; "
                         "starting this namespace's writer, which ends one of its own id",
                         self.topic, committed)
                self._transactions.restart()  # init_transactions aborts or completes it
                started, settled_at = True, time.monotonic() + FOREIGN_WAIT
            elif started and time.monotonic() > settled_at:
                raise OpenTransactionError(
                    f"a transaction that is not this namespace's writer's (another "
                    f"transactional id) has been open on {self.topic} from offset {committed} "
                    f"for more than {SETTLE_WAIT + FOREIGN_WAIT:g}s: the records after it are "
                    "hidden until it ends (at its producer's transaction timeout, or when it "
                    "is aborted). Nothing was run. A client outside flamingock-es wrote to the "
                    "audit topic; the ACLs should keep it off (docs/operations-kafka.md).",
                    remedies=(Remedy(RemedyKind.ABORT_TRANSACTION, topic=self.topic,
                                     position=committed),))
            time.sleep(0.01)

    def _check_end(self, lease: KafkaLease, written: int) -> None:
        """Refuse a log that ends before the lock group's last commit saw it reach: offsets
        only grow, so a shorter log was cut, or deleted and created again."""
        try:
            seen = lease.committed_end()
        except KafkaException as exc:
            raise unavailable(f"read the committed offset of {self.topics.lock_group}",
                              self.settings.describe(), exc) from exc
        if seen is not None and seen > written:
            raise ChainBrokenError(
                f"the audit log {self.topic} ends at offset {written}, but the lock group "
                f"{self.topics.lock_group} committed with it reaching offset {seen}: events "
                "were cut off, or the topic was deleted and created again. Nothing was run; "
                "restore the log (docs/recovery.md). If the namespace was started over on "
                "purpose, delete the group's offsets too.",
                remedies=(Remedy(RemedyKind.DELETE_GROUP_OFFSETS, group=self.topics.lock_group,
                                 topic=self.topics.lock),))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._transactions.close()


def _fetch(consumer: Consumer, timeout: float) -> list[Message]:
    """Wait up to ``timeout`` for the first message or event, then take what has arrived.

    ``consume()`` alone blocks for its whole timeout unless the batch fills, and the end of a
    transactional log is a commit marker, never a record: every read would wait it out.
    """
    first = consumer.poll(timeout)
    return [] if first is None else [first, *consumer.consume(READ_BATCH, 0)]
