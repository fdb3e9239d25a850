"""Kafka adapters: the audit log as a transactional topic, the lock as a group assignment,
change requests on their own topic. Built by :func:`flamingock_es.adapters.open_backend`."""

from __future__ import annotations

from .admin import ensure_topics
from .checkpoints import KafkaCheckpoints
from .config import KafkaSettings, Topics, parse_bus, topic_name, topics_for
from .errors import KafkaRefusedError, KafkaUnavailableError
from .event_log import KafkaEventLog
from .group_lock import KafkaGroupLock, KafkaLease
from .requests import KafkaRequestChannel, KafkaRequestConsumer
from .snapshots import KafkaSnapshots
from .writer import KafkaLogWriter

__all__ = [
    "KafkaCheckpoints",
    "KafkaEventLog",
    "KafkaGroupLock",
    "KafkaLease",
    "KafkaLogWriter",
    "KafkaRefusedError",
    "KafkaRequestChannel",
    "KafkaRequestConsumer",
    "KafkaSettings",
    "KafkaSnapshots",
    "KafkaUnavailableError",
    "Topics",
    "ensure_topics",
    "parse_bus",
    "topic_name",
    "topics_for",
]
