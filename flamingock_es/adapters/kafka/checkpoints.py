"""``KafkaCheckpoints``: a namespace's published checkpoints on a compacted topic.

``{prefix}.checkpoints.{ns}`` has one partition and ``cleanup.policy=compact``; each record's
key is its tree size (decimal), so compaction keeps one checkpoint per size (the last one
published for it: cosignatures added later replace it) and every size ever published. The
latest is the record before the high watermark; the history is the whole topic.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from ...errors import AppendError
from .admin import admin_client, store_end
from .config import KafkaSettings, Topics, new_client
from .errors import unavailable

__all__ = ["KafkaCheckpoints"]

log = logging.getLogger(__name__)

_TIMEOUT = 15.0


class KafkaCheckpoints:
    """The checkpoints of one namespace; clients made on first use and kept."""

    def __init__(self, settings: KafkaSettings, topics: Topics) -> None:
        self.settings, self.topic = settings, topics.checkpoints
        self.where = f"kafka:{self.topic}@{settings.bootstrap}"
        self._admin: AdminClient | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None

    def _end(self) -> int:
        if self._admin is None:
            self._admin = admin_client(self.settings)
        return store_end(self._admin, self.topic, "checkpoint")

    def _read(self, start: int, end: int) -> list[bytes]:
        if self._consumer is None:
            self._consumer = new_client(Consumer, self.settings.config({
                "group.id": f"{self.topic}.reader",  # never commits: a fixed name, one ACL
                "enable.auto.commit": False, "fetch.wait.max.ms": 2}))
        self._consumer.assign([TopicPartition(self.topic, 0, start)])
        out: list[bytes] = []
        while True:
            message = self._consumer.poll(_TIMEOUT)
            if message is None:
                break
            if message.error() is not None:
                continue
            value = message.value()
            if isinstance(value, bytes):
                out.append(value)
            if (message.offset() or 0) >= end - 1:
                break
        return out

    def publish(self, size: int, data: bytes) -> None:
        if self._producer is None:
            # Not idempotent: a retried send can only land the same record twice under the
            # same key (its tree size), which compaction folds and every reader reads as one;
            # an idempotent producer's start (its producer id) cost ~0.5 s of every run here.
            self._producer = new_client(Producer, self.settings.config({
                "acks": "all", "enable.idempotence": False}))
        failures: list[object] = []
        try:
            self._producer.produce(self.topic, data, str(size).encode(), partition=0,
                                   on_delivery=lambda err, _msg: failures.append(err)
                                   if err else None)
            left = self._producer.flush(_TIMEOUT)
        except KafkaException as exc:
            raise unavailable(f"publish a checkpoint to {self.topic}",
                              self.settings.describe(), exc) from exc
        if failures or left:
            raise AppendError(f"the broker did not confirm the checkpoint on {self.topic}: "
                              f"{failures or 'no delivery report'}")

    def latest(self) -> bytes | None:
        end = self._end()
        if end <= 0:
            return None
        found = self._read(end - 1, end)
        return found[-1] if found else None

    def history(self) -> list[bytes]:
        end = self._end()
        return self._read(0, end) if end > 0 else []

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.flush(5)
        self._admin = self._consumer = self._producer = None
