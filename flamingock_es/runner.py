"""The runner: lock, rebuild, plan, apply each unit between two durable events, compensate.

Every step is an audit event appended *before* the next side effect: ``ChangeStarted`` is
durable before a unit runs, its outcome after. Every run that takes the lock is framed the
same way (:meth:`Runner.frame`): ``RunStarted`` and ``LockAcquired`` first, ``RunFinished``
and ``LockReleased`` last, whatever happens in between. A run that finds nothing to do takes
no lock and writes nothing, so that many application instances start fast.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from .adapters import Backend
from .changes import ChangeContext, ChangeUnit
from .codec import AuditCodec
from .errors import (
    AppendError,
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
from .planner import Plan, PlannedUnit, make_plan, only, undo_targets
from .ports import Lease
from .progress import Progress
from .reading import check_integrity, read_log
from .recorder import Recorder, RunIdentity, local_actor, new_run_id
from .results import RunResult
from .state import State
from .workflow import CompensationScope, Workflow

__all__ = ["Frame", "Runner"]


@dataclass
class Frame:
    """A run in progress under the lock: where it records, and what it has done so far."""

    recorder: Recorder
    lease: Lease
    result: RunResult


class Runner:
    """Runs one workflow against one backend. One instance per run."""

    def __init__(
        self,
        workflow: Workflow,
        backend: Backend,
        progress: Progress,
        *,
        accept_drift: bool = False,
        trigger: str = "library",
        request_id: str | None = None,
        service_version: str | None = None,
        trace: Callable[[], TraceContext | None] = lambda: None,
        stop: threading.Event | None = None,
    ) -> None:
        self.workflow, self.backend, self.progress = workflow, backend, progress
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
        """Fold whatever the log gained since the last read; refuse a log that breaks."""
        read_log(self.backend.log, self.state, self.codec)
        return check_integrity(self.state, self.backend.log.name)

    def plan(self, units: Sequence[str] | None = None) -> Plan:
        return only(make_plan(self.workflow, self.refresh(), self.accept_drift), units,
                    self.workflow)

    # Running -------------------------------------------------------------------------------

    def run(self, units: Sequence[str] | None = None) -> RunResult:
        """Apply what is pending (only ``units`` if given); on failure compensate, then raise."""
        # Blockers read without the lock may belong to a runner still at work (its unit is
        # STARTED or FAILED until it finishes or compensates): only the lock can tell, so
        # they are decided under it, after that runner is done.
        plan = self.plan(units)
        if not plan.has_work and not plan.blockers:
            self.progress.up_to_date(plan)
            return RunResult(None, None, skipped=len(plan.units))
        for planned in plan.to_run:  # a missing ${VAR} stops the run before it starts
            resolved_parameters(planned.unit, os.environ)
        with self._locked() as (recorder, lease):
            plan = self.plan(units)  # another runner may have done it while we waited
            _raise_blockers(plan)
            if not plan.has_work:
                self.progress.up_to_date(plan, after_wait=True)
                return RunResult(None, None, skipped=len(plan.units))
            with self._frame(recorder, lease, self.trigger, plan) as frame:
                self._execute(plan, frame)
            return frame.result

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

    @contextmanager
    def frame(self, trigger: str, planned: Sequence[str] = ()) -> Iterator[Frame]:
        """Hold the lock and record a run of ``trigger`` (``mark``, ``undo``, a request's
        answer) around a block; the block records its steps through ``frame.recorder``."""
        with self._locked() as (recorder, lease), \
                self._frame(recorder, lease, trigger, planned) as frame:
            yield frame

    @contextmanager
    def _frame(self, recorder: Recorder, lease: Lease, trigger: str,
               planned: Plan | Sequence[str]) -> Iterator[Frame]:
        ids = tuple(p.unit.id for p in planned.to_run) if isinstance(planned, Plan) \
            else tuple(planned)
        recorder.record(
            RunStarted(workflow=self.workflow.name, trigger=trigger, planned=ids),
            LockAcquired(holder=lease.holder, lock=lease.lock, generation=lease.generation))
        frame = Frame(recorder, lease, RunResult(self.run_id, None))
        if isinstance(planned, Plan):
            frame.result.skipped = len(planned.units) - len(ids)
            self.progress.run_started(self.run_id, planned)
        result = frame.result
        try:
            yield frame
        except LockLostError as exc:
            self._record_lock_lost(recorder, lease, str(exc))
            raise
        except AppendError:
            raise  # the log refuses writes: nothing more can be recorded
        except Exception as exc:
            result.outcome = result.outcome or RunOutcome.FAILED
            result.error = result.error or ErrorInfo.of(exc)
            self._finish(frame)
            raise
        result.outcome = result.outcome or RunOutcome.SUCCEEDED
        self._finish(frame)

    def _finish(self, frame: Frame) -> None:
        result = frame.result
        assert result.outcome is not None
        frame.recorder.record(
            RunFinished(outcome=result.outcome, applied=tuple(result.applied),
                        error=result.error),
            LockReleased(holder=frame.lease.holder))
        self.progress.run_finished(result)

    def _holder_text(self) -> str:
        lock = read_log(self.backend.log, self.state, self.codec).lock
        if lock is None:
            return "No holder is recorded in the audit log yet."
        return (f"Held by {lock.holder} (run {lock.run_id}) since {lock.since:%Y-%m-%d %H:%M:%S}"
                " UTC per the audit log.")

    def _waiting(self, seconds: float) -> None:
        self.progress.waiting(seconds, self._holder_text())

    def _execute(self, plan: Plan, frame: Frame) -> None:
        recorder, result, to_run = frame.recorder, frame.result, plan.to_run
        for drift in plan.drift_to_accept:
            before = drift.previous.checksum if drift.previous else "?"
            recorder.record(ManualMark(
                unit_id=drift.unit.id, marked_as=MarkedAs.APPLIED, checksum=drift.unit.checksum,
                reason=f"checksum drift accepted: {before} -> {drift.unit.checksum}"))
            self.progress.drift_accepted(drift.unit.id)
        for index, planned in enumerate(to_run, 1):
            frame.lease.check()
            if self.stop.is_set():
                result.error = ErrorInfo(type="Interrupted", message=(
                    f"stopped on request after {len(result.applied)} unit(s); "
                    f"{len(to_run) - index + 1} still pending"))
                raise RunInterrupted(f"{result.error.message}; the next run applies them")
            self.progress.unit_started(index, len(to_run), planned)
            error = self._apply(planned, recorder)
            if error is None:
                result.applied.append(planned.unit.id)
                continue
            result.error = error
            result.outcome = self._compensate(planned, error, frame)
            raise UnitFailedError(f"unit {planned.unit.id!r} failed: {error}"
                                  + _compensation_summary(result))

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
            error, ms = ErrorInfo.of(exc), _ms(started)
            recorder.record(ChangeFailed(unit_id=unit.id, checksum=unit.checksum,
                                         duration_ms=ms, error=error))
            self.progress.unit_failed(unit.id, error, ms)
            return error
        ms = _ms(started)
        recorder.record(ChangeSucceeded(unit_id=unit.id, checksum=unit.checksum,
                                        duration_ms=ms))
        self.progress.unit_applied(unit.id, ms)
        return None

    def _compensate(self, failed: PlannedUnit, error: ErrorInfo, frame: Frame) -> RunOutcome:
        """Roll back the failed unit, then (by default) what this run applied, newest first."""
        result = frame.result
        targets: list[tuple[ChangeUnit, str, ErrorInfo | None]] = [
            (failed.unit, f"its apply failed: {error}", error)]
        if self.workflow.compensate is CompensationScope.RUN:
            targets += [(unit, f"unit {failed.unit.id!r} failed later in run {self.run_id}",
                         None) for uid in reversed(result.applied)
                        if (unit := self.workflow.unit(uid)) is not None]
        all_ok = True
        for unit, reason, original in targets:
            frame.lease.check()
            if unit.rollback is None:
                self.progress.no_rollback(unit.id)
                all_ok = False
                continue
            if self.compensate_unit(unit, reason, frame.recorder, original):
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
        self.progress.compensation_started(unit.id, reason)
        started = time.perf_counter()
        try:
            unit.rollback(self._context(unit, params))
        except Exception as exc:
            rollback_error, ms = ErrorInfo.of(exc), _ms(started)
            recorder.record(CompensationFailed(unit_id=unit.id, duration_ms=ms,
                                               error=rollback_error, original_error=original))
            self.progress.compensation_failed(unit.id, rollback_error, original)
            return False
        ms = _ms(started)
        recorder.record(CompensationSucceeded(unit_id=unit.id, duration_ms=ms))
        self.progress.compensation_succeeded(unit.id, ms)
        return True

    # Runs that apply nothing new ---------------------------------------------------------

    def undo(self, to: str) -> RunResult:
        """Compensate every applied unit after ``to`` in the workflow, newest first."""
        targets = undo_targets(self.workflow, self.refresh(), to)
        if not targets:
            return RunResult(None, None)
        with self.frame("undo", [unit.id for unit in targets]) as frame:
            for unit in targets:
                if not self.compensate_unit(unit, f"undo --to {to}", frame.recorder):
                    frame.result.outcome = RunOutcome.FAILED
                    break
                frame.result.compensated.append(unit.id)
        return frame.result

    def mark(self, unit_id: str, marked_as: MarkedAs, reason: str) -> None:
        """Record a person's decision about a unit, under the lock."""
        unit = self.workflow.unit(unit_id)
        if unit is None and unit_id not in self.refresh().units:
            raise ConfigError(f"unit {unit_id!r} is neither in workflow {self.workflow.name!r} "
                              "nor in the audit log")
        checksum = unit.checksum if unit is not None and marked_as is MarkedAs.APPLIED else None
        with self.frame("mark", [unit_id]) as frame:
            frame.recorder.record(ManualMark(unit_id=unit_id, marked_as=marked_as,
                                             reason=reason, checksum=checksum))

    def answer(self, outcome: RunOutcome, error: ErrorInfo | None = None) -> None:
        """Record, under the lock, a run that applies nothing: how a request is answered
        when it is rejected or finds nothing to do."""
        with self.frame(self.trigger) as frame:
            frame.result.outcome, frame.result.error = outcome, error

    def _record_lock_lost(self, recorder: Recorder, lease: Lease, why: str) -> None:
        # Usually refused (a fenced writer cannot append): best effort, never masks the loss.
        with suppress(FlamingockError):
            recorder.record(LockLost(holder=lease.holder, reason=why))
        self.progress.lock_lost(why)


def _raise_blockers(plan: Plan) -> None:
    if not plan.blockers:
        return
    blocker = plan.blockers[0]
    more = f" (and {len(plan.blockers) - 1} more: see `flamingock-es status`)" \
        if len(plan.blockers) > 1 else ""
    error = ChecksumDriftError if blocker.kind == "drift" else ManualInterventionRequired
    raise error(f"{blocker.message}\n  to resolve: {blocker.resolve}{more}")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _compensation_summary(result: RunResult) -> str:
    if result.outcome is RunOutcome.ROLLED_BACK:
        return f"; compensated {', '.join(result.compensated)}: no partial state is left"
    return (f"; compensated {', '.join(result.compensated) or 'nothing'}, but not everything "
            "could be rolled back: see `flamingock-es status`")
