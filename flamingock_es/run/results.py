"""What a run did: the value ``run()`` returns and the progress output reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.events import ErrorInfo, RunOutcome

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """What a run did."""

    run_id: str | None
    outcome: RunOutcome | None
    """``None`` when nothing was pending: no lock was taken, nothing was written."""
    applied: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    """Planned units the run never started (it failed or was stopped first)."""
    skipped: int = 0
    error: ErrorInfo | None = None
