"""flamingock-es: event-sourced, audit-first change management.

Write ChangeUnits (``@change_unit`` in Python, or YAML/JSON through templates), group them in
a workflow's stages, and :func:`run` them at start-up: under a distributed lock, exactly once,
with compensation on failure, every step an Avro event in an append-only audit log.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import history, mark, open_workflow, plan, read_state, run, status, undo, verify, wait
from .changes import ChangeContext, ChangeUnit, Recovery, change_unit
from .engine import RunResult
from .errors import (
    ChecksumDriftError,
    ConfigError,
    FlamingockError,
    LockLostError,
    LockTimeoutError,
    ManualInterventionRequired,
    UnitFailedError,
)
from .state import State, UnitStatus, fold
from .workflow import Stage, Workflow, load_workflow

__all__ = [
    "ChangeContext",
    "ChangeUnit",
    "ChecksumDriftError",
    "ConfigError",
    "FlamingockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "Recovery",
    "RunResult",
    "Stage",
    "State",
    "UnitFailedError",
    "UnitStatus",
    "Workflow",
    "__version__",
    "change_unit",
    "fold",
    "history",
    "load_workflow",
    "mark",
    "open_workflow",
    "plan",
    "read_state",
    "run",
    "status",
    "undo",
    "verify",
    "wait",
]
