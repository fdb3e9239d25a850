"""``KafkaGroupLock``: the namespace lock as the assignment of a one-partition topic.

Every runner of a namespace joins the consumer group ``{prefix}.lock.{ns}`` and subscribes
to the lock topic; the group coordinator assigns its only partition to one member, which
holds the lock until it leaves (release), dies (session timeout) or is fenced. The KIP-848
consumer protocol is used where the broker has it (heartbeats and session timeouts are then
broker-side settings), the classic protocol otherwise.

Before its first append the holder writes a *claim record* (JSON: holder, host, pid, since,
group) to the lock topic, for operators. Its offset is the lease's ``generation``: it grows
strictly with each claim. Writers commit ``claim offset + 1`` for the group in every audit
transaction, so the coordinator refuses the commit of a member that is no longer current
(see ``writer.py``); the commit's metadata records how far the audit log reached, so the
next holder can refuse a log that got shorter (:meth:`KafkaLease.committed_end`). A session
that appends nothing (nothing was pending once it held the lock) writes no claim: a lock
session is a group join, a read and a leave.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ...core.ports import WaitCallback
from ...errors import FlamingockError, LockLostError, LockTimeoutError
from .admin import admin_client
from .config import KafkaSettings, Topics, new_client
from .errors import error_of, is_refusal, refused, result_of, transient_retry, unavailable

__all__ = ["KafkaGroupLock", "KafkaLease", "end_metadata", "parse_end"]

log = logging.getLogger(__name__)

_POLL = 0.05
_CLIENT_PREFIX = "flamingock-lock-"
"""The lock consumers' client ids name their holder: the group's description tells who."""
_DESCRIBE_TIMEOUT = 10.0
_COMMITTED_TIMEOUT = 10.0
_END_KEY = "audit_end="
_REPORT_EVERY = 1.0
_CLAIM_TIMEOUT = 15.0
_CLASSIC_SESSION_MS = 6000
_PROTOCOL_REFUSED = frozenset({KafkaError.UNSUPPORTED_VERSION, KafkaError._UNSUPPORTED_FEATURE})


def _refuses_protocol(err: KafkaError | None) -> bool:
    """The broker does not serve KIP-848's protocol: an error callback's code, or the fatal
    consumer event librdkafka raises instead ("API version not supported:
    ConsumerGroupHeartbeat")."""
    if err is None:
        return False
    return err.code() in _PROTOCOL_REFUSED or (
        err.code() == KafkaError._FATAL and "ConsumerGroupHeartbeat" in err.str())


def _client_id(holder: str) -> str:
    return f"{_CLIENT_PREFIX}{holder}"[:200]


class _Membership:
    """A lock-group consumer and what its rebalance callbacks reported."""

    def __init__(self, settings: KafkaSettings, topics: Topics, holder: str,
                 protocol: str) -> None:
        self.topic = topics.lock
        self.assigned = threading.Event()
        self.lost_reason: str | None = None
        self.protocol_refused = False
        self.refusal: KafkaError | None = None  # Kafka said no to these credentials
        extra: dict[str, Any] = {
            "group.id": topics.lock_group,
            "group.protocol": protocol,
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            "client.id": _client_id(holder),
            "error_cb": self._on_error,
        }
        if protocol == "classic":  # KIP-848 keeps these on the broker; classic needs them
            extra |= {"session.timeout.ms": _CLASSIC_SESSION_MS, "heartbeat.interval.ms": 500,
                      "partition.assignment.strategy": "cooperative-sticky"}
        self.consumer = new_client(Consumer, settings.config(extra))
        self.consumer.subscribe([self.topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        if any(tp.topic == self.topic and tp.partition == 0 for tp in partitions):
            self.assigned.set()

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        if self.assigned.is_set() and any(tp.topic == self.topic for tp in partitions):
            self.lost_reason = self.lost_reason or "the lock partition was revoked"

    def _on_lost(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        if self.assigned.is_set():
            self.lost_reason = self.lost_reason or (
                "the group evicted this runner (session timeout or fenced member epoch)"
            )

    def _on_error(self, err: KafkaError) -> None:
        if _refuses_protocol(err):
            self.protocol_refused = True
        if is_refusal(err):
            self.refusal = err
        if err.fatal():
            self.lost_reason = self.lost_reason or f"fatal consumer error: {err}"
        log.debug("lock consumer: %s", err)

    def close(self) -> None:
        try:
            self.consumer.close()  # leaves the group: the next member is assigned at once
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the lock consumer: %s", exc)


def end_metadata(end: int) -> str:
    """The offset-commit metadata that records the audit log's end (``audit_end=N``)."""
    return f"{_END_KEY}{end}"


def parse_end(metadata: str | None) -> int | None:
    """The end that :func:`end_metadata` recorded; ``None`` for any other metadata."""
    if not metadata or not metadata.startswith(_END_KEY):
        return None
    digits = metadata.removeprefix(_END_KEY)
    return int(digits) if digits.isdigit() else None


class KafkaLease:
    """Holding a :class:`KafkaGroupLock`: a group member assigned the lock partition.

    A background thread keeps serving the consumer (rebalance callbacks) while changes run;
    a revocation or loss makes the lease ``lost``.
    """

    def __init__(self, membership: _Membership, holder: str, lock: str,
                 claim: Callable[[], int], assigned: Callable[[], bool]) -> None:
        self.holder, self.lock = holder, lock
        self._claim, self._claim_offset = claim, -1
        self._assigned = assigned
        self.topic = membership.topic
        self._membership = membership
        self._released = False
        # librdkafka blocks consumer_group_metadata() while another thread is inside
        # poll(): the lock thread polls without blocking, under this lock, and sleeps outside.
        self._calls = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"lock-{lock}", daemon=True)
        self._thread.start()

    @property
    def claim_offset(self) -> int:
        """The offset of this holder's claim record, written the first time it is asked."""
        if self._claim_offset < 0:
            self.check()
            self._claim_offset = self._claim()
        return self._claim_offset

    @property
    def generation(self) -> int:
        return self.claim_offset

    def committed_end(self) -> int | None:
        """The audit log's end that the group's last commit recorded (see ``writer.py``):
        the log can never be shorter. ``None`` before any commit that recorded one."""
        return parse_end(self._committed_metadata())

    @transient_retry(seconds=_COMMITTED_TIMEOUT)
    def _committed_metadata(self) -> str | None:
        with self._calls:  # per attempt: the lock thread serves the consumer in between
            committed = self._membership.consumer.committed(
                [TopicPartition(self.topic, 0)], timeout=_COMMITTED_TIMEOUT)
        return committed[0].metadata if committed else None

    def group_metadata(self) -> Any:
        """The member's current ``consumer_group_metadata()``, for audit transactions."""
        with self._calls:
            metadata = self._membership.consumer.consumer_group_metadata()
        if _member_id(metadata) == "":
            # The coordinator accepts a transactional offset commit without member id or
            # epoch, which would disarm the fence: a member without an id holds nothing.
            self.mark_lost("this runner is no longer a member of the lock group")
            self.check()
        return metadata

    def _serve(self) -> None:
        consumer = self._membership.consumer
        while not self._stop.is_set():
            try:
                with self._calls:
                    consumer.poll(0)  # serves callbacks; claim records are ignored
            except (KafkaException, RuntimeError) as exc:
                self.mark_lost(f"the lock consumer failed: {exc}")
                return
            self._stop.wait(_POLL)

    def assigned(self) -> bool:
        """True if the group coordinator, asked now, gives this holder the lock partition:
        what tells a fence by a stranger (who took the transactional id) from a fence by
        the next holder. An answer that cannot be had is a no."""
        if self.lost:
            return False
        try:
            return self._assigned()
        except FlamingockError:
            return False

    def mark_lost(self, reason: str) -> None:
        """Record that the lock is gone (used by writers that were fenced)."""
        self._membership.lost_reason = self._membership.lost_reason or reason

    @property
    def lost(self) -> bool:
        return self._released or self._membership.lost_reason is not None

    def check(self) -> None:
        if self._released:
            raise LockLostError(f"the lock {self.lock} was released by this runner.")
        reason = self._membership.lost_reason
        if reason is not None:
            raise LockLostError(
                f"lost the lock {self.lock} ({reason}); another runner may hold it now. "
                "Stopping before the next step; rerun to continue."
            )

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._membership.close()


class KafkaGroupLock:
    """The lock of one namespace: membership in the group ``{prefix}.lock.{ns}``."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings, self.topics = settings, topics
        self.name = f"kafka-group:{topics.lock_group}"
        self._protocol = "consumer"
        self._producer: Producer | None = None

    def acquire(
        self, holder: str, timeout: float, on_wait: WaitCallback | None = None
    ) -> KafkaLease:
        started = time.monotonic()
        membership = _Membership(self.settings, self.topics, holder, self._protocol)
        next_report = started + _REPORT_EVERY
        try:
            while not membership.assigned.is_set():
                event = membership.consumer.poll(_POLL)
                if event is not None and is_refusal(event.error()):
                    membership.refusal = event.error()
                if event is not None and _refuses_protocol(event.error()):
                    membership.protocol_refused = True
                if membership.refusal is not None:  # waiting would only look like contention
                    raise refused(f"let {holder} join the lock group {self.topics.lock_group}",
                                  self.settings.describe(), membership.refusal)
                if membership.protocol_refused and self._protocol == "consumer":
                    log.warning("the broker refuses the KIP-848 consumer group protocol; "
                                "using the classic protocol for %s", self.name)
                    membership.close()
                    self._protocol = "classic"
                    membership = _Membership(self.settings, self.topics, holder, "classic")
                now = time.monotonic()
                if now - started >= timeout:
                    raise LockTimeoutError(
                        f"the lock {self.name} is still held by another runner after "
                        f"{timeout:g}s; giving up. See who holds it with kafka-consumer-groups.sh "
                        f"--describe --group {self.topics.lock_group}."
                    )
                if on_wait is not None and now >= next_report:
                    on_wait(now - started)
                    next_report = now + _REPORT_EVERY
        except BaseException:
            membership.close()
            raise
        return KafkaLease(membership, holder, self.name, lambda: self._claim(holder),
                          lambda: self._holds(holder))

    def _holds(self, holder: str) -> bool:
        """True if the coordinator assigns the lock partition to ``holder``, asked now."""
        return self.holder() == _client_id(holder).removeprefix(_CLIENT_PREFIX)

    def _claim(self, holder: str) -> int:
        """Write the claim record; its offset, which grows with every claim, is the generation.

        (The record does not carry its own offset: predicting it would cost a watermark query
        that waits behind the lock consumer's long-poll fetch, half a second per handover.)
        """
        record = {
            "holder": holder, "host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(), "group": self.topics.lock_group,
        }
        return _produce_sync(self._claim_producer(), self.topics.lock,
                             json.dumps(record).encode(), holder.encode(), self.settings)

    def _claim_producer(self) -> Producer:
        if self._producer is None:
            # Not idempotent: a retried send can only land this holder's claim twice, and
            # the offset reported is the later one, still above every earlier holder's; an
            # idempotent producer's start (its producer id) cost ~0.5 s of every lock session
            # here, a third of a tenant's run in a rollout.
            self._producer = new_client(Producer, self.settings.config({
                "acks": "all", "enable.idempotence": False, "linger.ms": 0,
            }))
        return self._producer

    def holder(self) -> str | None:
        """The member the coordinator assigned the lock partition to, from its client id."""
        admin = admin_client(self.settings)
        group = self.topics.lock_group
        try:
            description = result_of(admin.describe_consumer_groups(
                [group], request_timeout=_DESCRIBE_TIMEOUT)[group], _DESCRIBE_TIMEOUT)
        except KafkaException as exc:
            err = error_of(exc)
            if err is not None and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
                return None
            raise unavailable(f"describe the lock group {group}", self.settings.describe(),
                              exc) from exc
        for member in description.members:
            assignment = member.assignment.topic_partitions if member.assignment else []
            if any(tp.topic == self.topics.lock and tp.partition == 0 for tp in assignment):
                return str(member.client_id).removeprefix(_CLIENT_PREFIX)
        return None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


def _produce_sync(producer: Producer, topic: str, value: bytes, key: bytes,
                  settings: KafkaSettings) -> int:
    result: list[Any] = []
    producer.produce(topic, value, key, partition=0,
                     on_delivery=lambda err, msg: result.append(err or msg.offset()))
    producer.flush(_CLAIM_TIMEOUT)
    if not result or isinstance(result[0], KafkaError):
        raise unavailable(f"write the claim record to {topic}", settings.describe(),
                          KafkaException(result[0]) if result else None)
    offset: int = result[0]
    return offset


def _member_id(metadata: Any) -> str | None:
    """The member id in librdkafka's serialized group metadata (``CGMDv2:``), if readable."""
    if not isinstance(metadata, bytes) or not metadata.startswith(b"CGMDv2:"):
        return None
    fields = metadata[11:].split(b"\0")
    return fields[1].decode(errors="replace") if len(fields) > 2 else None
