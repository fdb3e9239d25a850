"""The ports: what the engine needs from a log and a lock, as ``typing.Protocol`` s.

Adapters live under ``adapters/<tech>/`` (``LocalEventLog``, ``KafkaEventLog``, ...) and pass
the same contract suites in ``tests/contracts/``. They translate driver errors into
:mod:`flamingock_es.errors`; nothing above this layer sees a driver exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["EventLog", "Lease", "Lock", "LogWriter", "StoredRecord", "WaitCallback"]

StoredRecord = tuple[int, bytes]
"""``(position, bytes)``: a record as the log stores it; positions only ever grow."""

WaitCallback = Callable[[float], None]
"""Called now and then while a lock is being waited for, with the seconds waited so far."""


@runtime_checkable
class Lease(Protocol):
    """Proof of holding a namespace's lock. Writers are bound to one, and refuse once it is lost."""

    holder: str
    """Who holds it, e.g. ``host:pid:run-id``."""
    lock: str
    """Which lock, e.g. ``file:/path/lock`` or ``kafka-group:flamingock.lock.ns``."""
    generation: int
    """Fencing generation: grows with every acquisition (Kafka: the member epoch)."""

    @property
    def lost(self) -> bool:
        """True once the lock was revoked, evicted or fenced."""
        ...

    def check(self) -> None:
        """Raise :class:`~flamingock_es.errors.LockLostError` if the lock is gone."""
        ...

    def release(self) -> None:
        """Give the lock up. Idempotent."""
        ...


class Lock(Protocol):
    """A namespace's distributed lock: one holder at a time, across processes and hosts."""

    def acquire(
        self, holder: str, timeout: float, on_wait: WaitCallback | None = None
    ) -> Lease:
        """Block until held or ``timeout`` seconds pass (then raise ``LockTimeoutError``)."""
        ...

    def close(self) -> None:
        ...


class LogWriter(Protocol):
    """Appends to the log on behalf of one lease."""

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        """Make ``records`` durable, in order, and return their positions.

        Returns only once the store confirmed them (fsync; broker acks=all and transaction
        commit). Raises ``AppendError`` if that cannot be confirmed and ``LockLostError`` if
        the lease was lost: a runner that lost its lock can never append.
        """
        ...

    def close(self) -> None:
        ...


class EventLog(Protocol):
    """A namespace's append-only audit log of encoded events."""

    name: str
    """Where it lives, for messages: ``file:/path/audit.log`` or ``kafka:topic@host``."""

    def read(self, start: int = 0) -> Iterator[StoredRecord]:
        """Every record from position ``start`` up to the log's end as of the call."""
        ...

    def follow(self, start: int, stop: threading.Event) -> Iterator[StoredRecord | None]:
        """Records from ``start`` on, forever; ``None`` when idle, so a caller can flush.

        Ends when ``stop`` is set.
        """
        ...

    def writer(self, lease: Lease) -> LogWriter:
        """A writer fenced by ``lease``."""
        ...

    def close(self) -> None:
        ...
