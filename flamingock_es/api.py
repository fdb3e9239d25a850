"""The library API: plain functions, one per command. The CLI is a thin layer over these.

Call :func:`run` in an application's start-up path::

    import flamingock_es
    flamingock_es.run("flamingock.yaml")

Each function opens the namespace's backend once (the composition root,
:func:`~flamingock_es.adapters.open_backend`) and leaves the deciding to the planner, the
runner and the compliance replay. Commands that only read never import unit code and never
create a namespace that does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from .adapters import Backend, open_backend
from .codec import AuditCodec
from .compliance import ReplayReport, Window, replay_records, select_events
from .errors import ConfigError, LockTimeoutError, NamespaceNotFoundError
from .events import AuditEvent, MarkedAs
from .planner import NamespaceStatus, Plan, make_plan, namespace_status
from .progress import LogProgress, Progress
from .reading import check_integrity, read_log
from .results import RunResult
from .runner import Runner
from .state import State
from .telemetry.propagation import current_trace
from .telemetry.spans import TracingProgress, deploy_span
from .workflow import Workflow, load_workflow

__all__ = [
    "WorkflowLike",
    "history",
    "mark",
    "open_workflow",
    "plan",
    "read_state",
    "replay",
    "run",
    "status",
    "undo",
    "verify",
    "wait",
]

WorkflowLike = Workflow | str | Path | None
"""A workflow built in code, or the path of its ``flamingock.yaml`` (default: ./)."""


def open_workflow(workflow: WorkflowLike = None, **flags: Any) -> Workflow:
    """A workflow as given (with ``flags`` applied), or loaded from a ``flamingock.yaml``."""
    if isinstance(workflow, Workflow):
        return workflow.with_config(**flags)
    return load_workflow(workflow, **flags)


def _backend(workflow: Workflow) -> Backend:
    return open_backend(workflow.bus, workflow.namespace, workflow.bus_options)


def run(
    workflow: WorkflowLike = None,
    *,
    units: Sequence[str] | None = None,
    accept_drift: bool = False,
    progress: Progress | None = None,
    trigger: str = "library",
    service_version: str | None = None,
    **flags: Any,
) -> RunResult:
    """Apply every pending unit of ``workflow`` under the namespace lock.

    Returns at once, taking no lock, when nothing is pending. Raises
    :class:`~flamingock_es.errors.UnitFailedError` after compensating when a unit fails.
    Traced when the application installed an OpenTelemetry SDK (see docs/tracing.md).
    """
    wf = open_workflow(workflow, **flags)
    traced = TracingProgress.wrap(progress or LogProgress(), wf.namespace)
    try:
        # One root for the lock wait and the run: a deployment is one trace.
        with _backend(wf) as backend, deploy_span(wf.namespace):
            runner = Runner(wf, backend, traced, accept_drift=accept_drift, trigger=trigger,
                            service_version=service_version, trace=current_trace)
            return runner.run(units)
    finally:
        if isinstance(traced, TracingProgress):
            traced.close()


def plan(workflow: WorkflowLike = None, *, accept_drift: bool = False, **flags: Any) -> Plan:
    """What ``run`` would do, and why; reads the log, takes no lock, writes nothing."""
    wf = open_workflow(workflow, **flags)
    return make_plan(wf, _state(wf), accept_drift)


def status(workflow: WorkflowLike = None, **flags: Any) -> NamespaceStatus:
    """Each unit's derived status; what needs manual intervention and the command for it."""
    wf = open_workflow(workflow, **flags)
    state = _state(wf)
    return namespace_status(wf, state, make_plan(wf, state))


