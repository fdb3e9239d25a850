"""On a broker that auto-creates topics, as stock Kafka does (``auto.create.topics.enable``
defaults to true), no client of ours lets it: a read-only command leaves a new namespace
without topics, and a first run creates them with their own configs.

librdkafka lets a producer, and an AdminClient is one, auto-create a topic it asks metadata
for. Before every client set ``allow.auto.create.topics=false``, a `status` of a namespace
that had never run created its audit topic with the broker's defaults (seven days'
retention), and the first run then found it "existing" and kept it so.

scripts/test runs this in its classic phase, whose broker is restarted with
``FLAMINGOCK_KAFKA_AUTO_CREATE=true`` as well as ``--classic-groups``; the module fails at
once on a broker that does not auto-create (it would prove nothing there).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from flamingock_es.core.changes import ChangeContext

from .broker_config import broker_values
from .test_kafka_template import _apply, _config, _partitions

pytestmark = [pytest.mark.kafka, pytest.mark.classic]

UNIT = '''\
from flamingock_es import change_unit


@change_unit(id="first", order=1, author="it")
def first(ctx):
    pass
'''


@pytest.fixture(scope="module")
def admin(kafka_bootstrap: str) -> AdminClient:
    """An admin client of a broker that auto-creates topics; fails on any other."""
    for broker, value in broker_values(kafka_bootstrap, "auto.create.topics.enable").items():
        if value != "true":
            pytest.fail(f"broker {broker} of {kafka_bootstrap} does not auto-create topics: "
                        "start it with FLAMINGOCK_KAFKA_AUTO_CREATE=true (scripts/test's "
                        "classic phase does)", pytrace=False)
    return AdminClient({"bootstrap.servers": kafka_bootstrap, "allow.auto.create.topics": False})


def _topics(admin: AdminClient, namespace: str) -> dict[str, dict[str, str]]:
    """The namespace's topics on the cluster, with their retention and cleanup policy."""
    names = sorted(t for t in admin.list_topics(timeout=10).topics if t.endswith(namespace))
    out = {}
    for name in names:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs = admin.describe_configs([resource])[resource].result(timeout=10)
        out[name.split(".")[1]] = {key: configs[key].value
                                  for key in ("retention.ms", "cleanup.policy")}
    return out


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flamingock_es.cli", *args], cwd=project,
                          capture_output=True, text=True, timeout=180, check=False)


def test_a_read_only_command_creates_no_topic_and_a_run_creates_them_as_configured(
        admin: AdminClient, kafka_bootstrap: str, tmp_path: Path) -> None:
    namespace = f"stock-{uuid.uuid4().hex[:10]}"
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "u1.py").write_text(UNIT)
    (tmp_path / "flamingock.yaml").write_text(
        f"namespace: {namespace}\nbus: kafka://{kafka_bootstrap}\n"
        "stages:\n  - name: main\n    units: [changes]\n")

    for command in (["status"], ["plan"], ["verify"], ["history"]):
        _cli(tmp_path, *command)  # each says the namespace is new or empty; none creates
        assert _topics(admin, namespace) == {}, command

    done = _cli(tmp_path, "run")
    assert done.returncode == 0, done.stderr
    topics = _topics(admin, namespace)
    assert sorted(topics) == ["audit", "checkpoints", "lock", "requests", "requests-dlq",
                              "snapshots"]
    assert topics["audit"] == {"retention.ms": "-1", "cleanup.policy": "delete"}
    assert topics["snapshots"]["cleanup.policy"] == "compact"
    assert topics["checkpoints"]["cleanup.policy"] == "compact"


def test_the_kafka_topic_template_creates_its_topic_as_the_unit_says(
        admin: AdminClient, kafka_bootstrap: str, unique_name: str) -> None:
    """The template asks for the topic before creating it: an auto-created one (one
    partition, the broker's configs) would be taken for one that exists already."""
    ctx = ChangeContext("ns", "run-1", "u1", {}, {"kafka_bootstrap": kafka_bootstrap},
                        logging.getLogger("test"))
    _apply(ctx, {"topic": unique_name, "action": "create", "partitions": 2,
                 "replication_factor": 1, "configs": {"retention.ms": "3600000"}})
    assert _partitions(admin, unique_name) == 2
    assert _config(admin, unique_name, "retention.ms") == "3600000"
