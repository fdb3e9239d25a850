"""Progress: what a run tells the person (or the log) while it works."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.events import ErrorInfo
    from .planner import Plan, PlannedUnit
    from .results import RunResult

__all__ = ["LineProgress", "LogProgress", "Progress"]


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


class LineProgress(Progress):
    """One line of text per step; where the lines go is the subclass's ``_say``."""

    def _say(self, text: str, end: str = "\n") -> None:
        raise NotImplementedError

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


class LogProgress(LineProgress):
    """The library default: the same lines, through :mod:`logging`."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("flamingock_es")
        self._line = ""

    def _say(self, text: str, end: str = "\n") -> None:
        self._line += text
        if end == "\n":
            self.logger.info("%s", self._line.strip())
            self._line = ""
