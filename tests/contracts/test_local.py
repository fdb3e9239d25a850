"""The port contracts, run on the embedded default (local log, file lock, request file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .event_log_contract import EventLogContract
from .lock_contract import LockContract
from .request_channel_contract import RequestChannelContract


@pytest.fixture
def bus(tmp_path: Path) -> str:
    return f"local:{tmp_path}"


class TestLocalEventLog(EventLogContract):
    pass


class TestFileLock(LockContract):
    crash_timeout = 5.0


class TestLocalRequestChannel(RequestChannelContract):
    pass
