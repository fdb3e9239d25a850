"""Kafka adapters: the audit log as a transactional topic, the lock as a group assignment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .admin import ensure_topics
from .config import KafkaSettings, Topics, parse_bus, topic_name, topics_for
from .errors import KafkaUnavailableError
from .event_log import KafkaEventLog, KafkaLogWriter
from .group_lock import KafkaGroupLock, KafkaLease

if TYPE_CHECKING:
    from ...backends import Backend

__all__ = [
    "KafkaEventLog",
    "KafkaGroupLock",
    "KafkaLease",
    "KafkaLogWriter",
    "KafkaSettings",
    "KafkaUnavailableError",
    "Topics",
    "open_kafka_backend",
    "parse_bus",
    "topic_name",
    "topics_for",
]


def open_kafka_backend(
    bus: str, namespace: str, options: Mapping[str, Any] | None = None
) -> Backend:
    """The log and lock of ``namespace`` on the Kafka cluster ``bus``; creates missing topics."""
    from ...backends import Backend

    settings = parse_bus(bus, options)
    topics = settings.topics(namespace)
    ensure_topics(settings, topics)
    return Backend(bus, namespace, KafkaEventLog(settings, topics),
                   KafkaGroupLock(settings, topics), dict(options or {}))