def wait(workflow: WorkflowLike = None, *, timeout: float = 300.0, poll: float = 1.0,
         **flags: Any) -> Plan:
    """Block until nothing is pending (a readiness check for instances that do not run changes).

    A unit that looks failed or in doubt may still be in another runner's hands, so it means
    "not ready yet", not an error; after ``timeout`` seconds ``LockTimeoutError`` says what is
    still pending and what, if anything, needs a person.
    """
    wf = open_workflow(workflow, **flags)
    deadline = time.monotonic() + timeout
    state = State()
    with open_backend(wf.bus, wf.namespace, wf.bus_options, create=False) as backend:
        while True:
            if backend.log.exists():
                check_integrity(read_log(backend.log, state), backend.log.name)
            current = make_plan(wf, state)
            if current.up_to_date:
                return current
            if time.monotonic() >= deadline:
                pending = ", ".join(p.unit.id for p in current.to_run) or "none"
                blocked = "".join(f"\n  {b.message}\n    to resolve: {b.resolve}"
                                  for b in current.blockers)
                raise LockTimeoutError(f"namespace {wf.namespace!r} is still not up to date "
                                       f"after {timeout:g}s; pending: {pending}{blocked}")
            time.sleep(poll)


def mark(workflow: WorkflowLike, unit_id: str, marked_as: MarkedAs | str, reason: str,
         **flags: Any) -> None:
    """Record a person's decision about a unit (manual intervention). Audited; takes the lock."""
    if not reason.strip():
        raise ConfigError("mark needs a --reason: it is written to the audit log")
    wf = open_workflow(workflow, **flags)
    with _backend(wf) as backend:
        Runner(wf, backend, Progress(), trigger="mark").mark(unit_id, MarkedAs(marked_as), reason)


def undo(workflow: WorkflowLike, to: str, *, progress: Progress | None = None,
         **flags: Any) -> RunResult:
    """Compensate every applied unit that comes after ``to`` in the workflow, newest first."""
    wf = open_workflow(workflow, **flags)
    with _backend(wf) as backend:
        runner = Runner(wf, backend, progress or LogProgress(), trigger="undo",
                        trace=current_trace)
        return runner.undo(to)


def _state(workflow: Workflow) -> State:
    """The namespace's state, for commands that decide nothing: no lock, nothing created."""
    with open_backend(workflow.bus, workflow.namespace, workflow.bus_options,
                      create=False) as backend:
        if not backend.log.exists():
            return State()
        return check_integrity(read_log(backend.log), backend.log.name)


# Reading the log alone: no workflow, no unit code ----------------------------------------

@contextmanager
def _existing_log(bus: str, namespace: str,
                  options: Mapping[str, str] | None) -> Iterator[Backend]:
    with open_backend(bus, namespace, options, create=False) as backend:
        if not backend.log.exists():
            raise NamespaceNotFoundError(
                f"namespace {namespace!r} has no audit log at {backend.log.name}: nothing was "
                "ever recorded there. Check --namespace and --bus (or the workflow file).")
        yield backend


def read_state(bus: str, namespace: str, options: Mapping[str, str] | None = None) -> State:
    """Fold a namespace's whole log into its state (empty if it has none yet)."""
    with open_backend(bus, namespace, options, create=False) as backend:
        return read_log(backend.log) if backend.log.exists() else State()


def history(
    bus: str,
    namespace: str,
    *,
    unit: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    options: Mapping[str, str] | None = None,
) -> list[AuditEvent]:
    """The audit events of a namespace, oldest first, filtered."""
    with _existing_log(bus, namespace, options) as backend:
        records = AuditCodec().decode_all(backend.log.read())
        return select_events(records, unit=unit, run_id=run_id, window=Window(since, until))


def verify(bus: str, namespace: str, options: Mapping[str, str] | None = None) -> ReplayReport:
    """Replay the whole log with the shared fold and check its hash chain and sequence."""
    with _existing_log(bus, namespace, options) as backend:
        return replay_records(AuditCodec().decode_all(backend.log.read()),
                              log=backend.log.name, namespace=namespace, rows=False)


def replay(bus: str, namespace: str, *, since: datetime | None = None,
           until: datetime | None = None,
           options: Mapping[str, str] | None = None) -> ReplayReport:
    """The compliance replay of ``namespace``'s whole log; rows limited to ``[since, until]``."""
    with _existing_log(bus, namespace, options) as backend:
        return replay_records(AuditCodec().decode_all(backend.log.read()),
                              log=backend.log.name, namespace=namespace,
                              window=Window(since, until))
