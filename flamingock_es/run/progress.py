"""Progress: what a run tells the person (or the log) while it works.

A :class:`Progress` is an observer of the run's recorder: every line it writes is drawn from
an event as it is recorded, or from one of the few notices about what the log does not hold
(a wait for the lock, nothing to do, a missing rollback). Subclass it to follow a run.
"""

from __future__ import annotations

import logging

from ..core.events import (
    AuditEvent,
    ChangeFailed,
    ChangeInterrupted,
    ChangeSkipped,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ManualMark,
    Payload,
    RunFinished,
)
from ..core.recorder import (
    LockGone,
    NoRollback,
    Notice,
    OutOfOrder,
    Planned,
    Stopping,
    UpToDate,
    Waiting,
)
from .results import RunResult

__all__ = ["DRIFT_ACCEPTED", "LineProgress", "LogProgress", "Outcome", "Progress"]

DRIFT_ACCEPTED = "checksum drift accepted"
"""How the reason of a mark that accepts a unit's drift begins (the runner writes it)."""


class Progress:
    """Hears of a run's steps and notices. The base class ignores them all (quiet mode,
    ``--json``)."""

    def recording(self, payload: Payload) -> None:
        """A step is about to be recorded."""

    def recorded(self, event: AuditEvent) -> None:
        """A step is durable."""

    def notice(self, notice: Notice) -> None:
        """Something the log does not hold."""

    def close(self) -> None:
        """The run is over, however it ended."""


class Outcome(Progress):
    """Hears what a run did from the events it records (what ``--json`` prints when the run
    ends in an error, which carries no result)."""

    def __init__(self) -> None:
        self.result = RunResult(None, None)

    def notice(self, notice: Notice) -> None:
        if isinstance(notice, Planned):
            self.result.run_id, self.result.skipped = notice.run_id, notice.skipped

    def recorded(self, event: AuditEvent) -> None:
        payload, result = event.payload, self.result
        if isinstance(payload, CompensationSucceeded):
            result.compensated.append(payload.unit_id)
        elif isinstance(payload, RunFinished):
            result.run_id, result.outcome, result.error = event.run_id, payload.outcome, \
                payload.error
            result.applied, result.not_started = list(payload.applied), \
                list(payload.not_started)


class LineProgress(Progress):
    """One line of text per step; where the lines go is the subclass's ``_say``. A step that
    is running leaves its line open (``end=""``); its outcome completes it. Units that run
    side by side cannot share one open line: a step that starts while another's line is open
    ends that line with ``running``, and an outcome that is not the open line's says whose
    it is on a line of its own."""

    def __init__(self) -> None:
        self._index = self._total = self._skipped = self._compensated = 0
        self._open: str | None = None
        """The step whose line is open (a unit id, or ``rollback:`` and one)."""
        self._labels: dict[str, str] = {}
        """How each step's line begins, to name it on a line of its own."""

    def _begin(self, step: str, label: str, rest: str) -> None:
        if self._open is not None:
            self._say(" running")  # another step starts beside it: its line ends here
        self._open, self._labels[step] = step, label
        self._say(f"{label}{rest} ...", end="")

    def _end(self, step: str, text: str) -> None:
        if self._open == step:
            self._open = None
            self._say(text)
        else:
            self._own_line(f"{self._labels.get(step, step)} ...{text}")

    def _own_line(self, text: str) -> None:
        """``text`` on a line of its own, after the open line (ended ``running``) if any."""
        if self._open is not None:
            self._open = None
            self._say(" running")
        self._say(text)

    def _say(self, text: str, end: str = "\n") -> None:
        raise NotImplementedError

    def _aside(self, text: str) -> None:
        """A line of its own, from any thread, that leaves a step's open line as it is
        (a signal's acknowledgement arrives while a step runs)."""
        self._say(text)

    def notice(self, notice: Notice) -> None:
        if isinstance(notice, Stopping):
            if notice.unit_id is None:
                self._aside(f"{notice.signal}: stopping before the next unit; nothing is in "
                            "doubt")
            else:
                self._aside(f"{notice.signal}: stopping once {notice.unit_id} finishes (within "
                            f"{notice.grace:g}s); a second signal interrupts it, leaving it "
                            "in doubt")
        elif isinstance(notice, Waiting):
            self._say(f"waiting for the lock ({notice.seconds:.0f}s): {notice.holder}")
        elif isinstance(notice, UpToDate):
            how = " (another runner applied them while this one waited)" \
                if notice.after_wait else ""
            self._say(f"up to date: {notice.units} unit(s), nothing to apply{how}")
        elif isinstance(notice, Planned):
            self._index, self._total, self._skipped = 0, notice.to_apply, notice.skipped
            self._say(f"run {notice.run_id}: {notice.to_apply} to apply, "
                      f"{notice.skipped} already applied")
        elif isinstance(notice, NoRollback):
            self._say(f"  {notice.unit_id} has no rollback: left as it is")
        elif isinstance(notice, LockGone):
            self._say(f"LOCK LOST: {notice.why}")
        elif isinstance(notice, OutOfOrder):
            self._say(f"OUT OF ORDER: applying {', '.join(notice.units)} before "
                      f"{', '.join(notice.pending)} (earlier in the workflow, not applied "
                      "yet), as asked")

    def recorded(self, event: AuditEvent) -> None:
        p = event.payload
        if isinstance(p, ChangeStarted):
            self._index += 1
            self._begin(p.unit_id, f"[{self._index}/{self._total}] {p.stage}/{p.unit_id}",
                        f" ({p.reason})")
        elif isinstance(p, ChangeSkipped):
            self._own_line(f"  skipped {p.stage}/{p.unit_id}: {p.reason}")
        elif isinstance(p, ChangeSucceeded):
            self._end(p.unit_id, f" applied ({p.duration_ms:.0f} ms)")
        elif isinstance(p, ChangeFailed):
            self._end(p.unit_id, f" FAILED ({p.duration_ms:.0f} ms): {p.error}")
        elif isinstance(p, ChangeInterrupted):
            self._end(p.unit_id, f" INTERRUPTED ({p.signal}: {p.reason})")
        elif isinstance(p, CompensationStarted):
            self._begin(f"rollback:{p.unit_id}", f"  rolling back {p.unit_id}", "")
        elif isinstance(p, CompensationSucceeded):
            self._compensated += 1
            self._end(f"rollback:{p.unit_id}", f" rolled back ({p.duration_ms:.0f} ms)")
        elif isinstance(p, CompensationFailed):
            cause = f" (it was compensating: {p.original_error})" if p.original_error else ""
            self._end(f"rollback:{p.unit_id}", f" ROLLBACK FAILED: {p.error}{cause}")
        elif isinstance(p, ManualMark) and p.reason.startswith(DRIFT_ACCEPTED):
            self._say(f"  accepted checksum drift of {p.unit_id} (recorded as a manual mark)")
        elif isinstance(p, RunFinished):
            rest = f"; not started: {', '.join(p.not_started)}" if p.not_started else ""
            self._say(f"run {event.run_id}: {p.outcome.value}; applied {len(p.applied)}, "
                      f"compensated {self._compensated}, skipped {self._skipped}{rest}")
            self._compensated = self._skipped = 0


class LogProgress(LineProgress):
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

    def _aside(self, text: str) -> None:
        self.logger.warning("%s", text)
