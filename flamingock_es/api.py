"""The library API: plain functions, one per command. ``cli.py`` is a thin layer over these.

Call :func:`run` in an application's start-up path::

    import flamingock_es
    flamingock_es.run("flamingock.yaml")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from .backends import Backend, open_backend
from .codec import AuditCodec, Recorded
from .engine import Runner, RunResult
from .errors import ConfigError, LockTimeoutError
from .events import AuditEvent, ManualMark, MarkedAs, RunOutcome, TraceContext
from .planner import Plan
from .reporting import LogReporter, Reporter
from .state import ChainBreak, LockState, State, fold
from .workflow import Workflow, load_workflow

__all__ = [
    "RunOutcome",
    "StatusReport",
    "StatusRow",
    "VerifyReport",
    "history",
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

WorkflowLike = Workflow | str | Path | None


def open_workflow(workflow: WorkflowLike = None, **overrides: Any) -> Workflow:
    """A workflow as given, or loaded from a ``flamingock.yaml`` path (default: ./)."""
    if isinstance(workflow, Workflow):
        if overrides:
            return replace(workflow, **{k: v for k, v in overrides.items() if v is not None})
        return workflow
    path = Path(workflow) if workflow is not None else Path("flamingock.yaml")
    base = (path if path.is_dir() else path.parent).resolve()
    if str(base) not in sys.path:  # python-call targets live beside the workflow
        sys.path.insert(0, str(base))
    return load_workflow(path, **overrides)


def _backend(wf: Workflow) -> Backend:
    return open_backend(wf.bus, wf.namespace, wf.bus_options)


def run(
    workflow: WorkflowLike = None,
    *,
    units: Sequence[str] | None = None,
    accept_drift: bool = False,
    reporter: Reporter | None = None,
    trigger: str = "library",
    service_version: str | None = None,
    **overrides: Any,
) -> RunResult:
    """Apply every pending unit of ``workflow`` under the namespace lock.

    Returns at once, taking no lock, when nothing is pending. Raises
    :class:`~flamingock_es.errors.UnitFailedError` after compensating when a unit fails.
    Traced when the ``OTEL_*`` environment turns tracing on (see docs/tracing.md).
    """
    from . import telemetry  # OpenTelemetry is imported only by the commands that can trace

    wf = open_workflow(workflow, **overrides)
    backend = _backend(wf)
    reporter = reporter or LogReporter()
    tracing = telemetry.TracingReporter(reporter, wf.namespace) if telemetry.enabled() else None
    try:
        runner = Runner(wf, backend, tracing or reporter, accept_drift=accept_drift,
                        trigger=trigger, service_version=service_version,
                        trace=telemetry.current_trace)
        if tracing is None:
            return runner.run(units)
        # One root for the lock wait and the run: a deployment is one trace.
        backend.lock = telemetry.traced_lock(backend.lock, wf.namespace)
        with telemetry.tracer().start_as_current_span(
                "flamingock.deploy", attributes={telemetry.NAMESPACE: wf.namespace}):
            return runner.run(units)
    finally:
        if tracing is not None:
            tracing.close()
        backend.close()


def plan(workflow: WorkflowLike = None, *, accept_drift: bool = False,
         **overrides: Any) -> Plan:
    """What ``run`` would do, and why; reads the log, takes no lock, writes nothing."""
    wf = open_workflow(workflow, **overrides)
    backend = _backend(wf)
    try:
        return Runner(wf, backend, Reporter(), accept_drift=accept_drift).plan()
    finally:
        backend.close()


def read_state(bus: str, namespace: str, options: dict[str, str] | None = None) -> State:
    """Fold a namespace's whole log into its state."""
    backend = open_backend(bus, namespace, options)
    try:
        return fold(AuditCodec().decode_all(backend.log.read()))
    finally:
        backend.close()


@dataclass(frozen=True)
class StatusRow:
    unit_id: str
    stage: str
    status: str
    """A :class:`UnitStatus` value, or ``PENDING`` for a unit never run."""
    last_run: str | None
    finished_at: datetime | None
    detail: str
    resolve: str | None
    """The command that resolves it, when it needs a person."""


@dataclass(frozen=True)
class StatusReport:
    namespace: str
    rows: list[StatusRow]
    lock: LockState | None
    unknown: list[str]
    events: int

    @property
    def attention(self) -> list[StatusRow]:
        return [row for row in self.rows if row.resolve]


def status(workflow: WorkflowLike = None, **overrides: Any) -> StatusReport:
    """Each unit's derived status; what needs manual intervention and the command for it."""
    wf = open_workflow(workflow, **overrides)
    backend = _backend(wf)
    try:
        runner = Runner(wf, backend, Reporter())
        the_plan = runner.plan()
    finally:
        backend.close()
    state = runner.state
    blockers = {b.unit_id: b for b in the_plan.blockers}
    rows = []
    for planned in the_plan.units:
        unit = state.units.get(planned.unit.id)
        blocker = blockers.get(planned.unit.id)
        detail = planned.reason
        if unit is not None and unit.error:
            detail += f"; error: {unit.error}"
        if unit is not None and unit.rollback_error:
            detail += f"; rollback error: {unit.rollback_error}"
        rows.append(StatusRow(
            planned.unit.id, planned.stage, unit.status.value if unit else "PENDING",
            unit.last_run_id if unit else None, unit.finished_at if unit else None, detail,
            blocker.resolve if blocker else None))
    return StatusReport(wf.namespace, rows, state.lock, list(the_plan.unknown), state.events)


