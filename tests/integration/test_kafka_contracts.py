"""The port contracts (``tests/contracts``), unchanged, on the real Kafka broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from flamingock_es.adapters.kafka.requests import REASON_HEADER, SOURCE_HEADER
from flamingock_es.namespace import Backend
from tests.contracts.event_log_contract import EventLogContract
from tests.contracts.lock_contract import LockContract
from tests.contracts.request_channel_contract import DeadLetter, RequestChannelContract

pytestmark = pytest.mark.kafka

@pytest.fixture
def bus(kafka_bootstrap: str) -> str:
    return f"kafka://{kafka_bootstrap}"


class TestKafkaEventLog(EventLogContract):
    pass


class TestKafkaGroupLock(LockContract):
    @pytest.fixture(autouse=True)
    def _crash_timeout(self, group_session_timeout: float) -> None:
        """A dead holder's lock comes free once the broker's session timeout has passed."""
        self.crash_timeout = group_session_timeout + 10.0


class TestKafkaRequestChannel(RequestChannelContract):
    def dead_letters(self, backend: Backend) -> list[DeadLetter]:
        topic = f"flamingock.requests-dlq.{backend.namespace}"
        consumer = Consumer({"bootstrap.servers": backend.bus.removeprefix("kafka://"),
                             "group.id": f"dlq-reader-{uuid.uuid4().hex}",
                             "enable.partition.eof": True, "isolation.level": "read_committed"})
        consumer.assign([TopicPartition(topic, 0, 0)])
        letters = []
        try:
            while True:
                msg = consumer.poll(10)
                assert msg is not None, f"{topic} did not answer"
                if msg.error() is not None:  # the end of the partition
                    break
                headers = {k: (v or b"").decode() for k, v in msg.headers() or []}
                letters.append(DeadLetter(headers[REASON_HEADER], msg.value() or b"",
                                          int(headers[SOURCE_HEADER])))
        finally:
            consumer.close()
        return letters
