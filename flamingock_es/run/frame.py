"""A run in progress under the lock: where its steps are recorded, and what it did so far."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from ..core.events import Payload
from ..core.ports import Lease
from ..core.recorder import Recorder
from ..errors import AppendError, Unavailable
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
    left: Callable[[], list[str]] = list
    """The units of the plan not started yet, asked when the run ends from another thread."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, *payloads: Payload) -> None:
        """Append what waits, then ``payloads``, as one batch; durable on return."""
        with self._lock:
            if self.closed:
                raise FrameClosed
            self._append(payloads)

    def close(self, *payloads: Payload) -> None:
        """Record ``payloads`` as the run's last events: nothing is recorded after them."""
        with self._lock:
            self.closed = True
            self._append(payloads)

    def _append(self, payloads: tuple[Payload, ...]) -> None:
        waiting, self.pending = self.pending, []
        try:
            self.recorder.record(*waiting, *payloads)
        except AppendError:  # nothing of the batch landed (a log cuts a failed append back)
            if waiting and payloads:
                # What waited is a unit's outcome, already reached, and small: a batch that
                # did not fit (a full disk) must not take it down with the step after it.
                with suppress(Unavailable):
                    self.recorder.record(*waiting)
            raise
