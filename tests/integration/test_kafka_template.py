"""The ``kafka-topic`` template against the real broker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from flamingock_es.adapters.local.file_lock import FileLock
from flamingock_es.core.changes import ChangeContext
from flamingock_es.definition.templates import get_template
from flamingock_es.errors import LockLostError, TemplateError

pytestmark = pytest.mark.kafka


@pytest.fixture
def ctx(kafka_bootstrap: str) -> ChangeContext:
    return ChangeContext("ns", "run-1", "u1", {}, {"kafka_bootstrap": kafka_bootstrap},
                         logging.getLogger("test"))


@pytest.fixture
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


def _apply(ctx: ChangeContext, block: dict[str, object], phase: str = "apply") -> None:
    template = get_template("kafka-topic")
    params = template.validate(block, phase, "test.yaml")
    if phase == "apply":
        template.apply(params, ctx)
    else:
        template.rollback(params, ctx)


def _partitions(admin: AdminClient, topic: str) -> int | None:
    meta = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    return None if meta is None or meta.error is not None else len(meta.partitions)


def _config(admin: AdminClient, topic: str, key: str) -> str:
    resource = ConfigResource("topic", topic)
    value: str = admin.describe_configs([resource])[resource].result(timeout=10)[key].value
    return value


def test_create_alter_grow_and_delete(
    ctx: ChangeContext, admin: AdminClient, unique_name: str
) -> None:
    topic = unique_name
    create = {"topic": topic, "action": "create", "partitions": 2, "replication_factor": 1,
              "configs": {"retention.ms": "3600000"}}
    _apply(ctx, create)
    assert _partitions(admin, topic) == 2
    assert _config(admin, topic, "retention.ms") == "3600000"
    _apply(ctx, create)  # again: same settings, a no-op

    _apply(ctx, {"topic": topic, "action": "alter-configs",
                 "configs": {"retention.ms": "7200000", "cleanup.policy": "compact"}})
    assert _config(admin, topic, "retention.ms") == "7200000"
    assert _config(admin, topic, "cleanup.policy") == "compact"
    _apply(ctx, {"topic": topic, "action": "alter-configs",
                 "configs": {"retention.ms": "3600000", "cleanup.policy": "delete"}}, "rollback")
    assert _config(admin, topic, "cleanup.policy") == "delete"

    _apply(ctx, {"topic": topic, "action": "add-partitions", "partitions": 4})
    _apply(ctx, {"topic": topic, "action": "add-partitions", "partitions": 3})  # has 4: no-op
    assert _partitions(admin, topic) == 4

    _apply(ctx, {"topic": topic, "action": "delete"}, "rollback")
    _apply(ctx, {"topic": topic, "action": "delete"}, "rollback")  # gone already: no-op


def test_each_action_returns_once_a_broker_serves_its_result(
    ctx: ChangeContext, admin: AdminClient, unique_name: str
) -> None:
    # A KRaft broker applies an acknowledged change a moment later: read straight after the
    # acknowledgement, 2 to 3 in 100 alters, partition additions and deletions still showed
    # the old state on the single broker.
    _apply(ctx, {"topic": unique_name, "partitions": 1})
    for round_ in range(100):
        policy = ("compact", "delete")[round_ % 2]
        _apply(ctx, {"topic": unique_name, "action": "alter-configs",
                     "configs": {"cleanup.policy": policy}})
        assert _config(admin, unique_name, "cleanup.policy") == policy, f"round {round_}"
    for round_ in range(40):
        topic = f"{unique_name}-{round_}"
        _apply(ctx, {"topic": topic, "partitions": 1})
        _apply(ctx, {"topic": topic, "action": "add-partitions", "partitions": 2})
        assert _partitions(admin, topic) == 2, f"round {round_}"
        _apply(ctx, {"topic": topic, "action": "delete"}, "rollback")
        assert _partitions(admin, topic) is None, f"round {round_}"


def test_creating_an_existing_topic_with_other_partitions_is_refused(
    ctx: ChangeContext, unique_name: str
) -> None:
    _apply(ctx, {"topic": unique_name, "partitions": 1})
    try:
        with pytest.raises(TemplateError, match="exists with 1 partitions"):
            _apply(ctx, {"topic": unique_name, "partitions": 3})
    finally:
        _apply(ctx, {"topic": unique_name, "action": "delete"})


def test_bad_parameters_are_a_template_error(ctx: ChangeContext) -> None:
    with pytest.raises(TemplateError, match="action"):
        _apply(ctx, {"topic": "t", "action": "rename"})
    with pytest.raises(TemplateError, match="needs partitions"):
        _apply(ctx, {"topic": "t", "action": "add-partitions"})


def test_a_lost_lock_makes_no_admin_call(
    kafka_bootstrap: str, admin: AdminClient, unique_name: str, tmp_path: Path
) -> None:
    held = FileLock(tmp_path / "lock").acquire("test:1:run-1", 5.0)
    ctx = ChangeContext("ns", "run-1", "u1", {}, {"kafka_bootstrap": kafka_bootstrap},
                        logging.getLogger("test"), lease=held)
    topic = unique_name
    _apply(ctx, {"topic": topic, "partitions": 1, "configs": {"retention.ms": "3600000"}})
    (tmp_path / "lock").unlink()  # the lock is lost: its file is gone
    assert not ctx.holds_lock()
    try:
        for block, phase in [
            ({"topic": f"{topic}-new", "partitions": 1}, "apply"),
            ({"topic": topic, "action": "alter-configs",
              "configs": {"retention.ms": "7200000"}}, "apply"),
            ({"topic": topic, "action": "add-partitions", "partitions": 3}, "apply"),
            ({"topic": topic, "action": "delete"}, "rollback"),
        ]:
            with pytest.raises(LockLostError):
                _apply(ctx, block, phase)
        assert _partitions(admin, f"{topic}-new") is None  # never created
        assert _partitions(admin, topic) == 1  # neither grown nor deleted
        assert _config(admin, topic, "retention.ms") == "3600000"  # nor altered
    finally:
        held.release()
        admin.delete_topics([topic])[topic].result(timeout=30)
