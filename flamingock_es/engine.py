"""The runner: lock, rebuild, plan, apply each unit between two durable events, compensate.

Every step is an audit event appended *before* the next side effect: ``ChangeStarted`` is
durable before a unit runs, its outcome after. A run that finds nothing to do takes no lock
and writes nothing, so that many application instances start fast.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from .backends import Backend
from .changes import ChangeContext, ChangeUnit
from .codec import AuditCodec
from .errors import (
    ChainBrokenError,
    ChecksumDriftError,
    ConfigError,
    FlamingockError,
    LockLostError,
    LockTimeoutError,
    ManualInterventionRequired,
    RunInterrupted,
    UnitFailedError,
)
from .events import (
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockLost,
    LockReleased,
    ManualMark,
    MarkedAs,
    RunFinished,
    RunOutcome,
    RunStarted,
    TraceContext,
)
from .loader import resolved_parameters
from .planner import Plan, PlannedUnit, make_plan
from .ports import Lease
from .recorder import Recorder, RunIdentity, local_actor, new_run_id
from .reporting import Reporter
from .state import State, fold
from .workflow import CompensationScope, Workflow

__all__ = ["RunResult", "Runner"]


@dataclass
class RunResult:
    """What a run did."""

    run_id: str | None
    outcome: RunOutcome | None
    """``None`` when nothing was pending: no lock was taken, nothing was written."""
    applied: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    skipped: int = 0
    error: ErrorInfo | None = None


class Runner:
    """Runs one workflow against one backend. One instance per run."""

    def __init__(
        self,
        workflow: Workflow,
        backend: Backend,
        reporter: Reporter,
        *,
        accept_drift: bool = False,
        trigger: str = "library",
        request_id: str | None = None,
        service_version: str | None = None,
        trace: Callable[[], TraceContext | None] = lambda: None,
        stop: threading.Event | None = None,
    ) -> None:
        self.workflow, self.backend, self.reporter = workflow, backend, reporter
        self.stop = stop or threading.Event()
        """Set it (e.g. on SIGTERM) to end the run after the current unit, lock released."""
        self.accept_drift, self.trigger, self.request_id = accept_drift, trigger, request_id
        self.codec = AuditCodec()
        self.state = State()
        self.run_id = new_run_id()
        self.identity = RunIdentity(workflow.namespace, self.run_id,
                                    local_actor(service_version), request_id)
        self._trace = trace

    # Reading -------------------------------------------------------------------------------

    def refresh(self) -> State:
        """Fold whatever the log gained since the last read."""
        fold(self.codec.decode_all(self.backend.log.read(self.state.position + 1)), self.state)
        if self.state.breaks:
            first = self.state.breaks[0]
            raise ChainBrokenError(
                f"the audit log {self.backend.log.name} is inconsistent at offset "
                f"{first.position} (seq {first.seq}): {first.reason}. Nothing was run; "
                "`flamingock-es verify` reports every break."
            )
        return self.state

    def plan(self) -> Plan:
        return make_plan(self.workflow, self.refresh(), self.accept_drift)

    # Running -------------------------------------------------------------------------------

    def run(self, units: Sequence[str] | None = None) -> RunResult:
        """Apply what is pending (only ``units`` if given); on failure compensate, then raise."""
        # Blockers read without the lock may belong to a runner still at work (its unit is
        # STARTED or FAILED until it finishes or compensates): only the lock can tell, so
        # they are decided under it, after that runner is done.
        plan = self._checked_plan(units, blockers_raise=False)
        if not plan.has_work and not plan.blockers:
            self.reporter.up_to_date(plan)
            return RunResult(None, None, skipped=len(plan.units))
        with self._locked() as (recorder, lease):
            plan = self._checked_plan(units)  # another runner may have done it while we waited
            if not plan.has_work:
                self.reporter.up_to_date(plan, after_wait=True)
                return RunResult(None, None, skipped=len(plan.units))
            return self._execute(plan, recorder, lease)

    def _checked_plan(self, units: Sequence[str] | None, blockers_raise: bool = True) -> Plan:
        plan = self.plan()
        if units:
            wanted = set(units)
            unknown = wanted - {p.unit.id for p in plan.units}
            if unknown:
                raise ConfigError(f"unknown unit(s) {', '.join(sorted(unknown))} in workflow "
                                  f"{self.workflow.name!r}")
            plan = Plan(tuple(p for p in plan.units if p.unit.id in wanted),
                        tuple(b for b in plan.blockers if b.unit_id in wanted), plan.unknown)
        if plan.blockers and blockers_raise:
            blocker = plan.blockers[0]
            more = f" (and {len(plan.blockers) - 1} more: see `flamingock-es status`)" \
                if len(plan.blockers) > 1 else ""
            error = ChecksumDriftError if blocker.kind == "drift" else ManualInterventionRequired
            raise error(f"{blocker.message}\n  to resolve: {blocker.resolve}{more}")
        return plan

    @contextmanager
    def _locked(self) -> Iterator[tuple[Recorder, Lease]]:
        holder = f"{self.identity.actor.host}:{os.getpid()}:{self.run_id}"
        try:
            lease = self.backend.lock.acquire(holder, self.workflow.lock_timeout, self._waiting)
        except LockTimeoutError as exc:
            raise LockTimeoutError(f"{exc} {self._holder_text()}") from exc
        writer = None
        try:
            writer = self.backend.log.writer(lease)
            self.refresh()
            yield Recorder(writer, self.state, self.identity, self.codec, self._trace), lease
        finally:
            if writer is not None:
                writer.close()
            lease.release()

    def _holder_text(self) -> str:
        self.refresh()
        lock = self.state.lock
        if lock is None:
            return "No holder is recorded in the audit log yet."
        return (f"Held by {lock.holder} (run {lock.run_id}) since {lock.since:%Y-%m-%d %H:%M:%S}"
                " UTC per the audit log.")

    def _waiting(self, seconds: float) -> None:
        self.reporter.waiting(seconds, self._holder_text())

    def _execute(self, plan: Plan, recorder: Recorder, lease: Lease) -> RunResult:
        to_run = plan.to_run
        for planned in to_run:  # a missing ${VAR} stops the run before it starts, not halfway
            resolved_parameters(planned.unit, os.environ)
        result = RunResult(self.run_id, None, skipped=len(plan.units) - len(to_run))
        recorder.record(
            RunStarted(workflow=self.workflow.name, trigger=self.trigger,
                       planned=tuple(p.unit.id for p in to_run)),
            LockAcquired(holder=lease.holder, lock=lease.lock, generation=lease.generation),
        )
        self.reporter.run_started(self.run_id, plan)
        for drift in plan.drift_to_accept:
            before = drift.previous.checksum if drift.previous else "?"
            recorder.record(ManualMark(
                unit_id=drift.unit.id, marked_as=MarkedAs.APPLIED, checksum=drift.unit.checksum,
                reason=f"checksum drift accepted: {before} -> {drift.unit.checksum}"))
            self.reporter.drift_accepted(drift.unit.id)
        try:
            for index, planned in enumerate(to_run, 1):
                lease.check()
                if self.stop.is_set():
                    self._interrupted(result, recorder, lease, len(to_run) - index + 1)
                self.reporter.unit_started(index, len(to_run), planned)
                error = self._apply(planned, recorder)
                if error is None:
                    result.applied.append(planned.unit.id)
                    continue
                result.error = error
                result.outcome = self._compensate(planned, error, result, recorder, lease)
                recorder.record(RunFinished(outcome=result.outcome, applied=tuple(result.applied),
                                            error=error), LockReleased(holder=lease.holder))
                self.reporter.run_finished(result)
                raise UnitFailedError(f"unit {planned.unit.id!r} failed: {error}"
                                      + _compensation_summary(result))
        except LockLostError as exc:
            self._record_lock_lost(recorder, lease, str(exc))
            raise
        result.outcome = RunOutcome.SUCCEEDED
        recorder.record(RunFinished(outcome=result.outcome, applied=tuple(result.applied)),
                        LockReleased(holder=lease.holder))
        self.reporter.run_finished(result)
        return result

    def _context(self, unit: ChangeUnit, params: dict[str, object]) -> ChangeContext:
        return ChangeContext(self.workflow.namespace, self.run_id, unit.id, params,
                             self.workflow.settings)

    def _apply(self, planned: PlannedUnit, recorder: Recorder) -> ErrorInfo | None:
        unit = planned.unit
        params = dict(resolved_parameters(unit, os.environ))
        attempt = (planned.previous.attempts if planned.previous else 0) + 1
        recorder.record(ChangeStarted(
            unit_id=unit.id, stage=planned.stage, author=unit.author, checksum=unit.checksum,
            template=unit.template, parameters=unit.audit_parameters(), attempt=attempt,
            reason=planned.reason))
        started = time.perf_counter()
        try:
            unit.apply(self._context(unit, params))
        except Exception as exc:
            error = ErrorInfo.of(exc)
            recorder.record(ChangeFailed(unit_id=unit.id, checksum=unit.checksum,
                                         duration_ms=_ms(started), error=error))
            self.reporter.unit_failed(unit.id, error, _ms(started))
            return error
        recorder.record(ChangeSucceeded(unit_id=unit.id, checksum=unit.checksum,
                                        duration_ms=_ms(started)))
        self.reporter.unit_applied(unit.id, _ms(started))
        return None

    def _compensate(self, failed: PlannedUnit, error: ErrorInfo, result: RunResult,
                    recorder: Recorder, lease: Lease) -> RunOutcome:
        """Roll back the failed unit, then (by default) what this run applied, newest first."""
        targets: list[tuple[ChangeUnit, str, ErrorInfo | None]] = [
            (failed.unit, f"its apply failed: {error}", error)]
        if self.workflow.compensate is CompensationScope.RUN:
            targets += [(unit, f"unit {failed.unit.id!r} failed later in run {self.run_id}",
                         None) for uid in reversed(result.applied)
                        if (unit := self.workflow.unit(uid)) is not None]
        all_ok = True
        for unit, reason, original in targets:
            lease.check()
            if unit.rollback is None:
                self.reporter.no_rollback(unit.id)
                all_ok = False
                continue
            if self.compensate_unit(unit, reason, recorder, original):
                result.compensated.append(unit.id)
            else:
                all_ok = False
        return RunOutcome.ROLLED_BACK if all_ok else RunOutcome.FAILED

    def compensate_unit(self, unit: ChangeUnit, reason: str, recorder: Recorder,
                        original: ErrorInfo | None = None) -> bool:
        """Run ``unit``'s rollback between two audit events; True if it succeeded."""
        assert unit.rollback is not None
        params = dict(resolved_parameters(unit, os.environ))
        recorder.record(CompensationStarted(unit_id=unit.id, reason=reason))
        self.reporter.compensation_started(unit.id, reason)
        started = time.perf_counter()
        try:
            unit.rollback(self._context(unit, params))
        except Exception as exc:
            rollback_error = ErrorInfo.of(exc)
            recorder.record(CompensationFailed(unit_id=unit.id, duration_ms=_ms(started),
                                               error=rollback_error, original_error=original))
            self.reporter.compensation_failed(unit.id, rollback_error, original)
            return False
        recorder.record(CompensationSucceeded(unit_id=unit.id, duration_ms=_ms(started)))
        self.reporter.compensation_succeeded(unit.id, _ms(started))
        return True

    def _interrupted(self, result: RunResult, recorder: Recorder, lease: Lease,
                     left: int) -> None:
        """Stop between units: what ran stays applied and audited, the rest stays pending."""
        result.outcome = RunOutcome.FAILED
        result.error = ErrorInfo(type="Interrupted", message=(
            f"stopped on request after {len(result.applied)} unit(s); {left} still pending"))
        recorder.record(RunFinished(outcome=result.outcome, applied=tuple(result.applied),
                                    error=result.error), LockReleased(holder=lease.holder))
        self.reporter.run_finished(result)
        raise RunInterrupted(f"{result.error.message}; the next run applies them")

    def _record_lock_lost(self, recorder: Recorder, lease: Lease, why: str) -> None:
        # Usually refused (a fenced writer cannot append): best effort, never masks the loss.
        with suppress(FlamingockError):
            recorder.record(LockLost(holder=lease.holder, reason=why))
        self.reporter.lock_lost(why)

    # Manual steps ------------------------------------------------------------------------

    def answer(self, outcome: RunOutcome, error: ErrorInfo | None = None) -> None:
        """Record, under the lock, a run that applies nothing: how a request is answered
        when it is rejected or finds nothing to do."""
        with self._locked() as (recorder, lease):
            recorder.record(
                RunStarted(workflow=self.workflow.name, trigger=self.trigger, planned=()),
                LockAcquired(holder=lease.holder, lock=lease.lock, generation=lease.generation))
            recorder.record(RunFinished(outcome=outcome, applied=(), error=error),
                            LockReleased(holder=lease.holder))

    @contextmanager
    def session(self, trigger: str, planned: Sequence[str] = ()) -> Iterator[Recorder]:
        """Hold the lock and record a run of ``trigger`` (``mark``, ``undo``) around a block."""
        with self._locked() as (recorder, lease):
            recorder.record(
                RunStarted(workflow=self.workflow.name, trigger=trigger, planned=tuple(planned)),
                LockAcquired(holder=lease.holder, lock=lease.lock, generation=lease.generation))
            outcome, error = RunOutcome.SUCCEEDED, None
            try:
                yield recorder
            except FlamingockError as exc:
                outcome, error = RunOutcome.FAILED, ErrorInfo.of(exc)
                raise
            finally:
                recorder.record(RunFinished(outcome=outcome, applied=(), error=error),
                                LockReleased(holder=lease.holder))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _compensation_summary(result: RunResult) -> str:
    if result.outcome is RunOutcome.ROLLED_BACK:
        return f"; compensated {', '.join(result.compensated)}: no partial state is left"
    return (f"; compensated {', '.join(result.compensated) or 'nothing'}, but not everything "
            "could be rolled back: see `flamingock-es status`")
