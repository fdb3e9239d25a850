"""A run in progress under the lock: where its steps are recorded, and what it did so far."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..core.events import Payload
from ..core.ports import Lease
from ..core.recorder import Recorder
from .results import RunResult

__all__ = ["Frame", "FrameClosed"]


class FrameClosed(BaseException):
    """The run was ended from another thread (no grace left): nothing more is recorded."""


@dataclass
class Frame:
    """A run in progress under the lock: where it records, and what it has done so far."""

    recorder: Recorder
    lease: Lease
    result: RunResult
    pending: list[Payload] = field(default_factory=list)
    """Outcomes waiting to share the next append: one unit after another, a unit's outcome
    and the next unit's start (or the run's end) are made durable together."""
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, *payloads: Payload) -> None:
        """Append what waits, then ``payloads``, as one batch; durable on return."""
        with self._lock:
            if self.closed:
                raise FrameClosed
            batch, self.pending = [*self.pending, *payloads], []
            self.recorder.record(*batch)

    def close(self, *payloads: Payload) -> None:
        """Record ``payloads`` as the run's last events: nothing is recorded after them."""
        with self._lock:
            self.closed = True
            batch, self.pending = [*self.pending, *payloads], []
            self.recorder.record(*batch)
