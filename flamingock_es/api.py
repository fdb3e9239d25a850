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
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from .adapters import Backend, open_backend
from .audit import (
    Checkpoint,
    ReplayReport,
    Window,
    latest_checkpoint,
    replay_records,
    select_events,
)
from .core import snapshots
from .core.events import AuditEvent, MarkedAs
from .core.reading import check_integrity, read_log
from .core.state import Finding, State, UnitStatus
from .core.trust import TrustStore, trust_of, writer_for
from .definition.settings import Settings
from .definition.workflow import Workflow, load_workflow
from .errors import ChainBrokenError, ConfigError, LockTimeoutError, NamespaceNotFoundError
from .run.planner import NamespaceStatus, Plan, UndoScope, make_plan, namespace_status
from .run.progress import LogProgress, Progress
from .run.results import RunResult
from .run.runner import Runner
from .run.signals import Interrupts
from .telemetry.propagation import current_trace
from .telemetry.spans import TracingProgress, deploy_span

__all__ = [
    "WorkflowLike",
    "checkpoint",
    "history",
    "mark",
    "open_workflow",
    "plan",
    "quarantine",
    "read_state",
    "replay",
    "run",
    "snapshot",
    "status",
    "undo",
    "verify",
    "vouch",
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


def _runner(workflow: Workflow, backend: Backend, progress: Progress, **options: Any) -> Runner:
    """A runner that signs what it appends, when the namespace's trust store wants that."""
    trust, signer = writer_for(workflow.config)
    return Runner(workflow, backend, progress, trust=trust, signer=signer,
                  trace=current_trace, **options)


def run(
    workflow: WorkflowLike = None,
    *,
    units: Sequence[str] | None = None,
    accept_drift: bool = False,
    progress: Progress | None = None,
    trigger: str = "library",
    service_version: str | None = None,
    handle_signals: bool = True,
    **flags: Any,
) -> RunResult:
    """Apply every pending unit of ``workflow`` under the namespace lock.

    Returns at once, taking no lock, when nothing is pending. Raises
    :class:`~flamingock_es.errors.UnitFailedError` after compensating when a unit fails.
    With ``handle_signals`` (and called from the main thread), SIGTERM and SIGINT stop the
    run cleanly (see docs/recovery.md) and raise :class:`~flamingock_es.RunInterrupted`.
    Traced when the application installed an OpenTelemetry SDK (see docs/tracing.md).
    """
    wf = open_workflow(workflow, **flags)
    traced = TracingProgress.wrap(progress or LogProgress(), wf.namespace)
    interrupts = Interrupts(wf.config.grace_period)
    try:
        # One root for the lock wait and the run: a deployment is one trace.
        with _backend(wf) as backend, deploy_span(wf.namespace), \
                (interrupts.installed() if handle_signals else nullcontext()):
            runner = _runner(wf, backend, traced, accept_drift=accept_drift, trigger=trigger,
                             service_version=service_version, interrupts=interrupts)
            return runner.run(units)
    finally:
        if isinstance(traced, TracingProgress):
            traced.close()


def plan(workflow: WorkflowLike = None, *, accept_drift: bool = False, **flags: Any) -> Plan:
    """What ``run`` would do, and why; reads the log, takes no lock, writes nothing."""
    wf = open_workflow(workflow, **flags)
    with _reader(wf.config) as (backend, trust):
        return make_plan(wf, _state(backend, trust, wf.namespace), accept_drift)


def status(workflow: WorkflowLike = None, **flags: Any) -> NamespaceStatus:
    """Each unit's derived status; a unit still running (its run's holder holds the lock) is
    told apart from one whose process is gone; what needs a person and the commands for it."""
    wf = open_workflow(workflow, **flags)
    with _reader(wf.config) as (backend, trust):
        state = _state(backend, trust, wf.namespace)
        started = any(u.status is UnitStatus.STARTED for u in state.units.values())
        holder = backend.lock.holder() if started else None
        return namespace_status(wf, state, make_plan(wf, state), holder)


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
    with _reader(wf.config) as (backend, trust):
        while True:
            if backend.log.exists():
                check_integrity(read_log(backend.log, state, trust=trust), backend.log.name,
                                trust)
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


def mark(workflow: WorkflowLike, unit_id: str, marked_as: MarkedAs | str, reason: str, *,
         seen: int | None = None, **flags: Any) -> None:
    """Record a person's decision about a unit (manual intervention). Audited; takes the lock.

    ``seen`` is the offset of the unit's last event as the person saw it (``status`` prints
    it): the mark is refused if the unit's history moved since.
    """
    if not reason.strip():
        raise ConfigError("mark needs a --reason: it is written to the audit log")
    wf = open_workflow(workflow, **flags)
    with _backend(wf) as backend:
        _runner(wf, backend, Progress(), trigger="mark").mark(
            unit_id, MarkedAs(marked_as), reason, seen)


def undo(workflow: WorkflowLike, to: str | None = None, *, count: int | None = None,
         all_units: bool = False, progress: Progress | None = None, **flags: Any) -> RunResult:
    """Compensate applied units, newest first: those after ``to`` in the workflow, the newest
    ``count``, or (``all_units``) every one. Exactly one of the three is given."""
    if sum((to is not None, count is not None, all_units)) != 1:
        raise ConfigError("undo needs exactly one of: a unit to go back to (--to ID), a count "
                          "(--count N), or --all")
    wf = open_workflow(workflow, **flags)
    with _backend(wf) as backend:
        return _runner(wf, backend, progress or LogProgress(), trigger="undo").undo(
            UndoScope(to=to, count=count))


def quarantine(settings: Settings, offset: int, reason: str) -> Finding:
    """Record an operator's decision that the record at ``offset`` (a finding: undecodable,
    not a valid event, or not covered by a trusted signature) is not part of the history.
    Audited; takes the lock; imports no unit code. Returns the finding it excluded."""
    if not reason.strip():
        raise ConfigError("quarantine needs a --reason: it is written to the audit log")
    with _existing_log(settings.bus, settings.namespace, settings.bus_options) as backend:
        return _runner(Workflow(settings), backend, Progress(),
                       trigger="quarantine").quarantine(offset, reason)


def vouch(settings: Settings, through: int, reason: str) -> int:
    """Record an operator's decision that the unsigned history up to ``through`` (written
    before signing was configured) is authentic. Returns how many events it vouched for."""
    if not reason.strip():
        raise ConfigError("vouch needs a --reason: it is written to the audit log")
    with _existing_log(settings.bus, settings.namespace, settings.bus_options) as backend:
        return _runner(Workflow(settings), backend, Progress(), trigger="vouch").vouch(
            through, reason)


@contextmanager
def _reader(settings: Settings) -> Iterator[tuple[Backend, TrustStore | None]]:
    """The backend and trust store of a command that decides nothing: nothing is created."""
    with open_backend(settings.bus, settings.namespace, settings.bus_options,
                      create=False) as backend:
        yield backend, trust_of(settings)


def _state(backend: Backend, trust: TrustStore | None, namespace: str) -> State:
    if not backend.log.exists():
        return State()
    return check_integrity(snapshots.read(backend.log, backend.snapshots, namespace, trust),
                           backend.log.name, trust)


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
    """The audit events of a namespace, oldest first, filtered (undecodable records are
    left out: ``verify`` names them)."""
    with _existing_log(bus, namespace, options) as backend:
        records = replay_records(backend.log.read(), rows=False).records
        return select_events(records, unit=unit, run_id=run_id, window=Window(since, until))


def verify(bus: str, namespace: str, options: Mapping[str, str] | None = None, *,
           trust: TrustStore | None = None, every_signature: bool = False,
           expect: Sequence[Checkpoint] = ()) -> ReplayReport:
    """Replay the whole log with the shared fold: its hash chain and sequence, its
    signatures against ``trust`` (every one with ``every_signature``), and the ``expect``ed
    checkpoints."""
    with _existing_log(bus, namespace, options) as backend:
        return replay_records(backend.log.read(), log=backend.log.name, namespace=namespace,
                              rows=False, trust=trust, every_signature=every_signature,
                              expect=expect)


def replay(bus: str, namespace: str, *, since: datetime | None = None,
           until: datetime | None = None, options: Mapping[str, str] | None = None,
           trust: TrustStore | None = None, every_signature: bool = False,
           expect: Sequence[Checkpoint] = ()) -> ReplayReport:
    """The compliance replay of ``namespace``'s whole log; rows limited to ``[since, until]``."""
    with _existing_log(bus, namespace, options) as backend:
        return replay_records(backend.log.read(), log=backend.log.name, namespace=namespace,
                              window=Window(since, until), trust=trust,
                              every_signature=every_signature, expect=expect)


def snapshot(settings: Settings) -> int:
    """Write a snapshot of the namespace's whole log (signed with the settings' key), for
    the next start-ups to fold only what follows it. Returns its position."""
    trust, signer = writer_for(settings)
    with _existing_log(settings.bus, settings.namespace, settings.bus_options) as backend:
        state = check_integrity(read_log(backend.log, trust=trust), backend.log.name, trust)
        snapshots.save(backend.snapshots, state, settings.namespace, signer)
        return state.position


def checkpoint(bus: str, namespace: str, options: Mapping[str, str] | None = None, *,
               trust: TrustStore | None = None) -> Checkpoint:
    """The log's latest signed event, as a checkpoint an auditor can publish and check later;
    refused for a log with findings (``verify`` names them)."""
    report = verify(bus, namespace, options, trust=trust)
    if not report.ok:
        first = report.findings[0]
        raise ChainBrokenError(f"{report.log} has {len(report.findings)} finding(s), the first "
                               f"at offset {first.position}: {first.reason}. A checkpoint "
                               "vouches for a log; `flamingock-es verify` lists them.")
    found = latest_checkpoint(report.records, report.log)
    if found is None:
        raise ConfigError(f"namespace {namespace!r} has no signed event yet: checkpoints need "
                          "runners that sign (see docs/compliance.md)")
    return found
