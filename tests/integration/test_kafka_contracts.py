"""The port contracts (``tests/contracts``), unchanged, on the real Kafka broker."""

from __future__ import annotations

import pytest

from tests.contracts.event_log_contract import EventLogContract
from tests.contracts.lock_contract import LockContract
from tests.contracts.request_channel_contract import RequestChannelContract

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
    pass
