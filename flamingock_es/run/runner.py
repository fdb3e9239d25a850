"""The runner: lock, rebuild, plan, apply each unit between two durable events, compensate.

Every step is an audit event appended *before* the next side effect: ``ChangeStarted`` is
durable before a unit runs, its outcome after. Every run that takes the lock is framed the
same way (:meth:`Runner.frame`): ``RunStarted`` and ``LockAcquired`` first, ``RunFinished``
and ``LockReleased`` last, whatever happens in between: a failure, a lost lock excepted (its
writes are fenced), or a signal (:mod:`flamingock_es.run.signals`). Everything that can be checked
is checked before the lock is taken, so a run does not stop halfway on a typo. A run that
finds nothing to do takes no lock and writes nothing, so that many application instances
start fast.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass

from ..core import snapshots
from ..core.backend import Backend
from ..core.changes import ChangeContext, ChangeUnit
from ..core.events import (
    ChangeFailed,
    ChangeInterrupted,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    HistoryVouched,
    LockAcquired,
    LockLost,
    LockReleased,
    ManualMark,
    MarkedAs,
    RecordQuarantined,
    Requester,
    RunFinished,
    RunOutcome,
    RunStarted,
    TagRecorded,
    TraceContext,
)
from ..core.fencing import FencingToken, idempotency_key
from ..core.ports import Lease, LogWriter
from ..core.recorder import (
    LockGone,
    NoRollback,
    Notice,
    Observer,
    Planned,
    Recorder,
    RunIdentity,
    UpToDate,
    Waiting,
    local_actor,
    new_run_id,
)
from ..core.secrets import secret_values
from ..core.state import Finding, State, Tag, UnitState, UnitStatus
from ..definition.loader import resolved_parameters
from ..definition.workflow import CompensationScope, Workflow
from ..errors import (
    AppendError,
    ChainBrokenError,
    ChangedMeanwhileError,
    ChecksumDriftError,
    ConfigError,
    FlamingockError,
    ForeignRecordError,
    LockLostError,
    LockTimeoutError,
    ManualInterventionRequired,
    Remedy,
    RemedyKind,
    RunInterrupted,
    StepNotStarted,
    Unavailable,
)
from .execution import Execution
from .failures import failure
from .frame import Frame, FrameClosed
from .planner import (
    Plan,
    PlannedUnit,
    UndoScope,
    make_plan,
    new_tag_refusal,
    only,
    undo_targets,
)
from .progress import DRIFT_ACCEPTED
from .results import RunResult
from .signals import Interrupts, StepInterrupted

__all__ = ["Frame", "FrameClosed", "RunOptions", "Runner", "check_before_lock"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What a run is asked to do besides its workflow: how it was triggered, by whom."""

    accept_drift: bool = False
    trigger: str = "library"
    request_id: str | None = None
    requester: Requester | None = None
    service_version: str | None = None


