"""The ``kafka-topic`` template: create, reconfigure, grow or delete a Kafka topic.

```yaml
template: kafka-topic
apply:    {topic: orders, action: create, partitions: 6, replication_factor: 3,
           configs: {retention.ms: "604800000"}}
rollback: {topic: orders, action: delete}
```

``bootstrap`` falls back to the workflow setting ``kafka_bootstrap``, then to the
``FLAMINGOCK_KAFKA_BOOTSTRAP`` variable. Security properties (``security.protocol``,
``sasl.*``, ``ssl.*``) go in ``client`` or the workflow setting ``kafka_client``.

Idempotent: creating a topic that exists with the same partition count is a no-op (a
different count is an error: nothing is guessed); adding partitions up to a count the topic
already has is a no-op; deleting a missing topic is a no-op. ``alter-configs`` changes only
the keys given (incremental), so its rollback block lists the values to restore.

Every action returns once a broker serves its result: KRaft brokers apply a change a moment
after the controller acknowledged it, and a unit that follows (or the same unit run again)
would otherwise read the old topic, its old partition count or its old configs.

Kafka's admin API takes no fencing token, so the lock is checked right before every admin
call (a metadata read included): a runner that lost the lock makes no further call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)
from pydantic import Field

from ...core.changes import ChangeContext
from ...errors import TemplateError
from .base import Template, TemplateParams, register

__all__ = ["KafkaTopic", "KafkaTopicParams"]

_TIMEOUT = 30.0
_SETTLE_POLL = 0.05
_ABSENT = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.UNKNOWN_TOPIC_ID}


class KafkaTopicParams(TemplateParams):
    """One topic operation."""

    topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    action: Literal["create", "alter-configs", "add-partitions", "delete"] = "create"
    bootstrap: str | None = None
    partitions: int | None = Field(default=None, ge=1)
    replication_factor: int | None = Field(default=None, ge=1)
    configs: dict[str, str] = Field(default_factory=dict)
    client: dict[str, str] = Field(default_factory=dict)
    """librdkafka properties for the admin client (security settings)."""


@register
class KafkaTopic(Template):
    """Topic administration through the Kafka ``AdminClient``; each action waits for the
    broker's answer and fails with a ``TemplateError`` naming the topic."""

    name: ClassVar[str] = "kafka-topic"
    Params: ClassVar[type[TemplateParams]] = KafkaTopicParams
    secret_fields: ClassVar[frozenset[str]] = frozenset({"client"})

    def apply(self, params: KafkaTopicParams, ctx: ChangeContext) -> None:
        run(params, ctx)

    def rollback(self, params: KafkaTopicParams, ctx: ChangeContext) -> None:
        run(params, ctx)


def run(params: KafkaTopicParams, ctx: ChangeContext) -> None:
    """Carry out ``params.action`` on ``params.topic``."""
    admin = _admin(params, ctx)
    action = params.action
    try:
        if action == "create":
            _create(admin, params, ctx)
        elif action == "alter-configs":
            _alter(admin, params, ctx)
        elif action == "add-partitions":
            _add_partitions(admin, params, ctx)
        else:
            _delete(admin, params, ctx)
    except KafkaException as exc:
        raise TemplateError(
            f"kafka-topic: {action} {params.topic!r} failed: {exc.args[0] if exc.args else exc}"
        ) from exc


def _admin(params: KafkaTopicParams, ctx: ChangeContext) -> AdminClient:
    bootstrap = params.bootstrap or ctx.settings.get("kafka_bootstrap")
    if not bootstrap:
        raise TemplateError(
            f"kafka-topic: no bootstrap servers for {params.topic!r}: set bootstrap in the "
            "block, kafka_bootstrap in settings, or FLAMINGOCK_KAFKA_BOOTSTRAP."
        )
    shared: dict[str, Any] = dict(ctx.settings.get("kafka_client") or {})
    # Asking for the topic must not let a broker with auto.create.topics.enable (Kafka's
    # default) create it with its defaults: the unit would then find it "existing" and never
    # apply its partitions and configs (librdkafka lets an AdminClient auto-create).
    return AdminClient({**shared, **params.client, "bootstrap.servers": str(bootstrap),
                        "allow.auto.create.topics": False})


