"""The contract every ``EventLog`` adapter passes. Subclass it and provide a ``bus`` fixture.

Run on the embedded log in ``test_local.py`` and on real Kafka in
``tests/integration/test_kafka_contracts.py``: the same assertions, unchanged.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import LockAcquired, RunStarted
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import State, fold
from flamingock_es.errors import LockLostError
from flamingock_es.namespace import Backend, open_backend


class EventLogContract:
    lock_timeout = 30.0

    @pytest.fixture
    def backend(self, bus: str) -> Iterator[Backend]:
        backend = open_backend(bus, f"contract-{uuid.uuid4().hex[:10]}")
        yield backend
        backend.close()

    def test_an_empty_log_reads_nothing(self, backend: Backend) -> None:
        assert list(backend.log.read()) == []

    def test_appends_are_read_back_in_order_at_their_positions(self, backend: Backend) -> None:
        lease = backend.lock.acquire("contract", self.lock_timeout)
        writer = backend.log.writer(lease)
        first = writer.append([b"one", b"two"])
        second = writer.append([b"three"])
        writer.close()
        lease.release()
        positions = first + second
        assert positions == sorted(positions)
        assert len(set(positions)) == 3
        assert list(backend.log.read()) == list(zip(positions, [b"one", b"two", b"three"],
                                                    strict=True))

    def test_read_from_a_position_returns_the_rest(self, backend: Backend) -> None:
        lease = backend.lock.acquire("contract", self.lock_timeout)
        writer = backend.log.writer(lease)
        positions = writer.append([b"a", b"b", b"c"])
        writer.close()
        lease.release()
        assert [data for _, data in backend.log.read(positions[1])] == [b"b", b"c"]

    def test_a_read_begun_inside_a_read_reads_the_whole_log_and_the_outer_goes_on(
            self, backend: Backend) -> None:
        """A fold that starts over from inside a read (a quarantine decision found midway)."""
        lease = backend.lock.acquire("contract", self.lock_timeout)
        writer = backend.log.writer(lease)
        writer.append([b"a", b"b", b"c"])
        writer.close()
        lease.release()
        outer, inner = [], []
        for _, data in backend.log.read():
            outer.append(data)
            if data == b"b":
                inner = [d for _, d in backend.log.read()]
        assert (outer, inner) == ([b"a", b"b", b"c"], [b"a", b"b", b"c"])

    def test_recorded_events_fold_into_an_intact_chain(self, backend: Backend) -> None:
        lease = backend.lock.acquire("contract", self.lock_timeout)
        state = State()
        identity = RunIdentity(backend.namespace, "run-1", local_actor())
        recorder = Recorder(backend.log.writer(lease), state, identity)
        recorder.record(RunStarted(workflow="w", trigger="test", planned=("u1",)))
        recorder.record(LockAcquired(holder="contract", lock="l", generation=lease.generation))
        recorder.writer.close()
        lease.release()

        replayed = fold(AuditCodec().decode_all(backend.log.read()))
        assert replayed.breaks == []
        assert replayed.events == 2
        assert replayed.head_hash == state.head_hash
        assert replayed.lock is not None
        assert replayed.lock.holder == "contract"

    def test_a_writer_refuses_once_its_lease_is_gone(self, backend: Backend) -> None:
        lease = backend.lock.acquire("contract", self.lock_timeout)
        writer = backend.log.writer(lease)
        writer.append([b"before"])
        lease.release()
        with pytest.raises(LockLostError):
            writer.append([b"after"])
        writer.close()
        assert [data for _, data in backend.log.read()] == [b"before"]

    def test_follow_sees_records_appended_later(self, backend: Backend) -> None:
        stop = threading.Event()
        seen: list[bytes] = []

        def consume() -> None:
            for item in backend.log.follow(0, stop):
                if item is not None:
                    seen.append(item[1])
                    if len(seen) == 2:
                        stop.set()

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        lease = backend.lock.acquire("contract", self.lock_timeout)
        writer = backend.log.writer(lease)
        writer.append([b"x"])
        writer.append([b"y"])
        writer.close()
        lease.release()
        thread.join(timeout=30)
        stop.set()
        assert seen == [b"x", b"y"]

    def test_namespaces_do_not_share_records(self, backend: Backend) -> None:
        other = open_backend(backend.bus, f"{backend.namespace}-other", backend.options)
        try:
            lease = backend.lock.acquire("contract", self.lock_timeout)
            writer = backend.log.writer(lease)
            writer.append([b"mine"])
            writer.close()
            lease.release()
            assert list(other.log.read()) == []
        finally:
            other.close()