class Runner:
    """Runs one workflow against one namespace's parts. One instance per run."""

    def __init__(self, workflow: Workflow, backend: Backend, options: RunOptions = RunOptions(),
                 *, observers: Sequence[Observer] = (), interrupts: Interrupts | None = None,
                 trace: Callable[[], TraceContext | None] = lambda: None,
                 state: State | None = None) -> None:
        self.workflow, self.backend, self.options = workflow, backend, options
        self.observers = list(observers)
        """Who hears of each step as it is recorded, and of the run's notices."""
        self.interrupts = interrupts or Interrupts(workflow.settings.grace_period)
        """What signals asked of the run; set ``interrupts.stop`` to end it after the
        current unit, its outcome recorded and the lock released."""
        self.state = state if state is not None else State()
        """What the log said when last read; a long-lived caller (``serve``) passes the one it
        keeps, so that each run reads only what the log gained since."""
        self.run_id = new_run_id()
        self.identity = RunIdentity(
            workflow.namespace, self.run_id,
            local_actor(options.service_version, workflow.settings.principal),
            options.request_id)
        self._trace = trace
        self._from_snapshot = False

    @property
    def trigger(self) -> str:
        return self.options.trigger

    @property
    def request_id(self) -> str | None:
        return self.options.request_id

    @property
    def requester(self) -> Requester | None:
        return self.options.requester

    def _tell(self, notice: Notice) -> None:
        for observer in self.observers:
            observer.notice(notice)

    # Reading -------------------------------------------------------------------------------

    def refresh(self, *, check: bool = True) -> State:
        """Fold whatever the log gained since the last read (starting from the latest
        snapshot, when it holds); refuse a log with a finding (unless ``check`` is off: the
        commands that decide about findings)."""
        reader = self.backend.reader
        if self.state.position < 0 and not self._from_snapshot:
            self._from_snapshot = True
            found = snapshots.load(self.backend.snapshots, self.backend.log,
                                   self.workflow.namespace, reader)
            if found is not None:
                self.state.take(found)
        reader.catch_up(self.backend.log, self.state)
        return reader.check(self.state, self.backend.log.name) if check else self.state

    def plan(self, units: Sequence[str] | None = None) -> Plan:
        return only(make_plan(self.workflow, self.refresh(), self.options.accept_drift), units,
                    self.workflow)

    # Running -------------------------------------------------------------------------------

    def run(self, units: Sequence[str] | None = None) -> RunResult:
        """Apply what is pending (only ``units`` if given); on failure compensate, then raise.
        A first signal is told to the observers as it arrives (what the stop will do)."""
        with self.interrupts.heard_by(self._tell):
            return self._run(units)

    def _run(self, units: Sequence[str] | None) -> RunResult:
        # Blockers read without the lock may belong to a runner still at work (its unit is
        # STARTED or FAILED until it finishes or compensates): only the lock can tell, so
        # they are decided under it, after that runner is done.
        plan = self.plan(units)
        if not plan.has_work and not plan.blockers:
            self._tell(UpToDate(len(plan.units)))
            return RunResult(None, None, skipped=len(plan.units))
        check_before_lock(plan, self.workflow.settings.environ)
        with self._locked() as (recorder, lease):
            plan = self.plan(units)  # another runner may have done it while we waited
            _raise_blockers(plan)
            if not plan.has_work:
                self._tell(UpToDate(len(plan.units), after_wait=True))
                return RunResult(None, None, skipped=len(plan.units))
            with self._frame(recorder, lease, self.trigger, plan) as frame:
                self._execute(plan, frame)
            return frame.result

    @contextmanager
    def _locked(self, *, check: bool = True) -> Iterator[tuple[Recorder, Lease]]:
        holder = f"{self.identity.actor.host}:{os.getpid()}:{self.run_id}"
        try:
            lease = self.backend.lock.acquire(holder, self.workflow.lock_timeout, self._waiting)
        except LockTimeoutError as exc:
            raise LockTimeoutError(f"{exc} {self._holder_text()}") from exc
        writer = None
        try:
            writer = self._writer(lease)
            self.refresh(check=check)
            if self.backend.heads is not None:
                self.backend.heads.check(self.backend.log, self.backend.reader, self.state)
            signer = self.backend.signer
            recorder = Recorder(writer, self.state, self.identity, self.backend.reader.codec,
                                self._trace, signer.sign if signer else None,
                                signer.key_id if signer else None, self.observers)
            cut_off = False
            try:
                yield recorder, lease
            except Unavailable:
                cut_off = True  # nothing more can be written, a snapshot neither
                raise
            finally:  # whatever the run's outcome: what it recorded is the log now
                if not cut_off and not lease.lost and not recorder.foreign:
                    self._keep(snapshot=recorder.appended > 0)
        finally:
            if writer is not None:
                writer.close()
            lease.release()

    @contextmanager
    def frame(self, trigger: str, planned: Sequence[str] = (), *,
              check: bool = True) -> Iterator[Frame]:
        """Hold the lock and record a run of ``trigger`` (``mark``, ``undo``, a request's
        answer) around a block; the block records its steps through ``frame.recorder``."""
        with self._locked(check=check) as (recorder, lease), \
                self._frame(recorder, lease, trigger, planned) as frame:
            yield frame

    @contextmanager
    def _frame(self, recorder: Recorder, lease: Lease, trigger: str,
               planned: Plan | Sequence[str]) -> Iterator[Frame]:
        ids = tuple(p.unit.id for p in planned.to_run) if isinstance(planned, Plan) \
            else tuple(planned)
        recorder.record(
            RunStarted(workflow=self.workflow.name, trigger=trigger, planned=ids,
                       requester=self.requester,
                       environment=self.workflow.settings.environment or None,
                       labels=self.workflow.settings.labels),
            LockAcquired(holder=lease.holder, lock=lease.lock, generation=lease.generation))
        frame = Frame(recorder, lease, RunResult(self.run_id, None))
        if isinstance(planned, Plan):
            frame.result.skipped = len(planned.units) - len(ids)
            self._tell(Planned(self.run_id, len(ids), frame.result.skipped))
        result = frame.result
        try:
            try:
                yield frame
            except (LockLostError, AppendError):
                raise  # fenced, or the log refuses writes: nothing more can be recorded
            except Exception as exc:
                result.outcome = result.outcome or RunOutcome.FAILED
                result.error = result.error or ErrorInfo.of(exc)
                self._finish(frame)
                raise
            result.outcome = result.outcome or RunOutcome.SUCCEEDED
            self._finish(frame)
        except LockLostError as exc:  # mid-step, or at the last append (a deferred outcome)
            self._record_lock_lost(frame, str(exc))
            in_doubt = [u.unit_id for u in self.state.units.values()
                        if u.status == UnitStatus.STARTED and u.last_run_id == self.run_id]
            if not in_doubt:
                raise
            raise LockLostError(  # "rerun to continue" is not all: say what the rerun finds
                f"{exc} Unit(s) {', '.join(in_doubt)} had started, and no outcome could be "
                "recorded: the rerun finds them in doubt, and each one's recovery strategy "
                "decides (under manual-intervention, a person checks the target and marks "
                "it; docs/recovery.md).", remedies=exc.remedies) from exc

    def _finish(self, frame: Frame) -> None:
        result = frame.result
        assert result.outcome is not None
        frame.record(
            RunFinished(outcome=result.outcome, applied=tuple(result.applied),
                        error=result.error, not_started=tuple(result.not_started)),
            LockReleased(holder=frame.lease.holder))

    def _keep(self, *, snapshot: bool) -> None:
        """Leave what the log now says for the next start-up: a snapshot (a cache) if this
        run appended, and the head it saw (evidence that the log held it). Failing to is
        only a warning. Neither of a state with findings: both vouch for what they hold."""
        if self.backend.reader.findings(self.state):
            return
        try:
            if snapshot:
                snapshots.save(self.backend.snapshots, self.state, self.workflow.namespace,
                               self.backend.signer)
            if self.backend.heads is not None:
                self.backend.heads.remember(self.state)
            from ..core.evidence import keep_evidence  # loaded by a run that wrote, not a no-op

            keep_evidence(self.backend, self.state)
        except FlamingockError as exc:
            log.warning("not kept for the next start-up: %s", exc)

    def _writer(self, lease: Lease) -> LogWriter:
        """The log's writer. A log its lock says was cut or started over is refused; when
        this runner remembers a head of it too, starting over means forgetting that as well."""
        try:
            return self.backend.log.writer(lease)
        except ChainBrokenError as exc:
            heads = self.backend.heads
            if heads is not None and heads.recalled() is not None:
                exc.remedies = (*exc.remedies, heads.forgetting())
            raise

    def _holder_text(self) -> str:
        try:
            lock = self.backend.reader.catch_up(self.backend.log, self.state).lock
        except Unavailable as exc:  # the wait goes on: the lock decides, not this line
            return f"The holder cannot be read from the audit log right now ({exc})."
        if lock is None:
            return "No holder is recorded in the audit log yet."
        return (f"Held by {lock.holder} (run {lock.run_id}) since {lock.since:%Y-%m-%d %H:%M:%S}"
                " UTC per the audit log.")

    def _waiting(self, seconds: float) -> None:
        if self.interrupts.stop.is_set():
            raise RunInterrupted("stopped while waiting for the lock; nothing was run")
        self._tell(Waiting(seconds, self._holder_text()))

    def _execute(self, plan: Plan, frame: Frame) -> None:
        for drift in plan.drift_to_accept:
            before = drift.previous.checksum if drift.previous else "?"
            frame.record(ManualMark(
                unit_id=drift.unit.id, marked_as=MarkedAs.APPLIED, checksum=drift.unit.checksum,
                reason=f"{DRIFT_ACCEPTED}: {before} -> {drift.unit.checksum}"))
        Execution(self, plan, frame).run()

    def _secrets(self, unit: ChangeUnit, params: dict[str, object]) -> frozenset[str]:
        """Every secret value ``unit``'s step could see: none may reach the log."""
        return secret_values(params, self.workflow.settings.unit_context, secrets=unit.secrets,
                             env=self.workflow.settings.environ)

    def _context(self, unit: ChangeUnit, params: dict[str, object], lease: Lease,
                 step: str) -> ChangeContext:
        """What ``unit``'s ``step`` receives: its parameters, and what fences it at its
        target (the lease to ask, the fencing token, this application's idempotency key)."""
        folded = self.state.units.get(unit.id)
        application = folded.application if folded is not None else 0
        namespace = self.workflow.namespace
        return ChangeContext(
            namespace, self.run_id, unit.id, params, self.workflow.settings.unit_context,
            idempotency_key=idempotency_key(namespace, unit.id, unit.checksum, application,
                                            step),
            fencing=FencingToken(lease.lock, lease.generation, self.run_id, unit.id),
            lease=lease)

    def apply_unit(self, planned: PlannedUnit, frame: Frame, *, inline: bool = True,
                   defer: bool = False) -> tuple[ErrorInfo | None, bool]:
        """Run one unit between its two events: its error, if any, and whether its side
        effect could have started. ``inline``: in the thread signals interrupt. ``defer``:
        a success waits in ``frame.pending`` to share the next append."""
        unit = planned.unit
        params = dict(resolved_parameters(unit, self.workflow.settings.environ))
        attempt = (planned.previous.attempts if planned.previous else 0) + 1
        try:
            frame.record(ChangeStarted(
                unit_id=unit.id, stage=planned.stage, author=unit.author,
                checksum=unit.checksum, template=unit.template,
                parameters=unit.audit_parameters(), attempt=attempt, reason=planned.reason))
        except ForeignRecordError as foreign:  # its start is durable; its step will not run
            frame.record(ChangeFailed(unit_id=unit.id, checksum=unit.checksum,
                                      duration_ms=0.0, error=ErrorInfo.of(foreign),
                                      not_started=True))
            raise
        started = time.perf_counter()
        try:
            context = self._context(unit, params, frame.lease, "apply")
            frame.lease.check()  # the last moment a lost lock can keep the side effect out
            with self._step(unit.id, frame, inline, compensating=False):
                unit.apply(context)
        except StepInterrupted as stop:
            self._interrupted(unit.id, stop, frame, compensating=False)
        except LockLostError:
            raise  # fenced: nothing more can be recorded (the unit is in doubt)
        except StepNotStarted as exc:
            error, ms = failure(exc, self._secrets(unit, params), unit.id), _ms(started)
            frame.record(ChangeFailed(unit_id=unit.id, checksum=unit.checksum,
                                      duration_ms=ms, error=error, not_started=True))
            return error, False
        except Exception as exc:
            error, ms = failure(exc, self._secrets(unit, params), unit.id), _ms(started)
            frame.record(ChangeFailed(unit_id=unit.id, checksum=unit.checksum,
                                      duration_ms=ms, error=error))
            return error, True
        success = ChangeSucceeded(unit_id=unit.id, checksum=unit.checksum,
                                  duration_ms=_ms(started))
        if defer:
            frame.pending.append(success)
            return None, True
        try:
            frame.record(success)
        except ForeignRecordError:  # its success is durable all the same
            frame.result.applied.append(unit.id)
            raise
        except Unavailable as exc:
            raise AppendError(
                f"unit {unit.id!r} was applied (its step returned), but its success could not "
                f"be recorded: {exc} This runner may have been cut off from the bus long "
                "enough to lose the lock. The unit stays in doubt (started, no outcome "
                "recorded) until an operator checks its target system and marks it; "
                "`flamingock-es status` shows it once the bus answers.") from exc
        return None, True

    def check_precondition(self, planned: PlannedUnit,
                           frame: Frame) -> tuple[bool, str, ErrorInfo | None]:
        """Run ``planned``'s precondition: whether it holds, in words, and the error of a
        check that could not be made (which holds nothing)."""
        unit = planned.unit
        assert unit.precondition is not None
        params = dict(resolved_parameters(unit, self.workflow.settings.environ))
        try:
            value = unit.precondition(self._context(unit, params, frame.lease, "precondition"))
        except Exception as exc:
            error = failure(exc, self._secrets(unit, params), unit.id, "precondition")
            return False, f"the check raised {error.type}: {error.message}", error
        return bool(value), "it holds" if value else f"the check returned {value!r}", None

    def _step(self, unit_id: str, frame: Frame, inline: bool, *,
              compensating: bool) -> AbstractContextManager[None]:
        """Where signals may interrupt ``unit_id``'s step: in the calling thread only (a
        step in a worker thread is ended with the process, by the execution)."""
        if not inline:
            return nullcontext()
        return self.interrupts.step(unit_id, self._on_stuck(unit_id, frame,
                                                            compensating=compensating))

    def _interrupted(self, unit_id: str, stop: StepInterrupted, frame: Frame, *,
                     compensating: bool) -> None:
        """Record that a signal cut ``unit_id``'s step short (it is in doubt); end the run."""
        frame.record(ChangeInterrupted(unit_id=unit_id, signal=stop.signal_name,
                                       reason=stop.reason, compensating=compensating))
        step = "rollback" if compensating else "apply"
        frame.result.error = ErrorInfo(type="Interrupted", message=(
            f"{stop.signal_name}: the {step} of {unit_id} was interrupted ({stop.reason}); it "
            "is in doubt"))
        raise RunInterrupted(f"{frame.result.error.message}; its status says how to resolve it.",
                             stop.signal_name)

    def _on_stuck(self, unit_id: str, frame: Frame, *,
                  compensating: bool) -> Callable[[StepInterrupted], None]:
        """What the signals' watchdog records, from its own thread, when ``unit_id``'s step
        was interrupted and never returned to Python: the interruption, the run's end, and
        the lock released (the process ends right after)."""
        def record(stop: StepInterrupted) -> None:
            with suppress(RunInterrupted):
                self._interrupted(unit_id, stop, frame, compensating=compensating)
            frame.result.outcome = RunOutcome.FAILED
            frame.result.not_started = frame.left()
            self._finish(frame)
            frame.lease.release()

        return record

    def compensate_run(self, failed: Sequence[tuple[PlannedUnit, ErrorInfo, bool]],
                       ran: Sequence[str], frame: Frame) -> RunOutcome:
        """Roll back each failed unit whose side effect may have started, then (by default)
        the units this run applied (``ran``), dependents before what they require."""
        targets: list[tuple[ChangeUnit, str, ErrorInfo | None]] = [
            (planned.unit, f"its apply failed: {error}", error)
            for planned, error, started in failed if started]
        if self.workflow.compensate is CompensationScope.RUN:
            first = failed[0][0].unit.id
            targets += [(unit, f"unit {first!r} failed later in run {self.run_id}", None)
                        for uid in self.workflow.graph.compensation_order(ran)
                        if (unit := self.workflow.unit(uid)) is not None]
        all_ok = True
        for unit, reason, original in targets:
            frame.lease.check()
            all_ok = self._compensate(unit, reason, frame, original) and all_ok
        return RunOutcome.ROLLED_BACK if all_ok else RunOutcome.FAILED

    def compensate_failed(self, planned: PlannedUnit, error: ErrorInfo, frame: Frame, *,
                          inline: bool) -> bool:
        """Roll back one failed unit's own partial effect (``on_failure: isolate``)."""
        return self._compensate(planned.unit, f"its apply failed: {error}", frame, error,
                                inline=inline)

    def _compensate(self, unit: ChangeUnit, reason: str, frame: Frame,
                    original: ErrorInfo | None, *, inline: bool = True) -> bool:
        if unit.rollback is None:
            self._tell(NoRollback(unit.id))
            return False
        if not self.compensate_unit(unit, reason, frame, original, inline=inline):
            return False
        frame.result.compensated.append(unit.id)
        return True

    def failure_message(self, failed: Sequence[tuple[PlannedUnit, ErrorInfo, bool]],
                        result: RunResult, skipped: Sequence[str] = ()) -> str:
        """What the run says when units failed: which, why, and what became of the rest."""
        said = "; ".join(f"{planned.unit.id!r} failed: {error}" for planned, error, _ in failed)
        if result.outcome is RunOutcome.PARTIAL:
            rest = f"; skipped what requires it: {', '.join(skipped)}" if skipped else ""
            done = ", ".join(result.applied) or "nothing"
            return (f"unit {said}{rest}; applied {done}. The run is PARTIAL (on_failure: "
                    "isolate): what does not depend on the failure is applied")
        return f"unit {said}" + _compensation_summary(result)

    @staticmethod
    def failure_remedies(result: RunResult) -> tuple[Remedy, ...]:
        return () if result.outcome is RunOutcome.ROLLED_BACK else (Remedy(RemedyKind.STATUS),)

    def compensate_unit(self, unit: ChangeUnit, reason: str, frame: Frame,
                        original: ErrorInfo | None = None, *, inline: bool = True) -> bool:
        """Run ``unit``'s rollback between two audit events; True if it succeeded."""
        assert unit.rollback is not None
        params = dict(resolved_parameters(unit, self.workflow.settings.environ))
        frame.record(CompensationStarted(unit_id=unit.id, reason=reason))
        started = time.perf_counter()
        try:
            context = self._context(unit, params, frame.lease, "rollback")
            frame.lease.check()
            with self._step(unit.id, frame, inline, compensating=True):
                unit.rollback(context)
        except StepInterrupted as stop:
            self._interrupted(unit.id, stop, frame, compensating=True)
        except LockLostError:
            raise
        except Exception as exc:
            rollback_error = failure(exc, self._secrets(unit, params), unit.id, "rollback")
            ms = _ms(started)
            frame.record(CompensationFailed(unit_id=unit.id, duration_ms=ms,
                                            error=rollback_error, original_error=original))
            return False
        frame.record(CompensationSucceeded(unit_id=unit.id, duration_ms=_ms(started)))
        return True

    # Runs that apply nothing new ---------------------------------------------------------

    def undo(self, scope: UndoScope | str) -> RunResult:
        """Compensate the applied units in ``scope`` (after a unit id, the newest N, or all),
        newest first; the first rollback that fails ends it (``result.error`` says which)."""
        scope = UndoScope(to=scope) if isinstance(scope, str) else scope
        targets = undo_targets(self.workflow, self.refresh(), scope)
        if not targets:
            return RunResult(None, None)
        with self.frame("undo", [unit.id for unit in targets]) as frame:
            for index, unit in enumerate(targets):
                if not self.compensate_unit(unit, f"undo of {scope.describe()}", frame):
                    error = (self.state.units[unit.id].rollback_error
                             or ErrorInfo(type="RollbackFailed", message="no detail"))
                    frame.result.outcome = RunOutcome.FAILED
                    frame.result.error = ErrorInfo(
                        type=error.type, message=f"the rollback of {unit.id} failed: "
                                                 f"{error.message}")
                    frame.result.not_started = [u.id for u in targets[index + 1:]]
                    break
                frame.result.compensated.append(unit.id)
        return frame.result

    def mark(self, unit_id: str, marked_as: MarkedAs, reason: str,
             seen: int | None = None) -> None:
        """Record a person's decision about a unit, under the lock, if the unit's history is
        still what they saw: its last event at position ``seen`` (default: where it is as
        this call starts, before it may wait for the lock)."""
        unit = self.workflow.unit(unit_id)
        before = self.refresh().units.get(unit_id)
        if unit is None and before is None:
            raise ConfigError(f"unit {unit_id!r} is neither in workflow {self.workflow.name!r} "
                              "nor in the audit log")
        expected = seen if seen is not None else (before.position if before else -1)
        was = _describe(before)  # the fold updates it in place: keep what it was now
        checksum = unit.checksum if unit is not None and marked_as is MarkedAs.APPLIED else None
        with self._locked() as (recorder, lease):
            now = self.state.units.get(unit_id)
            if (now.position if now else -1) != expected:
                raise ChangedMeanwhileError(
                    f"unit {unit_id!r} changed since it was looked at (offset {expected}): it "
                    f"is now {_describe(now)}; it was {was} when this mark started. Nothing was"
                    " recorded; look at its status again and decide on what is there now.",
                    remedies=(Remedy(RemedyKind.STATUS),))
            with self._frame(recorder, lease, "mark", [unit_id]):
                recorder.record(ManualMark(unit_id=unit_id, marked_as=marked_as,
                                           reason=reason, checksum=checksum))

    def tag(self, name: str, reason: str) -> Tag:
        """Name the log's head ``name``, with the units applied there (in workflow order), under
        the lock: ``run --to-tag`` applies up to it, ``undo --to-tag`` compensates back to it."""
        _refuse_tag(self.refresh(), name)  # before waiting for the lock
        with self._locked() as (recorder, lease):
            state = self.state
            _refuse_tag(state, name)  # another runner may have taken the name meanwhile
            applied = tuple(u.id for _, u in self.workflow.units()
                            if (s := state.units.get(u.id)) is not None and s.status.is_applied)
            with self._frame(recorder, lease, "tag", []):
                recorder.record(TagRecorded(name=name, through=state.position,
                                            applied=applied, reason=reason))
        return self.state.tags[name]

    def answer(self, outcome: RunOutcome, error: ErrorInfo | None = None) -> None:
        """Record, under the lock, a run that applies nothing: how a request is answered
        when it is rejected or finds nothing to do."""
        with self.frame(self.trigger) as frame:
            frame.result.outcome, frame.result.error = outcome, error

    def quarantine(self, position: int, reason: str,
                   through: int | None = None) -> list[Finding]:
        """Record an operator's decision that the records the readers refuse at ``position``
        (through ``through``: a range) are not part of the history: one decision per record,
        each named. Only findings are excluded; a record that is fine in the range stays.

        The decision's own events chain around what it excludes, as every reader will read
        the log once it is recorded; findings after the range stay findings."""
        through = position if through is None else through
        self._findings_in(position, through, self.refresh(check=False))
        with self._locked(check=False) as (recorder, lease):
            chosen = self._excluded(position, through)
            stored = {at: data for at, data in self.backend.log.read(position) if at <= through}
            with self._frame(recorder, lease, "quarantine", ()):
                recorder.record(*(RecordQuarantined(
                    position=f.position,
                    record_sha256=hashlib.sha256(stored.get(f.position, b"")).hexdigest(),
                    finding=f"{f.kind}: {f.reason}", reason=reason) for f in chosen))
        return chosen

    def _excluded(self, position: int, through: int) -> list[Finding]:
        """The findings of ``position..through``, the state folded again without them: a
        break that only a foreign record before it caused goes with that record."""
        chosen: list[Finding] = []
        while found := [f for f in self._findings_in(position, through, self.state,
                                                     required=not chosen)
                        if f.position not in {c.position for c in chosen}]:
            first = [f for f in found if f.kind != "break"] or found
            chosen += first
            self.backend.reader.refold(self.backend.log, self.state,
                                       exclude=frozenset(f.position for f in chosen))
            self.backend.reader.settle(self.state)
        return sorted(chosen, key=lambda f: f.position)

    def _findings_in(self, position: int, through: int, state: State, *,
                     required: bool = True) -> list[Finding]:
        findings = self.backend.reader.findings(state)
        found = [f for f in findings if position <= f.position <= through]
        if not found and required:
            listed = ", ".join(str(f.position) for f in findings[:10]) or "none"
            where = f"offset {position}" if through == position else \
                f"offsets {position}..{through}"
            raise ConfigError(f"{where}: no record the readers refuse there (findings at: "
                              f"{listed}); quarantine only excludes those.",
                              remedies=(Remedy(RemedyKind.VERIFY),))
        return found

    def vouch(self, through: int, reason: str) -> int:
        """Record an operator's decision that the unsigned history up to ``through`` (the
        log's head, as they saw it) is authentic; this run's signature then covers it.
        Returns how many unsigned events it vouched for."""
        if self.backend.signer is None or self.backend.trust is None:
            raise ConfigError("vouch needs a trust store and a signing key: its signature is "
                              "what covers the history")
        with self._locked(check=False) as (recorder, lease):
            state = self.state
            findings = state.findings(signatures=True)
            other = [f for f in findings if f.kind != "unsigned"]
            if other:
                raise ConfigError(f"offset {other[0].position} is {other[0].kind}: "
                                  f"{other[0].reason}. Only unsigned, intact history can be "
                                  "vouched for; quarantine or restore the rest first.")
            if through != state.position:
                raise ChangedMeanwhileError(
                    f"the log's head is at offset {state.position}, not {through}: it changed "
                    "since you looked. Check it again, then vouch through its head.",
                    remedies=(Remedy(RemedyKind.VERIFY),
                              Remedy(RemedyKind.VOUCH, position=state.position)))
            with self._frame(recorder, lease, "vouch", ()):
                recorder.record(HistoryVouched(through=through, head=state.head_hash,
                                               unsigned=len(findings), reason=reason))
        return len(findings)

    def _record_lock_lost(self, frame: Frame, why: str) -> None:
        # Usually refused (a fenced writer cannot append): best effort, never masks the loss.
        with suppress(FlamingockError):
            frame.record(LockLost(holder=frame.lease.holder, reason=why))
        self._tell(LockGone(why))


