"""The port contracts (``tests/contracts``), unchanged, on the real Kafka broker."""

from __future__ import annotations

import pytest

from tests.contracts.event_log_contract import EventLogContract
from tests.contracts.lock_contract import LockContract
from tests.contracts.request_channel_contract import RequestChannelContract

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT = 3.0
"""``group.consumer.session.timeout.ms`` of the test broker (scripts/services)."""


@pytest.fixture
def bus(kafka_bootstrap: str) -> str:
    return f"kafka://{kafka_bootstrap}"


class TestKafkaEventLog(EventLogContract):
    pass


class TestKafkaGroupLock(LockContract):
    crash_timeout = SESSION_TIMEOUT + 10.0


class TestKafkaRequestChannel(RequestChannelContract):
    pass
