"""Stopping on a signal without losing the audit trail, within a bound the platform keeps.

The first SIGTERM or SIGINT asks the run to stop. It is acknowledged at once (a
:class:`~flamingock_es.core.recorder.Stopping` notice: the progress says what will happen),
the change in progress may finish within the grace period, and the run records what it did
not start, releases the lock and ends. When the grace period runs out, or a second signal
arrives, the change in progress is interrupted: a real signal is delivered to the main
thread, which wakes whatever it blocks in (``sleep``, ``select``, a socket read), and the
handler raises :class:`StepInterrupted` there (a ``BaseException``, like
``KeyboardInterrupt``, so that a unit's ``except Exception`` does not swallow it). The runner
records the unit as interrupted (in doubt, the signal named) and ends the run.

A step that does not return to Python (C code that blocks the signal, or retries the call it
interrupted) cannot be interrupted that way. :data:`STUCK_AFTER` seconds after it was asked
to, a watchdog thread records the interruption itself (the step's ``on_stuck``: the runner
records ``ChangeInterrupted``, ``RunFinished`` and ``LockReleased`` through its thread-safe
recorder) and ends the process with 128 + the signal's number, as the signal's default
action would have: the process is gone :data:`BOUND` seconds after the grace period at the
latest. (C code that holds the interpreter itself, never letting another thread run, leaves
nothing that can act: the platform's own SIGKILL ends that process, unrecorded.)

Signals are seen through :func:`signal.set_wakeup_fd`: the C-level handler writes each one's
number to a socket whatever thread it lands on and whatever the main thread is doing, and a
watcher thread acts on it. The Python-level handler runs only when the main thread runs
Python; it does one thing: raise :class:`StepInterrupted` in a step that may not finish.
Signal handlers belong to the main thread: elsewhere :meth:`Interrupts.installed` does
nothing and only ``stop`` (a ``threading.Event`` the caller may set) stops a run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType

from ..core.recorder import Stopping

__all__ = ["BOUND", "STUCK_AFTER", "Interrupts", "StepInterrupted", "exit_code"]

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
STUCK_AFTER = 3.0
"""Seconds a step has to return once interrupted before the watchdog takes over."""
BOUND = 5.0
"""The process ends at most this long after the grace period ran out (or a second signal):
the watchdog's wait and the time it has to record."""

Stuck = Callable[["StepInterrupted"], None]
"""Records, from the watchdog's thread, that a step was interrupted and never returned."""


class StepInterrupted(BaseException):
    """Raised inside a unit's step when it may not finish: a second signal, or no more grace."""

    def __init__(self, signal_name: str, reason: str) -> None:
        super().__init__(f"{signal_name}: {reason}")
        self.signal_name, self.reason = signal_name, reason


def exit_code(signal_name: str) -> int:
    """The shell's code for a process ended by ``signal_name``: 128 + its number."""
    return 128 + int(signal.Signals[signal_name])


@dataclass
class _Step:
    unit_id: str
    on_stuck: Stuck | None
    done: bool = False
    claimed: bool = False
    """The watchdog took it over: it records the end, and ends the process."""


