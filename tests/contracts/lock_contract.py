"""The contract every ``Lock`` adapter passes. Subclass it and provide a ``bus`` fixture."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flamingock_es.errors import LockTimeoutError
from flamingock_es.namespace import Backend, open_backend

HOLDER = Path(__file__).with_name("hold_lock.py")


class LockContract:
    acquire_timeout = 30.0
    """How long a free lock may take to be granted."""
    crash_timeout = 10.0
    """How long a dead holder's lock may take to come free."""

    @pytest.fixture
    def namespace(self) -> str:
        return f"lock-{uuid.uuid4().hex[:10]}"

    @pytest.fixture
    def backends(self, bus: str, namespace: str) -> Iterator[tuple[Backend, Backend]]:
        first, second = open_backend(bus, namespace), open_backend(bus, namespace)
        yield first, second
        first.close()
        second.close()

    def test_one_holder_at_a_time(self, backends: tuple[Backend, Backend]) -> None:
        first, second = backends
        lease = first.lock.acquire("first", self.acquire_timeout)
        waited: list[float] = []
        with pytest.raises(LockTimeoutError):
            second.lock.acquire("second", 2.5, on_wait=waited.append)
        assert waited, "a waiting runner is told it is waiting"
        assert not lease.lost
        lease.check()
        lease.release()

    def test_release_hands_the_lock_over(self, backends: tuple[Backend, Backend]) -> None:
        first, second = backends
        lease = first.lock.acquire("first", self.acquire_timeout)
        generation = lease.generation  # asked while held: a holder that records has one
        lease.release()
        assert lease.lost
        next_lease = second.lock.acquire("second", self.acquire_timeout)
        assert next_lease.generation > generation
        assert next_lease.holder == "second"
        next_lease.release()

    def test_a_dead_holder_frees_the_lock(
        self, bus: str, namespace: str, backends: tuple[Backend, Backend]
    ) -> None:
        with subprocess.Popen(
            [sys.executable, str(HOLDER), bus, namespace], stdout=subprocess.PIPE, text=True
        ) as holder:
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().strip() == "held"
                with pytest.raises(LockTimeoutError):
                    backends[0].lock.acquire("survivor", 1.0)
            finally:
                holder.kill()
        lease = backends[1].lock.acquire("survivor", self.crash_timeout)
        lease.release()
