"""The audit topic on the real broker, written by the CLI, read by a second Avro
implementation (Apache Avro's Python package) with a plain Kafka consumer: what a service in
another language does with the published schemas and fingerprints (docs/avro.md)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from ..avro_reader import decode, writer_schemas
from ..e2e.conftest import Project, ok

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def read_topic(bootstrap: str, topic: str, group: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    try:
        _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        while True:
            message = consumer.poll(5.0)
            assert message is not None, f"{topic}: nothing more after {len(values)} records"
            assert message.error() is None, message.error()
            values.append(message.value())
            if message.offset() >= end - 2:  # the last record before the commit marker
                return values
    finally:
        consumer.close()


def test_avros_reader_decodes_the_audit_topic(tmp_path: Path, kafka_bootstrap: str,
                                              unique_name: str) -> None:
    project = Project(tmp_path / "proj")
    project.write("flamingock.yaml", f"namespace: {unique_name}\nstages:\n  - name: main\n"
                                     "    units: [changes]\n")
    project.units()
    ok(project.cli("run", "--bus", f"kafka://{kafka_bootstrap}"))

    records = read_topic(kafka_bootstrap, f"flamingock.audit.{unique_name}", unique_name)
    decoded = [decode(record, writer_schemas()) for record in records]

    assert {name for name, _ in decoded} == {"AuditEvent"}
    assert [datum["seq"] for _, datum in decoded] == list(range(10))
    assert {datum["namespace"] for _, datum in decoded} == {unique_name}
    units = [datum["payload"].get("unit_id") for _, datum in decoded]
    assert units == [None, None, "u1", "u1", "u2", "u2", "u3", "u3", None, None]
    for (_, before), (_, after) in pairwise(decoded):
        assert after["prev_hash"] == before["hash"]  # the chain, as another reader sees it
    assert decoded[-1][1]["signature"] is None  # this project signs nothing: no trust store
