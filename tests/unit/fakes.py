"""Test doubles shared by the unit tests: an in-memory log writer and event builders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from flamingock_es.core.codec import AuditCodec, Recorded
from flamingock_es.core.events import Actor, AuditEvent, Payload
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State, fold

ACTOR = Actor(principal="ana", host="laptop", pid=4242, tool_version="0.1.0")
CODEC = AuditCodec()


class MemoryLog:
    """A ``LogWriter`` that keeps records in a list; positions step by 100 like byte offsets."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes]] = []
        self.closed = False

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        start = len(self.records)
        positions = [(start + i) * 100 for i in range(len(records))]
        self.records += zip(positions, records, strict=True)
        return positions

    def close(self) -> None:
        self.closed = True

    def decoded(self) -> list[Recorded]:
        return list(CODEC.decode_all(self.records))

    def fold(self) -> State:
        return fold(CODEC.decode_all(self.records))


class Journal:
    """Writes payloads as a sequence of runs through the real :class:`Recorder`."""

    def __init__(self, namespace: str = "shop") -> None:
        self.log = MemoryLog()
        self.state = State()
        self.namespace = namespace

    def run(self, run_id: str, *payloads: Payload) -> list[AuditEvent]:
        """Record ``payloads`` one per append, as the runner does, under ``run_id``."""
        recorder = Recorder(self.log, self.state, RunIdentity(self.namespace, run_id, ACTOR),
                            CODEC)
        return [event for payload in payloads for event in recorder.record(payload)]


def event(payload: Payload, seq: int = 0, prev_hash: bytes = bytes(32), **fields: object
          ) -> AuditEvent:
    """An unsealed event with fixed, readable envelope values."""
    values: dict[str, object] = {
        "event_id": "5b0a3c64-7f0e-4f43-9a43-1f1b6d8c2a10",
        "seq": seq,
        "time": datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC),
        "namespace": "shop",
        "run_id": "20261127T103015-abcdef01",
        "actor": ACTOR,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    values.update(fields)
    return AuditEvent(**values)  # type: ignore[arg-type]
