"""Stopping on a signal without losing the audit trail.

The first SIGTERM or SIGINT asks the run to stop: the change in progress may finish, within a
grace period, and the run records what it did not start, releases the lock and ends. If the
grace period runs out, or a second signal arrives, the change in progress is interrupted: the
handler raises :class:`StepInterrupted` inside it (a ``BaseException``, like
``KeyboardInterrupt``, so that a unit's ``except Exception`` does not swallow it), and the
runner records the unit as interrupted (in doubt, the signal named) before it ends the run.
Outside a change the handler only takes note; the runner looks at the next step boundary.

Signal handlers belong to the main thread: elsewhere :meth:`Interrupts.installed` does nothing
and only ``stop`` (a ``threading.Event`` the caller may set) stops a run.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupts", "StepInterrupted", "exit_code"]

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StepInterrupted(BaseException):
    """Raised inside a unit's step when it may not finish: a second signal, or no more grace."""

    def __init__(self, signal_name: str, reason: str) -> None:
        super().__init__(f"{signal_name}: {reason}")
        self.signal_name, self.reason = signal_name, reason


def exit_code(signal_name: str) -> int:
    """The shell's code for a process ended by ``signal_name``: 128 + its number."""
    return 128 + int(signal.Signals[signal_name])


class Interrupts:
    """What the signals asked of one run (or one ``serve``), and the handler that asks it."""

    def __init__(self, grace_period: float, stop: threading.Event | None = None) -> None:
        self.grace_period = grace_period
        self.stop = stop or threading.Event()
        """Set by the first signal (or by the caller): finish the current step, then stop."""
        self.first: str | None = None
        """The first signal's name, once one arrived."""
        self.forced: str | None = None
        """Why the current step may not finish, once that is so."""
        self._in_step = False
        self._timer: threading.Timer | None = None

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGTERM and SIGINT while the block runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        try:
            yield
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Mark a unit's side effect as running: a forced stop interrupts it."""
        if self.forced is not None:  # forced between two steps: do not start another
            raise StepInterrupted(self.first or "SIGTERM", self.forced)
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.first is None:
            self.first = name
            self.stop.set()
            self._timer = threading.Timer(self.grace_period, self._grace_over)
            self._timer.daemon = True
            self._timer.start()
            return
        if self.forced is None:
            self.forced = f"a second signal ({name}) arrived"
        if self._in_step:
            raise StepInterrupted(self.first, self.forced)

    def _grace_over(self) -> None:
        self.forced = f"the grace period of {self.grace_period:g}s ran out"
        # Runs the handler in the main thread, as a second signal would.
        _thread.interrupt_main(signal.Signals[self.first or "SIGTERM"])