def check_before_lock(plan: Plan, environ: Mapping[str, str] = os.environ) -> None:
    """What ``run`` checks before it takes the lock (``plan --check`` checks the same): every
    ``${VAR}`` of a unit to run resolves from ``environ`` (a tenant's settings add its
    values) and every parameter fits its template (a ``python-call`` target can be found),
    or nothing starts."""
    for planned in plan.to_run:
        params = resolved_parameters(planned.unit, environ)
        if planned.unit.check is not None:
            planned.unit.check(params)


def _describe(unit: UnitState | None) -> str:
    if unit is None:
        return "never run"
    return f"{unit.status.value} (offset {unit.position}, run {unit.last_run_id})"


def _raise_blockers(plan: Plan) -> None:
    if not plan.blockers:
        return
    blocker = plan.blockers[0]
    more = f" (and {len(plan.blockers) - 1} more: each unit's status says how)" \
        if len(plan.blockers) > 1 else ""
    error = ChecksumDriftError if blocker.kind == "drift" else ManualInterventionRequired
    extra = (Remedy(RemedyKind.STATUS),) if more else ()
    raise error(f"{blocker.message}{more}", remedies=(*blocker.remedies, *extra))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _compensation_summary(result: RunResult) -> str:
    if result.outcome is RunOutcome.ROLLED_BACK:
        done = ", ".join(result.compensated) or "nothing (it never started)"
        return f"; compensated {done}: no partial state is left"
    return (f"; compensated {', '.join(result.compensated) or 'nothing'}, but not everything "
            "could be rolled back")


def _refuse_tag(state: State, name: str) -> None:
    refused = new_tag_refusal(state, name)
    if refused is not None:
        raise refused
