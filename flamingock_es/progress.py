"""Progress: what a run tells the person (or the log) while it works."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .console import console_for

if TYPE_CHECKING:
    from .events import ErrorInfo
    from .planner import Plan, PlannedUnit
    from .results import RunResult

__all__ = ["ConsoleProgress", "LogProgress", "Progress", "TerminalProgress", "console_progress"]


class Progress:
    """Receives a run's progress. The base class ignores it all (quiet mode, ``--json``)."""

    def waiting(self, seconds: float, holder: str) -> None: ...
    def up_to_date(self, plan: Plan, after_wait: bool = False) -> None: ...
    def run_started(self, run_id: str, plan: Plan) -> None: ...
    def drift_accepted(self, unit_id: str) -> None: ...
    def unit_started(self, index: int, total: int, planned: PlannedUnit) -> None: ...
    def unit_applied(self, unit_id: str, ms: float) -> None: ...
    def unit_failed(self, unit_id: str, error: ErrorInfo, ms: float) -> None: ...
    def compensation_started(self, unit_id: str, reason: str) -> None: ...
    def compensation_succeeded(self, unit_id: str, ms: float) -> None: ...
    def compensation_failed(self, unit_id: str, error: ErrorInfo,
                            original: ErrorInfo | None) -> None: ...
    def no_rollback(self, unit_id: str) -> None: ...
    def lock_lost(self, why: str) -> None: ...
    def run_finished(self, result: RunResult) -> None: ...


def console_progress(stream: TextIO | None = None) -> ConsoleProgress:
    """A :class:`TerminalProgress` when ``stream`` (default stderr) is a terminal, else the
    plain lines of a :class:`ConsoleProgress` (logs and CI read those)."""
    stream = stream or sys.stderr
    try:
        tty = stream.isatty() and os.environ.get("TERM") != "dumb"
    except (OSError, ValueError):
        tty = False
    return TerminalProgress(stream) if tty else ConsoleProgress(stream)


class ConsoleProgress(Progress):
    """One line per step on stderr, so stdout stays clean for ``--json``. Written through
    the stream's :class:`~flamingock_es.console.Console`: log records never land inside a
    line, and a reader that went away silences it instead of breaking the run."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.console = console_for(self.stream)

    def _say(self, text: str, end: str = "\n") -> None:
        self.console.say(text, end)

    def waiting(self, seconds: float, holder: str) -> None:
        self._say(f"waiting for the lock ({seconds:.0f}s): {holder}")

    def up_to_date(self, plan: Plan, after_wait: bool = False) -> None:
        how = " (another runner applied them while this one waited)" if after_wait else ""
        self._say(f"up to date: {len(plan.units)} unit(s), nothing to apply{how}")

    def run_started(self, run_id: str, plan: Plan) -> None:
        self._say(f"run {run_id}: {len(plan.to_run)} to apply, "
                  f"{len(plan.units) - len(plan.to_run)} already applied")

    def drift_accepted(self, unit_id: str) -> None:
        self._say(f"  accepted checksum drift of {unit_id} (recorded as a manual mark)")

    def unit_started(self, index: int, total: int, planned: PlannedUnit) -> None:
        self._say(f"[{index}/{total}] {planned.stage}/{planned.unit.id} ({planned.reason}) ...",
                  end="")

    def unit_applied(self, unit_id: str, ms: float) -> None:
        self._say(f" applied ({ms:.0f} ms)")

    def unit_failed(self, unit_id: str, error: ErrorInfo, ms: float) -> None:
        self._say(f" FAILED ({ms:.0f} ms): {error}")

    def compensation_started(self, unit_id: str, reason: str) -> None:
        self._say(f"  rolling back {unit_id} ...", end="")

    def compensation_succeeded(self, unit_id: str, ms: float) -> None:
        self._say(f" rolled back ({ms:.0f} ms)")

    def compensation_failed(self, unit_id: str, error: ErrorInfo,
                            original: ErrorInfo | None) -> None:
        cause = f" (it was compensating: {original})" if original else ""
        self._say(f" ROLLBACK FAILED: {error}{cause}")

    def no_rollback(self, unit_id: str) -> None:
        self._say(f"  {unit_id} has no rollback: left as it is")

    def lock_lost(self, why: str) -> None:
        self._say(f"LOCK LOST: {why}")

    def run_finished(self, result: RunResult) -> None:
        outcome = result.outcome.value if result.outcome else "NOTHING_TO_DO"
        self._say(f"run {result.run_id}: {outcome}; applied {len(result.applied)}, "
                  f"compensated {len(result.compensated)}, skipped {result.skipped}")


class TerminalProgress(ConsoleProgress):
    """The same lines on a terminal, plus a status line redrawn in place while a step
    works: a bar, the unit, the step's elapsed time, the run's, and an ETA from the average
    duration of the units done so far."""

    TICK = 0.25
    """Seconds between two redraws of the status line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._index, self._total = 0, 0
        self._durations: list[float] = []
        self._run_started = time.monotonic()
        self._step: tuple[str, float] | None = None  # what is running, since when
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()  # the ticker must not redraw a step that just ended

    def run_started(self, run_id: str, plan: Plan) -> None:
        self._run_started, self._durations = time.monotonic(), []
        super().run_started(run_id, plan)

    def unit_started(self, index: int, total: int, planned: PlannedUnit) -> None:
        self._index, self._total = index, total
        super().unit_started(index, total, planned)

    def unit_applied(self, unit_id: str, ms: float) -> None:
        self._durations.append(ms / 1000)
        super().unit_applied(unit_id, ms)

    def unit_failed(self, unit_id: str, error: ErrorInfo, ms: float) -> None:
        self._durations.append(ms / 1000)
        super().unit_failed(unit_id, error, ms)

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


class LogProgress(ConsoleProgress):
    """The library default: the same lines, through :mod:`logging`."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        super().__init__()
        self.logger = logger or logging.getLogger("flamingock_es")
        self._line = ""

    def _say(self, text: str, end: str = "\n") -> None:
        self._line += text
        if end == "\n":
            self.logger.info("%s", self._line.strip())
            self._line = ""
