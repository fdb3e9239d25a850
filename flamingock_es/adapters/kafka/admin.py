"""Creating a namespace's topics when they are missing (the project owns its topics)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
    OffsetSpec,
)

from ...errors import ConfigError
from .config import KafkaSettings, Topics, new_client
from .errors import error_of, result_of, transient_retry, unavailable

__all__ = [
    "admin_client",
    "audit_topic_config",
    "end_offsets",
    "ensure_topics",
    "replication",
    "store_end",
    "topic_exists",
    "topic_specs",
]

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
        # one record per tree size: compaction keeps every size, the last copy of each
        NewTopic(topics.checkpoints, 1, rf, config={"cleanup.policy": "compact", **isr}),
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
        raise unavailable(f"create the topics {', '.join(_names(topics))}",
                          settings.describe(), exc) from exc


@transient_retry(seconds=30.0)
def _create(admin: AdminClient, settings: KafkaSettings, topics: Topics) -> None:
    names = _names(topics)
    found = _described(admin, names)
    if len(found) < len(names):
        specs = topic_specs(settings, topics, _brokers(admin))
        _create_missing(admin, [spec for spec in specs if spec.topic not in found])
    if len(found) < len(names) or not all(_has_leader(found[name]) for name in names):
        _await_leaders(admin, names)


def _names(topics: Topics) -> list[str]:
    """The names of the topics :func:`topic_specs` creates, in its order."""
    return [topics.audit, topics.lock, topics.requests, topics.dead_letters, topics.snapshots,
            topics.checkpoints]


def _described(admin: AdminClient, names: list[str]) -> dict[str, Any]:
    """The description of each of ``names`` that exists, in one request that names them
    (never the whole cluster's metadata, which grows with every tenant's topics; never
    creating one). A topic these credentials may not describe counts as absent: creating
    it is then refused with the ACL's own error."""
    found: dict[str, Any] = {}
    futures = admin.describe_topics(TopicCollection(names), request_timeout=ADMIN_TIMEOUT)
    for name, future in futures.items():
        try:
            found[name] = result_of(future, ADMIN_TIMEOUT)
        except KafkaException as exc:
            err = error_of(exc)
            if err is None or err.code() not in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                                 KafkaError.TOPIC_AUTHORIZATION_FAILED):
                raise
    return found


def _brokers(admin: AdminClient) -> int:
    """How many brokers the cluster has (the replication a new topic can get)."""
    return len(result_of(admin.describe_cluster(request_timeout=ADMIN_TIMEOUT),
                         ADMIN_TIMEOUT).nodes)


def _create_missing(admin: AdminClient, missing: list[NewTopic]) -> None:
    futures: dict[str, Future[None]] = admin.create_topics(
        missing, request_timeout=ADMIN_TIMEOUT, operation_timeout=ADMIN_TIMEOUT
    )
    for name, future in futures.items():
        try:
            result_of(future, ADMIN_TIMEOUT)
        except KafkaException as exc:
            err = error_of(exc)
            if err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # created meanwhile by another runner: fine
            raise
        log.info("created Kafka topic %s", name)


def _await_leaders(admin: AdminClient, names: list[str]) -> None:
    """Return once every topic's partition has a leader. A topic another runner has just
    created is listed before its leader is elected; a first read then would meet
    NOT_LEADER_FOR_PARTITION and log retries in every runner of a crowd."""
    deadline = time.monotonic() + ADMIN_TIMEOUT
    while True:
        topics = _described(admin, names)
        waiting = [name for name in names if not _has_leader(topics.get(name))]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE,
                                            f"no leader yet for {', '.join(waiting)}"))
        time.sleep(0.05)


def _has_leader(topic: Any) -> bool:
    """Whether partition 0 of a described topic has a leader (the only one the log uses)."""
    first = next((p for p in topic.partitions if p.id == 0), None) if topic is not None else None
    return first is not None and first.leader is not None


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


def high_watermark(admin: AdminClient, topic: str, timeout: float) -> int:
    """Partition 0's high watermark, asked once with ``timeout``. Raises ``KafkaException``
    (a topic just created has no leader yet; no answer in ``timeout``, code ``_TIMED_OUT``)
    or ``TimeoutError`` (the future not done a second later)."""
    partition = TopicPartition(topic, 0)
    ends = admin.list_offsets(
        {partition: OffsetSpec.latest()},  # type: ignore[no-untyped-call]
        isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=timeout)
    return int(ends[partition].result(timeout=timeout + 1).offset)


LOOKUPS = (3.0, 15.0)
"""The timeouts of :func:`store_end`'s tries: short first (a new tenant's run asks twice),
then long enough for a busy broker (one try of 3 s left ``verify`` without the checkpoint it
was to check, on a loaded machine)."""


_NO_ANSWER = frozenset({KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT})


def store_end(admin: AdminClient, topic: str, what: str) -> int:
    """Where a store that keeps its latest record last (snapshots, checkpoints) finds it:
    partition 0's high watermark; 0 (nothing stored) for a topic whose partition has no
    leader yet (just created), or that answered neither try of :data:`LOOKUPS`."""
    for timeout in LOOKUPS:
        try:
            return high_watermark(admin, topic, timeout)
        except TimeoutError:
            continue
        except KafkaException as exc:
            err = error_of(exc)
            if err is not None and err.code() in _NO_ANSWER:
                continue  # librdkafka's own request timeout, which usually comes first
            log.info("no %s read from %s: %s", what, topic, exc)
            return 0
    log.warning("no %s read from %s: no answer in %g s", what, topic, sum(LOOKUPS))
    return 0


@transient_retry(seconds=30.0)
def end_offsets(admin: AdminClient, topic: str) -> tuple[int, int]:
    """Partition 0's last stable offset (the end a ``read_committed`` reader sees) and its
    high watermark (where the next record goes, open transactions included)."""
    partition = TopicPartition(topic, 0)
    ends = []
    for level in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
        found = result_of(admin.list_offsets(
            {partition: OffsetSpec.latest()},  # type: ignore[no-untyped-call]
            isolation_level=level, request_timeout=10)[partition], 15)
        if found.offset < 0:
            # No answer (-1001: the partition has no leader while one is elected) is not an
            # end: an empty log read as the truth would make every applied unit pending.
            raise KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE,
                                            f"no end offset for {topic} ({found.offset})"))
        ends.append(int(found.offset))
    return ends[0], ends[1]
