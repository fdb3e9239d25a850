"""The CLI's exit codes, from the type of what went wrong (the library knows no exit codes).

| code | meaning |
|---|---|
| 0 | success, or nothing to do |
| 1 | an unexpected error |
| 2 | invalid configuration, change file or flag; a change request rejected or refused |
| 3 | the lock stayed held past the timeout, or was lost; no answer to a request in time |
| 4 | the audit log is undecodable, inconsistent or not covered by a trusted signature |
| 5 | a write could not be confirmed, or a service is unreachable or refused access |
| 6 | checksum drift |
| 7 | a person decides first: manual intervention, or what a decision was about changed |
| 8 | a unit (or an undo's rollback) failed, after compensation |
| 9 | the run was stopped between units (SIGTERM or SIGINT; nothing in doubt) |
| 128+N | signal N interrupted a change that could not finish in the grace period |
| 130 | interrupted (Ctrl-C) outside a run |
| 141 | the output's reader went away |
"""

from __future__ import annotations

import signal

from ..errors import (
    ChecksumDriftError,
    ConfigError,
    Conflict,
    DecisionRequired,
    FlamingockError,
    HistoryError,
    LockError,
    ManualInterventionRequired,
    Refused,
    RequestConflictError,
    RequestRefusedError,
    RequestTimeoutError,
    RunInterrupted,
    StepNotStarted,
    Unavailable,
    UnitFailedError,
)
from ..run.planner import Plan

__all__ = ["BROKEN_PIPE", "INTERRUPTED", "exit_code", "for_signal", "plan_check"]

BROKEN_PIPE = 141
INTERRUPTED = 130

_CODES: tuple[tuple[type[FlamingockError], int], ...] = (  # most specific first
    (ConfigError, 2),
    (RequestRefusedError, 2),
    (RequestConflictError, 2),
    (RequestTimeoutError, 3),
    (LockError, 3),
    (HistoryError, 4),
    (Unavailable, 5),
    (Refused, 5),
    (ChecksumDriftError, 6),
    (ManualInterventionRequired, 7),
    (DecisionRequired, 7),
    (Conflict, 7),
    (UnitFailedError, 8),
    (StepNotStarted, 8),
    (RunInterrupted, 9),
)


def for_signal(name: str) -> int:
    """The shell's code for a process ended by signal ``name``: 128 + its number."""
    return 128 + int(signal.Signals[name])


def exit_code(error: FlamingockError | type[FlamingockError]) -> int:
    """The exit code of ``error`` (an instance, or a class)."""
    if isinstance(error, RunInterrupted) and error.signal is not None:
        return for_signal(error.signal)
    kind = error if isinstance(error, type) else type(error)
    return next((code for cls, code in _CODES if issubclass(kind, cls)), 1)


def plan_check(plan: Plan) -> int:
    """``plan --check``: what ``run`` would exit with before it started anything, 0 when it
    could go ahead on its own."""
    if plan.needs_a_person:
        return exit_code(ManualInterventionRequired)
    return exit_code(ChecksumDriftError) if plan.drifted else 0
