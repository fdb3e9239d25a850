"""Appending to the audit topic: transactions fenced by the producer epoch and the lock group.

Every append is one transaction that also commits the lock group's offset with the holder's
``consumer_group_metadata()``: the group coordinator refuses that commit from a member that
was evicted or replaced, which aborts the transaction. And the transactional id is per
namespace, so a new holder's ``init_transactions`` fences every older producer. A runner
that lost its lock can therefore never append. The commit's metadata carries the audit log's
end as it was before the transaction (``audit_end=N``, a lower bound once it commits): the
next holder refuses a log that ends before it, cut or deleted and created again.

``init_transactions`` costs a few hundred milliseconds, so the namespace's transactional
producer (:class:`TransactionalProducer`) is started only when a session first appends, and
kept for the next sessions of the same process (``serve`` answers many requests). If another
runner started its own in between, ours was fenced: the first append of a session then starts
a fresh one (fencing theirs; this session holds the lock) and tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from ...errors import AppendError, ForeignRecordError, LockLostError, Remedy, RemedyKind
from .config import KafkaSettings, new_client
from .errors import error_of, is_fencing, is_transient, transient_retry, unavailable
from .group_lock import KafkaLease, end_metadata

__all__ = ["KafkaLogWriter", "TransactionalProducer"]

log = logging.getLogger(__name__)

TXN_TIMEOUT = 30.0
_APPEND_ATTEMPTS = 4
_COMMIT_ATTEMPTS = 5
_PRODUCER_FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                              KafkaError.INVALID_PRODUCER_EPOCH})


class TransactionalProducer:
    """The namespace's transactional producer, started on demand and kept across sessions."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self._producer: Producer | None = None
        self._disconnected = False

    @property
    def started(self) -> bool:
        return self._producer is not None

    def get(self) -> Producer:
        """The producer, started (``init_transactions``) if it is not; a fresh one if the
        broker connection was lost since: after a broker restart librdkafka (2.16) can keep a
        stale coordinator and block forever (confluentinc/librdkafka#5511)."""
        if self._producer is not None:
            self._producer.poll(0)  # serve the error events queued meanwhile
            if self._disconnected:
                log.warning("the connection to %s was lost since the last append; starting "
                            "a new transactional writer", self.settings.describe())
                self._producer = None
        if self._producer is None:
            self.restart()
        assert self._producer is not None
        return self._producer

    def restart(self) -> None:
        """Start a fresh producer: its ``init_transactions`` fences every older one, and
        aborts (or waits for) a transaction an earlier holder left open."""
        self._producer, self._disconnected = None, False
        producer = new_client(Producer, self.settings.config({
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
            _init(producer)
        except KafkaException as exc:
            if is_fencing(exc):
                raise LockLostError(
                    f"the audit writer for {self.topic} was fenced ({exc}).") from exc
            raise unavailable(f"start a transactional writer for {self.topic}",
                              self.settings.describe(), exc) from exc
        self._producer = producer

    def drop(self) -> None:
        """Forget the producer (fenced or failed): the next append starts a fresh one."""
        self._producer = None

    def _on_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            self._disconnected = True

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


@transient_retry(seconds=TXN_TIMEOUT)
def _init(producer: Producer) -> None:
    producer.init_transactions(TXN_TIMEOUT)


Peek = Callable[[int, int], list[int]]
"""The offsets of the committed records in ``[start, stop)`` of the audit topic."""


class KafkaLogWriter:
    """Appends in transactions fenced by the producer epoch and the lock group's metadata.

    After each commit it checks that nothing landed between its previous append and this
    one: offsets there are commit or abort markers, or records of aborted attempts, unless
    someone without the lock produced to the topic; those records are named
    (``ForeignRecordError``), this writer's own being durable after them."""

    def __init__(self, producer: TransactionalProducer, lease: KafkaLease, end: int,
                 peek: Peek) -> None:
        self._producer, self._lease = producer, lease
        self._end = end
        """The log's end as far as this writer knows: recorded with every commit."""
        self._next = end
        """Where this writer's next record lands if nobody else writes: after its last
        record and that transaction's commit marker."""
        self._peek = peek
        self.topic = producer.topic
        self._inherited = producer.started
        """The producer was started in an earlier session: someone may have fenced it."""
        self._closed = False

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        self._lease.check()
        if self._closed:
            raise AppendError(f"the audit writer for {self.topic} is closed or was fenced.")
        kafka_headers: list[tuple[str, str | bytes | None]] = [
            (k, v.encode()) for k, v in (headers or {}).items()
        ]
        last: KafkaException | None = None
        attempt = 0
        taken_back = False
        while attempt < _APPEND_ATTEMPTS:
            attempt += 1
            self._lease.check()
            try:
                positions = self._transaction(self._producer.get(), records, kafka_headers)
            except KafkaException as exc:
                last = exc
                if self._inherited and _producer_fenced(exc):
                    # Another runner started the namespace's producer since our last session;
                    # this session holds the lock: start ours again (fencing theirs).
                    self._inherited = False
                    self._producer.drop()
                    attempt -= 1
                    continue
                if _producer_fenced(exc) and not taken_back and self._lease.assigned():
                    # The coordinator says the lock is ours: whoever took the transactional
                    # id is not a holder of this lock. Take it back (once an append).
                    log.warning("the audit writer for %s was fenced by a producer using this "
                                "namespace's transactional id while this runner holds the "
                                "lock (a client outside the lock took the id); starting a new "
                                "writer, which fences it", self.topic)
                    taken_back = True
                    self._producer.drop()
                    attempt -= 1
                    continue
                if not self._retry(exc, attempt):
                    break
                continue
            self._inherited = False
            self._end = max(self._end, max(positions, default=-1) + 1)
            expected, self._next = self._next, max(positions) + 2
            if positions[0] != expected:
                self._check_gap(expected, positions)
            return positions
        raise AppendError(
            f"could not make {len(records)} audit event(s) durable on {self.topic}: {last}. "
            "Nothing of this batch is visible (the transaction was aborted); the run stops "
            "here. Check the broker, then rerun."
        ) from last

    def _check_gap(self, start: int, positions: list[int]) -> None:
        """Between ``start`` and this append there should be only markers and aborted
        attempts: a committed record there is someone else's."""
        foreign = self._peek(start, positions[0])
        if foreign:
            raise ForeignRecordError.landed(
                self.topic, foreign, positions,
                advice=", and the ACLs should keep others off the topic "
                       "(docs/operations-kafka.md)")

    def _retry(self, exc: KafkaException, attempt: int) -> bool:
        """Abort; raise if fenced; True if another attempt may succeed."""
        err = error_of(exc)
        if err is not None and err.fatal():
            self._producer.drop()  # a fatal error leaves it unusable for good
        elif self._producer.started:
            _abort(self._producer.get(), self.topic)
        stale_epoch = err is not None and err.code() in (
            KafkaError.STALE_MEMBER_EPOCH, KafkaError.ILLEGAL_GENERATION)
        if is_fencing(exc) and not (stale_epoch and attempt < _APPEND_ATTEMPTS):
            self._fenced(exc)
        retriable = stale_epoch or is_transient(exc) or (
            err is not None and err.txn_requires_abort() and not err.fatal())
        if not retriable or attempt == _APPEND_ATTEMPTS:
            return False
        log.warning("audit append to %s failed (attempt %d): %s; retrying the transaction",
                    self.topic, attempt, exc)
        # A waiter joining bumps the holder's member epoch; give the lock thread a moment to
        # learn the new one (or to learn that the lock is gone).
        time.sleep(0.2 * attempt)
        return True

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
            [TopicPartition(lease.topic, 0, lease.claim_offset + 1,
                            metadata=end_metadata(self._end))],
            lease.group_metadata(), TXN_TIMEOUT,
        )
        _commit(producer, self.topic)
        producer.poll(0)  # serve any delivery report not served by the commit's flush
        if failures or min(positions, default=0) < 0:
            raise AppendError(
                f"the broker committed a transaction on {self.topic} but did not confirm "
                f"every record ({failures or 'missing delivery reports'}); verify the log "
                "before rerunning.", remedies=(Remedy(RemedyKind.VERIFY),)
            )
        return positions

    def _fenced(self, exc: KafkaException) -> None:
        hijacked = _producer_fenced(exc) and self._lease.assigned()
        self._lease.mark_lost(f"fenced: {exc}")
        err = error_of(exc)
        if err is not None and err.fatal():
            self._producer.drop()
            self._closed = True
        if hijacked:
            raise LockLostError(
                f"this runner's audit writer was fenced on {self.topic} ({exc}) again and again "
                "by a producer using this namespace's transactional id, while the group "
                "coordinator still gives this runner the lock: a client that is not a runner "
                "of this lock keeps taking the id. Nothing of this batch was written; stopping "
                "here. Only runners may write TransactionalId " f"{self.topic} "
                "(docs/operations-kafka.md).") from exc
        raise LockLostError(
            f"this runner's audit writer was fenced on {self.topic} ({exc}): another runner "
            "holds the lock now. Nothing of this batch was written; stopping here."
        ) from exc

    def close(self) -> None:
        """The producer stays with the log for the next session; only this writer ends."""
        self._closed = True


def _producer_fenced(exc: KafkaException) -> bool:
    err = error_of(exc)
    return err is not None and err.code() in _PRODUCER_FENCED


def _commit(producer: Producer, topic: str) -> None:
    """``commit_transaction``, called again on a retriable error, as librdkafka asks: such an
    error (a leader or coordinator moving mid-commit) leaves the commit's outcome open, and
    only another call settles it. Aborting and appending again instead could write the batch
    twice, when the first commit had in fact gone through."""
    for attempt in range(1, _COMMIT_ATTEMPTS + 1):
        try:
            producer.commit_transaction(TXN_TIMEOUT)
            return
        except KafkaException as exc:
            err = error_of(exc)
            if err is None or not err.retriable() or err.txn_requires_abort() or \
                    attempt == _COMMIT_ATTEMPTS:
                raise
            log.warning("committing the audit append to %s did not settle (attempt %d): %s; "
                        "committing again", topic, attempt, exc)
            time.sleep(0.2 * attempt)


def _abort(producer: Producer, topic: str) -> None:
    try:
        producer.abort_transaction(TXN_TIMEOUT)
    except KafkaException as exc:
        log.debug("aborting the audit transaction on %s: %s", topic, exc)
