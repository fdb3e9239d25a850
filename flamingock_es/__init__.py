"""flamingock-es: event-sourced, audit-first change management.

Write ChangeUnits (``@change_unit`` in Python, or YAML/JSON through templates), group them in
a workflow's stages, and :func:`run` them at start-up: under a distributed lock, exactly once,
with compensation on failure, every step an Avro event in an append-only audit log.

Every function takes what it is about first, the same way: a workflow built in code,
resolved :class:`Settings`, or the path of a ``flamingock.yaml`` (default: the one here).
The public API, pinned by ``tests/unit/test_public_api.py``:

* running: :func:`run`, :func:`plan`, :func:`status`, :func:`wait`, :func:`mark`, :func:`undo`;
* requests: :func:`request_changes` (a service asks), :func:`serve` (a runner answers);
* tenants: :func:`rollout` (every tenant, in waves, under a budget), :func:`rollouts`;
* reading the log: :func:`history`, :func:`verify`, :func:`replay`, :func:`read_state`;
* operators' decisions: :func:`quarantine`, :func:`vouch`;
* the read side: :func:`project`, :func:`open_projection`;
* defining changes: :func:`change_unit`, :class:`ChangeUnit`, :class:`ChangeContext`,
  :class:`Recovery`, :class:`Workflow`, :class:`Stage`, :func:`load_workflow`,
  :func:`open_workflow`, :class:`Settings`, :func:`resolve_settings`;
* what comes back: :class:`RunResult`, :class:`State`, :class:`UnitStatus`, :func:`fold`,
  :class:`Progress` (subclass it to follow a run);
* the errors a caller may want to catch, all :class:`FlamingockError`, grouped by what to do
  (see :mod:`flamingock_es.errors`); :func:`retryable` says whether trying again may do.
"""

from __future__ import annotations

from ._version import __version__
from .api import (
    history,
    mark,
    open_projection,
    open_workflow,
    plan,
    project,
    quarantine,
    read_state,
    replay,
    request_changes,
    rollout,
    rollouts,
    run,
    serve,
    status,
    undo,
    verify,
    vouch,
    wait,
)
from .core.changes import ChangeContext, ChangeUnit, Recovery, change_unit
from .core.state import State, UnitStatus, fold
from .definition.settings import Settings, resolve_settings
from .definition.workflow import Stage, Workflow, load_workflow
from .errors import (
    ChecksumDriftError,
    ConfigError,
    DecisionRequired,
    FlamingockError,
    HistoryError,
    LockError,
    LockLostError,
    LockTimeoutError,
    ManualInterventionRequired,
    RunFailed,
    RunInterrupted,
    Transient,
    UnitFailedError,
    retryable,
)
from .run.progress import Progress
from .run.results import RunResult

__all__ = [
    "ChangeContext",
    "ChangeUnit",
    "ChecksumDriftError",
    "ConfigError",
    "DecisionRequired",
    "FlamingockError",
    "HistoryError",
    "LockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "Progress",
    "Recovery",
    "RunFailed",
    "RunInterrupted",
    "RunResult",
    "Settings",
    "Stage",
    "State",
    "Transient",
    "UnitFailedError",
    "UnitStatus",
    "Workflow",
    "__version__",
    "change_unit",
    "fold",
    "history",
    "load_workflow",
    "mark",
    "open_projection",
    "open_workflow",
    "plan",
    "project",
    "quarantine",
    "read_state",
    "replay",
    "request_changes",
    "resolve_settings",
    "retryable",
    "rollout",
    "rollouts",
    "run",
    "serve",
    "status",
    "undo",
    "verify",
    "vouch",
    "wait",
]
