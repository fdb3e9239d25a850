"""What a run tells the person at a terminal, or in a CI log: lines on stderr, and on a
terminal a status line redrawn in place."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from typing import TextIO

from ..core.events import AuditEvent, ChangeFailed, ChangeSucceeded
from ..core.recorder import Notice, Planned
from ..run.progress import LineProgress
from .console import console_for

__all__ = ["ConsoleProgress", "TerminalProgress", "console_progress"]


def console_progress(stream: TextIO | None = None) -> ConsoleProgress:
    """A :class:`TerminalProgress` when ``stream`` (default stderr) is a terminal, else the
    plain lines of a :class:`ConsoleProgress` (logs and CI read those)."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty() and os.environ.get("TERM") != "dumb"
    except (OSError, ValueError):
        tty = False
    return TerminalProgress(stream) if tty else ConsoleProgress(stream)


class ConsoleProgress(LineProgress):
    """One line per step on stderr, so stdout stays clean for ``--json``. Written through
    the stream's :class:`~flamingock_es.cli.console.Console`: log records never land inside a
    line, and a reader that went away silences it instead of breaking the run."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.console = console_for(self.stream)

    def _say(self, text: str, end: str = "\n") -> None:
        self.console.say(text, end)

    def _aside(self, text: str) -> None:
        self.console.log(text)  # on a line of its own; an open step line is stated again


class TerminalProgress(ConsoleProgress):
    """The same lines on a terminal, plus a status line redrawn in place while a step
    works: a bar, the unit, the step's elapsed time, the run's, and an ETA from the average
    duration of the units done so far."""

    TICK = 0.25
    """Seconds between two redraws of the status line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._durations: list[float] = []
        self._run_started = time.monotonic()
        self._step: tuple[str, float] | None = None  # what is running, since when
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()  # the ticker must not redraw a step that just ended

    def notice(self, notice: Notice) -> None:
        if isinstance(notice, Planned):
            self._run_started, self._durations = time.monotonic(), []
        super().notice(notice)

    def recorded(self, event: AuditEvent) -> None:
        if isinstance(event.payload, ChangeSucceeded | ChangeFailed):
            self._durations.append(event.payload.duration_ms / 1000)
        super().recorded(event)

    def _say(self, text: str, end: str = "\n") -> None:
        step = self._step
        if end == "" and step is None:  # a step starts: its line is shown when it ends
            self._step = (text, time.monotonic())
            self._tick()
            if self._ticker is None or not self._ticker.is_alive():
                self._ticker = threading.Thread(target=self._tick_until_done, daemon=True,
                                                name="flamingock-progress")
                self._ticker.start()
            return
        with self._lock:
            self._step = None
            self.console.status("")
        if step is not None and text.startswith(" "):
            text = step[0] + text
        elif step is not None:
            self.console.say(step[0])
        self.console.say(text, end)

    def _tick_until_done(self) -> None:
        while self._step is not None and not self.console.closed:
            time.sleep(self.TICK)
            self._tick()

    def _tick(self) -> None:
        step = self._step
        if step is None:
            return
        text, since = step
        now = time.monotonic()
        width = self._width() - 1
        counter = ""
        if self._total and text.startswith(f"[{self._index}/"):
            done = int(20 * (self._index - 1) / self._total)
            counter = f"[{'=' * done}{' ' * (20 - done)}] {self._index}/{self._total} "
            text = text.split("] ", 1)[-1]
        line = (f"{counter}{text.removesuffix(' ...')}  {now - since:.1f}s  "
                f"(run {now - self._run_started:.0f}s, ETA {self._eta(now - since)})")
        with self._lock:
            if self._step is step:
                self.console.status(line[:width])

    def _width(self) -> int:
        """The width of the terminal the status line is on (stderr's, not stdout's): a
        line that wrapped could not be redrawn in place."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return columns or shutil.get_terminal_size((100, 24)).columns  # 0: size never set

    def _eta(self, elapsed: float) -> str:
        if not self._durations or not self._total:
            return "--"
        average = sum(self._durations) / len(self._durations)
        left = average * (self._total - self._index + 1) - elapsed
        return f"{max(left, 0):.0f}s"
