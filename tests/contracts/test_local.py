"""The port contracts, run on the embedded default (local log, file lock, request file)."""

from __future__ import annotations

import json
from base64 import b64decode
from pathlib import Path

import pytest

from flamingock_es.adapters.local import LocalEventLog
from flamingock_es.namespace import Backend

from .event_log_contract import EventLogContract
from .lock_contract import LockContract
from .request_channel_contract import DeadLetter, RequestChannelContract


@pytest.fixture
def bus(tmp_path: Path) -> str:
    return f"local:{tmp_path}"


class TestLocalEventLog(EventLogContract):
    pass


class TestFileLock(LockContract):
    crash_timeout = 5.0


class TestLocalRequestChannel(RequestChannelContract):
    def dead_letters(self, backend: Backend) -> list[DeadLetter]:
        path = Path(backend.bus.removeprefix("local:")) / backend.namespace / "requests.dead.log"
        entries = [json.loads(record) for _, record in LocalEventLog(path).read()]
        return [DeadLetter(e["reason"], b64decode(e["value"]), e["position"]) for e in entries]