def _partitions(admin: AdminClient, topic: str, ctx: ChangeContext) -> int | None:
    ctx.check_lock()
    metadata = admin.list_topics(topic=topic, timeout=_TIMEOUT).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return None
    return len(metadata.partitions)


def _create(admin: AdminClient, params: KafkaTopicParams, ctx: ChangeContext) -> None:
    existing = _partitions(admin, params.topic, ctx)
    if existing is not None:
        if params.partitions is not None and params.partitions != existing:
            raise TemplateError(
                f"kafka-topic: {params.topic!r} exists with {existing} partitions, not "
                f"{params.partitions}; use action add-partitions, or another topic name."
            )
        ctx.log.info("topic %s exists already; configs are left as they are", params.topic)
        return
    spec = NewTopic(params.topic, params.partitions or -1, params.replication_factor or -1,
                    config=dict(params.configs))
    ctx.check_lock()
    future = admin.create_topics([spec], request_timeout=_TIMEOUT)[params.topic]
    try:
        future.result(timeout=_TIMEOUT)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    _settle(params, lambda: _partitions(admin, params.topic, ctx) is not None)
    ctx.log.info("created topic %s", params.topic)


def _alter(admin: AdminClient, params: KafkaTopicParams, ctx: ChangeContext) -> None:
    if not params.configs:
        raise TemplateError(f"kafka-topic: alter-configs on {params.topic!r} needs configs.")
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in params.configs.items()]
    resource = ConfigResource("topic", params.topic, incremental_configs=entries)
    ctx.check_lock()
    admin.incremental_alter_configs([resource])[resource].result(timeout=_TIMEOUT)
    _settle(params, lambda: _configs_served(admin, params, ctx))
    ctx.log.info("set %s on topic %s", ", ".join(sorted(params.configs)), params.topic)


def _configs_served(admin: AdminClient, params: KafkaTopicParams, ctx: ChangeContext) -> bool:
    ctx.check_lock()
    resource = ConfigResource("topic", params.topic)
    served = admin.describe_configs([resource])[resource].result(timeout=_TIMEOUT)
    return all(k in served and (served[k].is_sensitive or served[k].value == v)
               for k, v in params.configs.items())


def _settle(params: KafkaTopicParams, served: Callable[[], bool]) -> None:
    """Return once ``served()`` holds: a KRaft broker applies a change the controller
    acknowledged a moment later, and the unit that follows must not read the old state."""
    deadline = time.monotonic() + _TIMEOUT
    while not served():
        if time.monotonic() > deadline:
            raise TemplateError(
                f"kafka-topic: the brokers acknowledged {params.action} on {params.topic!r} "
                f"but still serve the old state after {_TIMEOUT:.0f}s; check the controller's "
                "log, then run again (every action is idempotent)."
            )
        time.sleep(_SETTLE_POLL)


def _add_partitions(admin: AdminClient, params: KafkaTopicParams, ctx: ChangeContext) -> None:
    if params.partitions is None:
        raise TemplateError(f"kafka-topic: add-partitions on {params.topic!r} needs partitions.")
    existing = _partitions(admin, params.topic, ctx)
    if existing is None:
        raise TemplateError(f"kafka-topic: topic {params.topic!r} does not exist.")
    if existing >= params.partitions:
        ctx.log.info("topic %s has %d partitions already", params.topic, existing)
        return
    ctx.check_lock()
    future = admin.create_partitions([NewPartitions(params.topic, params.partitions)],
                                     request_timeout=_TIMEOUT)[params.topic]
    future.result(timeout=_TIMEOUT)
    wanted = params.partitions
    _settle(params, lambda: (_partitions(admin, params.topic, ctx) or 0) >= wanted)
    ctx.log.info("topic %s now has %d partitions", params.topic, params.partitions)


def _delete(admin: AdminClient, params: KafkaTopicParams, ctx: ChangeContext) -> None:
    ctx.check_lock()
    future = admin.delete_topics([params.topic], operation_timeout=_TIMEOUT)[params.topic]
    try:
        future.result(timeout=_TIMEOUT)
    except KafkaException as exc:
        if exc.args[0].code() not in _ABSENT:
            raise
        ctx.log.info("topic %s does not exist; nothing to delete", params.topic)
        return
    _settle(params, lambda: _partitions(admin, params.topic, ctx) is None)
    ctx.log.info("deleted topic %s", params.topic)
