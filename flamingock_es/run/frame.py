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
class _Batch:
    """One caller's events, waiting to be appended with whatever else is waiting."""

    payloads: tuple[Payload, ...]
    done: bool = False
    error: BaseException | None = None


@dataclass
class Frame:
    """A run in progress under the lock: where it records, and what it has done so far.

    Units side by side append through one log, one batch at a time. Appends that arrive
    while another is being made wait and go together in the next one (a group commit: one
    fsync, one Kafka transaction, for all of them), and each caller returns once its own
    events are durable, so a unit's ``ChangeStarted`` is still durable before its step.
    """

    recorder: Recorder
    lease: Lease
    result: RunResult
    pending: list[Payload] = field(default_factory=list)
    """Outcomes waiting to share the next append: one unit after another, a unit's outcome
    and the next unit's start (or the run's end) are made durable together."""
    closed: bool = False
    left: Callable[[], list[str]] = list
    """The units of the plan not started yet, asked when the run ends from another thread."""
    _turn: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _queue: list[_Batch] = field(default_factory=list, repr=False)
    _appending: bool = field(default=False, repr=False)

    def record(self, *payloads: Payload) -> None:
        """Append what waits, then ``payloads``; durable on return."""
        batch = _Batch(payloads)
        with self._turn:
            if self.closed:
                raise FrameClosed
            self._queue.append(batch)
            while not batch.done:
                if self._appending:
                    self._turn.wait()
                else:
                    self._append_queued()
        if batch.error is not None:
            raise batch.error

    def close(self, *payloads: Payload) -> None:
        """Record ``payloads`` as the run's last events: nothing is recorded after them."""
        batch = _Batch(payloads)
        with self._turn:
            while self._appending:
                self._turn.wait()
            self.closed = True
            for late in self._queue:  # callers that came too late: they record nothing
                late.done, late.error = True, FrameClosed()
            self._queue = [batch]
            self._append_queued()
        if batch.error is not None:
            raise batch.error

    def _append_queued(self) -> None:
        """Append every queued batch as one, with the lock released meanwhile (others may
        queue); called holding it, returns holding it."""
        group, self._queue = self._queue, []
        waiting, self.pending = self.pending, []
        self._appending = True
        self._turn.release()
        error: BaseException | None = None
        try:
            self._append(waiting, [p for batch in group for p in batch.payloads])
        except BaseException as exc:  # each caller raises it: its events may not be durable
            error = exc
        finally:
            self._turn.acquire()
            self._appending = False
        for batch in group:
            batch.done, batch.error = True, error
        self._turn.notify_all()

    def _append(self, waiting: list[Payload], payloads: list[Payload]) -> None:
        try:
            self.recorder.record(*waiting, *payloads)
        except AppendError:  # nothing of the batch landed (a log cuts a failed append back)
            if waiting and payloads:
                # What waited is a unit's outcome, already reached, and small: a batch that
                # did not fit (a full disk) must not take it down with the step after it.
                with suppress(Unavailable):
                    self.recorder.record(*waiting)
            raise
