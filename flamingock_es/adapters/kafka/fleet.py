"""``KafkaFleet``: a rollout's tenants shared by a fleet of workers through one consumer group.

The coordinator publishes each wave's tenants to the work topic
``{prefix}.fleet.{ns}._rollouts`` (several partitions, keyed by tenant id: Kafka's
partitioner chooses the partition). Every worker (``serve --fleet``) subscribes to it in the
one group ``{prefix}.fleet-workers.{ns}._rollouts``: Kafka's partition assignment decides who
works on which tenants, moves a dead worker's partitions to the others and gives a new
worker a share at the next rebalance. There is no scheduler of our own.

A worker runs the tenant (under the tenant's own lock, in its own namespace), publishes the
outcome to ``{prefix}.fleet-results.{ns}._rollouts`` (one partition), and only then
commits the work item: a worker killed in between leaves the item to the partition's next
owner, whose run of the tenant takes that tenant's lock and finds in its log what the dead
one did (a stale worker cannot apply anything twice). The coordinator reads the results from
the start of the results topic, so a result published while it was dead is not lost; the
first result for a tenant is the one it records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from ...core.ports import FleetResult, WorkItem
from .admin import admin_client, replication
from .config import KafkaSettings, new_client, topic_name
from .errors import unavailable
from .requests import confirming_producer, next_message, produce_confirmed

__all__ = ["DEFAULT_PARTITIONS", "FleetWorker", "KafkaFleet"]

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 12
"""Partitions of a work topic: how many workers can share a wave (one per partition at
most, as in any consumer group)."""
_POLL = 0.2


@dataclass(frozen=True)
class _Names:
    work: str
    results: str
    group: str


class KafkaFleet:
    """The work and results topics of one workflow's rollouts, on one Kafka cluster."""

    def __init__(self, settings: KafkaSettings, namespace: str,
                 partitions: int = DEFAULT_PARTITIONS) -> None:
        prefix = settings.topic_prefix
        self.settings, self.partitions = settings, partitions
        self.names = _Names(topic_name(prefix, "fleet", namespace),
                            topic_name(prefix, "fleet-results", namespace),
                            topic_name(prefix, "fleet-workers", namespace))
        self._producer: Any = None

    def ensure(self) -> None:
        """Create the work and results topics if they are missing."""
        admin = admin_client(self.settings)
        try:
            metadata = admin.list_topics(timeout=15)
            rf, isr = replication(self.settings, len(metadata.brokers))
            config = {"min.insync.replicas": str(isr)} if isr is not None else {}
            missing = [NewTopic(name, count, rf, config=config) for name, count in
                       ((self.names.work, self.partitions), (self.names.results, 1))
                       if name not in metadata.topics]
            futures = admin.create_topics(missing, operation_timeout=30) if missing else {}
            for future in futures.values():
                try:
                    future.result(30)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
        except KafkaException as exc:
            raise unavailable(f"create the fleet topics {self.names.work} and "
                              f"{self.names.results}", self.settings.describe(), exc) from exc

    def _produce(self, topic: str, records: list[tuple[str, bytes]]) -> None:
        if self._producer is None:
            self._producer = confirming_producer(self.settings)
        produce_confirmed(self._producer, self.settings, topic, records)

    def publish(self, rollout_id: str, wave: int, tenants: Sequence[str]) -> None:
        """Hand ``tenants`` to the fleet; returns once the broker has every item."""
        self._produce(self.names.work, [
            (tenant, json.dumps({"rollout_id": rollout_id, "wave": wave,
                                 "tenant": tenant}).encode()) for tenant in tenants])

    def report(self, result: FleetResult) -> None:
        """A worker's outcome of one tenant; returns once the broker has it."""
        self._produce(self.names.results, [(result.tenant, json.dumps({
            "rollout_id": result.rollout_id, "wave": result.wave, "tenant": result.tenant,
            "result": result.result, "run_id": result.run_id, "error": result.error,
            "worker": result.worker}).encode())])

    def results(self, rollout_id: str, until: Callable[[], bool],
                idle: Callable[[], None] = lambda: None) -> Iterator[FleetResult]:
        """Every result of ``rollout_id``, from the first ever published, as they come,
        until ``until()`` is true (asked after each result and while none comes;
        ``idle()`` is called then too)."""
        consumer = new_client(Consumer, self.settings.config({
            "group.id": f"{self.names.results}.coordinator", "enable.auto.commit": False,
            "isolation.level": "read_committed", "enable.partition.eof": False}))
        try:
            consumer.assign([TopicPartition(self.names.results, 0, OFFSET_BEGINNING)])
            while not until():
                msg = next_message(consumer, _POLL, self.names.results, self.settings)
                if msg is None:
                    idle()
                    continue
                found = _result(msg.value())
                if found is not None and found.rollout_id == rollout_id:
                    yield found
        finally:
            consumer.close()

    def worker(self, member: str) -> FleetWorker:
        """A member of the fleet's group: it is given a share of the work partitions."""
        return FleetWorker(self, member)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


class FleetWorker:
    """One worker's consumer in the fleet group; it commits an item once it is reported."""

    def __init__(self, fleet: KafkaFleet, member: str) -> None:
        self.fleet = fleet
        self.assigned: set[int] = set()
        self._consumer = new_client(Consumer, fleet.settings.config({
            "group.id": fleet.names.group, "group.protocol": "consumer",
            "client.id": f"flamingock-fleet-{member}"[:200], "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "isolation.level": "read_committed"}))
        self._consumer.subscribe([fleet.names.work], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {tp.partition for tp in partitions}
        log.info("fleet: assigned partitions %s", sorted(tp.partition for tp in partitions))

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned -= {tp.partition for tp in partitions}

    def poll(self, timeout: float = _POLL) -> WorkItem | None:
        """The next tenant to run, or ``None`` when there is none now."""
        msg = next_message(self._consumer, timeout, self.fleet.names.work, self.fleet.settings)
        if msg is None:
            return None
        try:
            item = json.loads(msg.value() or b"")
            return WorkItem(str(item["rollout_id"]), int(item["wave"]), str(item["tenant"]),
                            int(msg.partition() or 0), int(msg.offset() or 0))
        except (ValueError, KeyError, TypeError):
            log.warning("fleet: skipping an item that is not one at %s/%s: %r",
                        msg.partition(), msg.offset(), (msg.value() or b"")[:80])
            self.commit(WorkItem("", 0, "", int(msg.partition() or 0), int(msg.offset() or 0)))
            return None

    def commit(self, item: WorkItem) -> None:
        """The item is done (its result reported): its partition's next owner starts after."""
        try:
            self._consumer.commit(offsets=[TopicPartition(self.fleet.names.work,
                                                          item.partition, item.offset + 1)],
                                  asynchronous=False)
        except KafkaException as exc:  # revoked meanwhile: the next owner runs it again
            log.warning("fleet: could not commit %s/%s (%s); its next owner runs the tenant "
                        "again and finds it done", item.partition, item.offset, exc)

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the fleet consumer: %s", exc)


def _result(value: bytes | None) -> FleetResult | None:
    try:
        raw = json.loads(value or b"")
        return FleetResult(str(raw["rollout_id"]), int(raw["wave"]), str(raw["tenant"]),
                           str(raw["result"]), raw.get("run_id"), raw.get("error"),
                           str(raw.get("worker", "")))
    except (ValueError, KeyError, TypeError):
        return None

