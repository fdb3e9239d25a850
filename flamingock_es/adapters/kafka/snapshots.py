"""``KafkaSnapshots``: the namespace's latest snapshot on a compacted topic, one key.

``{prefix}.snapshots.{ns}`` has one partition, ``cleanup.policy=compact`` (only the latest
value of the key survives) and room for large values (compressed JSON). Reading the latest
is reading the record before the high watermark.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from ...errors import AppendError
from .admin import admin_client, store_end
from .config import KafkaSettings, Topics, new_client
from .errors import unavailable

__all__ = ["SNAPSHOT_KEY", "KafkaSnapshots"]

log = logging.getLogger(__name__)

SNAPSHOT_KEY = b"state"
_TIMEOUT = 15.0


class KafkaSnapshots:
    """The latest snapshot of one namespace. Its clients are made on first use and kept:
    ``serve`` reads and writes snapshots for as long as it runs."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings, self.topic = settings, topics.snapshots
        self._admin: AdminClient | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None

    def latest(self) -> bytes | None:
        if self._admin is None:
            self._admin = admin_client(self.settings)
        end = store_end(self._admin, self.topic, "snapshot")
        if end <= 0:
            return None
        if self._consumer is None:
            self._consumer = new_client(Consumer, self.settings.config({
                "group.id": f"{self.topic}.reader",  # never commits: a fixed name, one ACL
                "enable.auto.commit": False, "fetch.wait.max.ms": 2}))
        self._consumer.assign([TopicPartition(self.topic, 0, end - 1)])
        message = self._consumer.poll(_TIMEOUT)
        if message is None or message.error() is not None:
            return None
        value = message.value()
        return value if isinstance(value, bytes) else None

    def save(self, data: bytes) -> None:
        if self._producer is None:
            # Not idempotent (as checkpoints.py): a retried send lands the same snapshot
            # twice under its one key, which compaction folds and readers take as one.
            self._producer = new_client(Producer, self.settings.config({
                "acks": "all", "enable.idempotence": False, "compression.type": "zstd",
                "message.max.bytes": 16 * 1024 * 1024}))
        failures: list[object] = []
        try:
            self._producer.produce(self.topic, data, SNAPSHOT_KEY, partition=0,
                                   on_delivery=lambda err, _msg: failures.append(err)
                                   if err else None)
            left = self._producer.flush(_TIMEOUT)
        except KafkaException as exc:
            raise unavailable(f"write a snapshot to {self.topic}", self.settings.describe(),
                              exc) from exc
        if failures or left:
            raise AppendError(f"the broker did not confirm the snapshot on {self.topic}: "
                              f"{failures or 'no delivery report'}")

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.flush(5)
        self._admin = self._consumer = self._producer = None
