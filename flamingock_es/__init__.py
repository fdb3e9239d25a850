"""flamingock-es: event-sourced, audit-first change management.

Write ChangeUnits (``@change_unit`` in Python, or YAML/JSON through templates), group them in
a workflow's stages, and :func:`run` them at start-up: under a distributed lock, exactly once,
with compensation on failure, every step an Avro event in an append-only audit log.

The public API, pinned by ``tests/unit/test_public_api.py``:

* running: :func:`run`, :func:`plan`, :func:`status`, :func:`wait`, :func:`mark`, :func:`undo`;
* reading the log: :func:`history`, :func:`verify`, :func:`replay`, :func:`read_state`;
* defining changes: :func:`change_unit`, :class:`ChangeUnit`, :class:`ChangeContext`,
  :class:`Recovery`, :class:`Workflow`, :class:`Stage`, :func:`load_workflow`,
  :class:`Settings`, :func:`resolve_settings`;
* what comes back: :class:`RunResult`, :class:`State`, :class:`UnitStatus`, :func:`fold`,
  :class:`Progress` (subclass it to follow a run);
* the errors a caller may want to catch, all :class:`FlamingockError`.
"""

from __future__ import annotations

from ._version import __version__
from .api import (
    history,
    mark,
    open_workflow,
    plan,
    read_state,
    replay,
    run,
    status,
    undo,
    verify,
    wait,
)
from .core.changes import ChangeContext, ChangeUnit, Recovery, change_unit
from .core.state import State, UnitStatus, fold
from .definition.settings import Settings, resolve_settings
from .definition.workflow import Stage, Workflow, load_workflow
from .errors import (
    ChecksumDriftError,
    ConfigError,
    FlamingockError,
    LockLostError,
    LockTimeoutError,
    ManualInterventionRequired,
    RunInterrupted,
    UnitFailedError,
)
from .run.progress import Progress
from .run.results import RunResult

__all__ = [
    "ChangeContext",
    "ChangeUnit",
    "ChecksumDriftError",
    "ConfigError",
    "FlamingockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "Progress",
    "Recovery",
    "RunInterrupted",
    "RunResult",
    "Settings",
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
    "replay",
    "resolve_settings",
    "run",
    "status",
    "undo",
    "verify",
    "wait",
]