def history(
    bus: str,
    namespace: str,
    *,
    unit: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    options: dict[str, str] | None = None,
) -> list[AuditEvent]:
    """The audit events of a namespace, oldest first, filtered."""
    backend = open_backend(bus, namespace, options)
    try:
        events = []
        for record in AuditCodec().decode_all(backend.log.read()):
            event = record.event
            if unit is not None and getattr(event.payload, "unit_id", None) != unit:
                continue
            if run_id is not None and event.run_id != run_id:
                continue
            if since is not None and event.time < since:
                continue
            if until is not None and event.time > until:
                continue
            events.append(event)
        return events
    finally:
        backend.close()


@dataclass(frozen=True)
class VerifyReport:
    """The result of replaying a log: its state, and every place its integrity fails."""

    log: str
    state: State
    breaks: list[ChainBreak]
    records: list[Recorded]

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify(bus: str, namespace: str, options: dict[str, str] | None = None) -> VerifyReport:
    """Replay the whole log with the shared fold and check its hash chain and sequence."""
    backend = open_backend(bus, namespace, options)
    try:
        records = list(AuditCodec().decode_all(backend.log.read()))
        state = fold(records)
        return VerifyReport(backend.log.name, state, list(state.breaks), records)
    finally:
        backend.close()


def mark(workflow: WorkflowLike, unit_id: str, marked_as: MarkedAs | str, reason: str,
         **overrides: Any) -> None:
    """Record a person's decision about a unit (manual intervention). Audited; takes the lock."""
    if not reason.strip():
        raise ConfigError("mark needs a --reason: it is written to the audit log")
    wf = open_workflow(workflow, **overrides)
    unit = wf.unit(unit_id)
    backend = _backend(wf)
    try:
        runner = Runner(wf, backend, Reporter(), trigger="mark")
        state = runner.refresh()
        if unit is None and unit_id not in state.units:
            raise ConfigError(f"unit {unit_id!r} is neither in workflow {wf.name!r} nor in the "
                              "audit log")
        as_ = MarkedAs(marked_as)
        with runner.session("mark", [unit_id]) as recorder:
            recorder.record(ManualMark(
                unit_id=unit_id, marked_as=as_, reason=reason,
                checksum=unit.checksum if unit is not None and as_ is MarkedAs.APPLIED else None))
    finally:
        backend.close()


def undo(workflow: WorkflowLike, to: str, *, reporter: Reporter | None = None,
         request_id: str | None = None,
         trace: Callable[[], TraceContext | None] | None = None,
         **overrides: Any) -> RunResult:
    """Compensate every applied unit that comes after ``to`` in the workflow, newest first.

    ``request_id`` and ``trace`` are for the request service (``serve``): the run then
    answers that request and its events carry the current span's context.
    """
    wf = open_workflow(workflow, **overrides)
    order = [u.id for _, u in wf.units()]
    if to not in order:
        raise ConfigError(f"undo --to {to!r}: no such unit in workflow {wf.name!r}")
    backend = _backend(wf)
    try:
        runner = Runner(wf, backend, reporter or LogReporter(), trigger="undo",
                        request_id=request_id, trace=trace or (lambda: None))
        state = runner.refresh()
        after = order[order.index(to) + 1:]
        targets = [uid for uid in reversed(after)
                   if (s := state.units.get(uid)) is not None and s.status.is_applied]
        missing = [uid for uid in targets if (u := wf.unit(uid)) is None or u.rollback is None]
        if missing:
            raise ConfigError(f"cannot undo: {', '.join(missing)} ha(s/ve) no rollback. Write "
                              "one, or mark them rolled back by hand once reverted.")
        result = RunResult(runner.run_id, RunOutcome.SUCCEEDED)
        if not targets:
            return RunResult(None, None)
        with runner.session("undo", targets) as recorder:
            for uid in targets:
                unit = wf.unit(uid)
                assert unit is not None
                if runner.compensate_unit(unit, f"undo --to {to}", recorder):
                    result.compensated.append(uid)
                else:
                    result.outcome = RunOutcome.FAILED
                    break
        return result
    finally:
        backend.close()


def wait(workflow: WorkflowLike = None, *, timeout: float = 300.0, poll: float = 1.0,
         **overrides: Any) -> Plan:
    """Block until nothing is pending (a readiness check for instances that do not run changes).

    A unit that looks failed or in doubt may still be in another runner's hands, so it means
    "not ready yet", not an error; after ``timeout`` seconds ``LockTimeoutError`` says what is
    still pending and what, if anything, needs a person.
    """
    wf = open_workflow(workflow, **overrides)
    backend = _backend(wf)
    deadline = time.monotonic() + timeout
    try:
        runner = Runner(wf, backend, Reporter())
        while True:
            current = runner.plan()
            if current.up_to_date:
                return current
            if time.monotonic() >= deadline:
                pending = ", ".join(p.unit.id for p in current.to_run) or "none"
                blocked = "".join(f"\n  {b.message}\n    to resolve: {b.resolve}"
                                  for b in current.blockers)
                raise LockTimeoutError(f"namespace {wf.namespace!r} is still not up to date "
                                       f"after {timeout:g}s; pending: {pending}{blocked}")
            time.sleep(poll)
    finally:
        backend.close()
