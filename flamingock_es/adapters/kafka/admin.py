"""Creating a namespace's topics when they are missing (the project owns its topics)."""

from __future__ import annotations

import logging
from concurrent.futures import Future

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from ...errors import ConfigError
from .config import KafkaSettings, Topics, new_client
from .errors import error_of, transient_retry, unavailable

__all__ = ["audit_topic_config", "ensure_topics", "replication", "topic_exists", "topic_specs"]

log = logging.getLogger(__name__)

ADMIN_TIMEOUT = 15.0
CLUSTER_BROKERS = 3
"""From this many brokers on, created topics default to replication factor 3 and
min.insync.replicas 2: one broker may die and every acknowledged write survives."""


def replication(settings: KafkaSettings, brokers: int) -> tuple[int, int | None]:
    """The replication factor and ``min.insync.replicas`` of the topics to create.

    Configured values win. Otherwise they follow the cluster: 3 and 2 when the metadata
    lists at least three brokers, else 1 and the broker's default.
    """
    clustered = brokers >= CLUSTER_BROKERS
    rf = settings.replication_factor or (3 if clustered else 1)
    isr = settings.min_insync_replicas
    if isr is None and settings.replication_factor is None and clustered:
        isr = 2
    if isr is not None and isr > rf:
        raise ConfigError(
            f"min_insync_replicas={isr} is greater than the replication factor {rf} "
            f"({brokers} broker(s) seen): no write could ever succeed. Set replication_factor."
        )
    return rf, isr


def audit_topic_config(min_insync_replicas: int | None) -> dict[str, str]:
    """The audit topic's configs: kept forever, never compacted, acks=all meaningful."""
    config = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    if min_insync_replicas is not None:
        config["min.insync.replicas"] = str(min_insync_replicas)
    return config


def topic_specs(settings: KafkaSettings, topics: Topics, brokers: int) -> list[NewTopic]:
    """One ``NewTopic`` per topic of the namespace; all have one partition (total order),
    replicated as :func:`replication` says for a cluster of ``brokers``."""
    rf, min_isr = replication(settings, brokers)
    isr = {"min.insync.replicas": str(min_isr)} if min_isr is not None else {}
    return [
        NewTopic(topics.audit, 1, rf, config=audit_topic_config(min_isr)),
        NewTopic(topics.lock, 1, rf, config={"cleanup.policy": "delete", **isr}),
        NewTopic(topics.requests, 1, rf, config=isr),
        NewTopic(topics.dead_letters, 1, rf, config=isr),
        NewTopic(topics.snapshots, 1, rf, config={
            "cleanup.policy": "compact", "max.message.bytes": str(16 * 1024 * 1024), **isr}),
    ]


def admin_client(settings: KafkaSettings) -> AdminClient:
    """An ``AdminClient`` with the pass-through (security) settings."""
    return new_client(AdminClient,
                      settings.config({"socket.timeout.ms": int(ADMIN_TIMEOUT * 1000)}))


def ensure_topics(settings: KafkaSettings, topics: Topics) -> None:
    """Create the namespace's topics that do not exist yet; existing ones are left alone."""
    admin = admin_client(settings)
    try:
        _create(admin, settings, topics)
    except KafkaException as exc:
        raise unavailable(
            f"create the topics {topics.audit}, {topics.lock}, {topics.requests}, "
            f"{topics.dead_letters}, {topics.snapshots}",
            settings.describe(), exc,
        ) from exc


@transient_retry(seconds=30.0)
def _create(admin: AdminClient, settings: KafkaSettings, topics: Topics) -> None:
    metadata = admin.list_topics(timeout=ADMIN_TIMEOUT)
    specs = topic_specs(settings, topics, len(metadata.brokers))
    missing = [spec for spec in specs if spec.topic not in metadata.topics]
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
