"""Creating a namespace's topics when they are missing (the project owns its topics)."""

from __future__ import annotations

import logging
from concurrent.futures import Future

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from .config import KafkaSettings, Topics, new_client
from .errors import error_of, transient_retry, unavailable

__all__ = ["audit_topic_config", "ensure_topics", "topic_exists", "topic_specs"]

log = logging.getLogger(__name__)

ADMIN_TIMEOUT = 15.0


def audit_topic_config(settings: KafkaSettings) -> dict[str, str]:
    """The audit topic's configs: kept forever, never compacted, acks=all meaningful."""
    config = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    if settings.min_insync_replicas is not None:
        config["min.insync.replicas"] = str(settings.min_insync_replicas)
    return config


def topic_specs(settings: KafkaSettings, topics: Topics) -> list[NewTopic]:
    """One ``NewTopic`` per topic of the namespace; all have one partition (total order)."""
    rf = settings.replication_factor
    isr = (
        {"min.insync.replicas": str(settings.min_insync_replicas)}
        if settings.min_insync_replicas is not None else {}
    )
    return [
        NewTopic(topics.audit, 1, rf, config=audit_topic_config(settings)),
        NewTopic(topics.lock, 1, rf, config={"cleanup.policy": "delete", **isr}),
        NewTopic(topics.requests, 1, rf, config=isr),
        NewTopic(topics.dead_letters, 1, rf, config=isr),
    ]


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An ``AdminClient`` with the pass-through (security) settings."""
    return new_client(AdminClient,
                      settings.config({"socket.timeout.ms": int(ADMIN_TIMEOUT * 1000)}))


def ensure_topics(settings: KafkaSettings, topics: Topics) -> None:
    """Create the namespace's topics that do not exist yet; existing ones are left alone."""
    admin = admin_client(settings)
    try:
        _create(admin, topic_specs(settings, topics))
    except KafkaException as exc:
        raise unavailable(
            f"create the topics {topics.audit}, {topics.lock}, {topics.requests}, "
            f"{topics.dead_letters}",
            settings.describe(), exc,
        ) from exc


@transient_retry(seconds=30.0)
def _create(admin: AdminClient, specs: list[NewTopic]) -> None:
    existing = set(admin.list_topics(timeout=ADMIN_TIMEOUT).topics)
    missing = [spec for spec in specs if spec.topic not in existing]
    if not missing:
        return
    futures: dict[str, Future[None]] = admin.create_topics(
        missing, request_timeout=ADMIN_TIMEOUT, operation_timeout=ADMIN_TIMEOUT
    )
    for name, future in futures.items():
        try:
            future.result(timeout=ADMIN_TIMEOUT)
        except KafkaException as exc:
            err = error_of(exc)
            if err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created meanwhile by another runner: fine
            raise
        log.info("created Kafka topic %s", name)


def topic_exists(settings: KafkaSettings, topic: str) -> bool:
    """True if ``topic`` exists on the cluster (asked without ever creating it)."""
    admin = admin_client(settings)
    try:
        return _exists(admin, topic)
    except KafkaException as exc:
        raise unavailable(f"look up the topic {topic}", settings.describe(), exc) from exc


@transient_retry(seconds=30.0)
def _exists(admin: AdminClient, topic: str) -> bool:
    metadata = admin.list_topics(topic=topic, timeout=ADMIN_TIMEOUT).topics.get(topic)
    if metadata is None or metadata.error is None:
        return metadata is not None
    if metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return False
    raise KafkaException(metadata.error)