class Interrupts:
    """What the signals asked of one run (or one ``serve``), and the handlers that ask it."""

    def __init__(self, grace_period: float, stop: threading.Event | None = None) -> None:
        self.grace_period = grace_period
        self.stop = stop or threading.Event()
        """Set by the first signal (or by the caller): finish the current step, then stop."""
        self.first: str | None = None
        """The first signal's name, once one arrived."""
        self.forced: str | None = None
        """Why the current step may not finish, once that is so."""
        self._mutex = threading.Lock()
        self._step: _Step | None = None
        self._listeners: list[Callable[[Stopping], None]] = []
        self._timers: list[threading.Timer] = []
        self._echoes: Counter[int] = Counter()
        """Signals this object sent to the main thread itself, not to be taken for new ones."""
        self._main: int | None = None
        """The main thread's id while the handlers are installed."""

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGTERM and SIGINT while the block runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._main = threading.get_ident()
        watcher = threading.Thread(target=self._watch, args=(reader,), daemon=True,
                                   name="flamingock-signals")
        watcher.start()
        try:
            yield
        finally:
            self._main = None
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            writer.close()  # the watcher reads the end of it, and stops
            watcher.join()
            reader.close()
            with self._mutex:
                for timer in self._timers:
                    timer.cancel()

    @contextmanager
    def heard_by(self, listener: Callable[[Stopping], None]) -> Iterator[None]:
        """Tell ``listener`` of the first signal, as it arrives, while the block runs."""
        self._listeners.append(listener)
        try:
            yield
        finally:
            self._listeners.remove(listener)

    @contextmanager
    def step(self, unit_id: str, on_stuck: Stuck | None = None) -> Iterator[None]:
        """Mark ``unit_id``'s side effect as running: a forced stop interrupts it; one that
        does not return in time is handed to ``on_stuck``, and the process ends."""
        if self.forced is not None:  # forced between two steps: do not start another
            raise StepInterrupted(self.first or "SIGTERM", self.forced)
        current = _Step(unit_id, on_stuck)
        with self._mutex:
            self._step = current
        try:
            yield
        finally:
            with self._mutex:
                current.done, self._step = True, None
            if current.claimed:  # the watchdog records this step's end and ends the process
                threading.Event().wait()

    # What happens when a signal arrives ---------------------------------------------------

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """The Python-level handler (main thread): interrupt a step that may not finish."""
        step = self._step
        if self.forced is not None and step is not None and not step.done:
            raise StepInterrupted(self.first or signal.Signals(signum).name, self.forced)

    def _watch(self, reader: socket.socket) -> None:
        """Every signal's number, as the C-level handler wrote it (any thread, any time)."""
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                with self._mutex:
                    if self._echoes[signum]:
                        self._echoes[signum] -= 1
                        continue
                if signum in {int(s) for s in SIGNALS}:
                    self._arrived(signal.Signals(signum).name)

    def _arrived(self, name: str) -> None:
        with self._mutex:
            if self.first is not None:
                self._force(f"a second signal ({name}) arrived")
                return
            self.first = name
            self.stop.set()
            self._later(self.grace_period, self._grace_over)
            step = self._step
            notice = Stopping(name, self.grace_period,
                              step.unit_id if step is not None and not step.done else None)
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:  # telling must never break stopping
                log.exception("telling of %s failed", name)

    def _grace_over(self) -> None:
        with self._mutex:
            self._force(f"the grace period of {self.grace_period:g}s ran out")

    def _force(self, reason: str) -> None:
        """(Under the mutex.) The step in progress may not finish: wake the main thread."""
        if self.forced is not None:
            return
        self.forced = reason
        step = self._step
        if step is None or step.done or self._main is None:
            return  # between steps: the runner looks before the next one
        sig = signal.Signals[self.first or "SIGTERM"]
        self._echoes[int(sig)] += 1
        signal.pthread_kill(self._main, sig)
        self._later(STUCK_AFTER, self._stuck)

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _stuck(self) -> None:
        """The interrupted step did not return: record its end from here, end the process."""
        with self._mutex:
            step = self._step
            if step is None or step.done or step.on_stuck is None or self._main is None:
                return
            step.claimed = True
        name = self.first or "SIGTERM"
        stop = StepInterrupted(name, f"{self.forced}; the step did not return within "
                                     f"{STUCK_AFTER:g}s of being interrupted, so the process "
                                     "ended")
        self._later(BOUND - STUCK_AFTER, lambda: _end(name))  # recording may not hang it
        try:
            step.on_stuck(stop)
        except BaseException:  # whatever it could record is recorded; end anyway
            log.exception("recording the interruption of %s failed", step.unit_id)
        _end(name)


def _end(signal_name: str) -> None:
    """End the process as the signal would have, after flushing what it wrote."""
    for stream in (sys.stderr, sys.stdout):
        with suppress(Exception):
            stream.flush()
    os._exit(exit_code(signal_name))
