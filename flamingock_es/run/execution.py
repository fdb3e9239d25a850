"""Carrying out a plan under the lock: the workflow's graph, each unit handed out once what
it requires is applied, up to ``max_parallel`` at once.

The order is the graph's (:class:`~flamingock_es.definition.graph.Scheduler`, on
``graphlib``): with ``max_parallel: 1`` and no ``requires`` against the listed order, exactly
the order of the stages and ``order``s, one unit after another in the calling thread, as
before graphs. With more, units run side by side in worker threads; the audit stays one
totally ordered log (the recorder appends one batch at a time) and every unit's
``ChangeStarted`` is durable before its step runs.

One unit after another, the outcome of a unit and the start of the next share one durable
append (one fsync, one transaction, instead of two), still before the next step begins.

Before its step, a unit's ``when:`` is evaluated (false: ``ChangeSkipped``, and every unit
that requires it is skipped too), then its precondition is checked (``PreconditionChecked``;
``on_fail`` decides: halt the run, skip the unit, or count it as applied). A failure
(``on_failure: stop``, the default) starts nothing more: what is running finishes, then the
failed unit and what this run applied are compensated, dependents before what they
require. ``on_failure: isolate`` skips only what depends on the failed unit and lets the rest
finish: the run is ``PARTIAL``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Protocol

from ..core.events import (
    ChangeInterrupted,
    ChangeSkipped,
    ErrorInfo,
    LockReleased,
    PreconditionChecked,
    RunFinished,
    RunOutcome,
    SkipCause,
)
from ..core.recorder import Observer
from ..core.state import State
from ..definition.conditions import ConditionError, Outcome, Variables
from ..definition.workflow import Workflow
from ..errors import Remedy, RunInterrupted, UnitFailedError
from .frame import Frame
from .planner import Plan, PlannedUnit
from .results import RunResult
from .signals import STUCK_AFTER, Interrupts, exit_code

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["Execution", "Steps"]

Failure = tuple[PlannedUnit, ErrorInfo, bool]
"""A unit that failed, its error, and whether its side effect could have started."""

_POLL = 0.05
"""How often the waiting thread looks at the signals while units run side by side."""


class Steps(Protocol):
    """What an execution asks of the runner: one unit's step between its events, and the
    compensations (:class:`~flamingock_es.run.runner.Runner` is one)."""

    workflow: Workflow
    state: State
    interrupts: Interrupts
    observers: list[Observer]

    def apply_unit(self, planned: PlannedUnit, frame: Frame, *, inline: bool = True,
                   defer: bool = False) -> tuple[ErrorInfo | None, bool]: ...

    def check_precondition(self, planned: PlannedUnit,
                           frame: Frame) -> tuple[bool, str, ErrorInfo | None]: ...

    def compensate_failed(self, planned: PlannedUnit, error: ErrorInfo, frame: Frame, *,
                          inline: bool) -> bool: ...

    def compensate_run(self, failed: Sequence[Failure], ran: Sequence[str],
                       frame: Frame) -> RunOutcome: ...

    def failure_message(self, failed: Sequence[Failure], result: RunResult,
                        skipped: Sequence[str] = ()) -> str: ...

    def failure_remedies(self, result: RunResult) -> tuple[Remedy, ...]: ...


class Execution:
    """One plan carried out in one frame (see the module's docstring)."""

    def __init__(self, runner: Steps, plan: Plan, frame: Frame) -> None:
        self.runner, self.plan, self.frame = runner, plan, frame
        frame.left = self.not_started
        workflow = runner.workflow
        self.to_run: dict[str, PlannedUnit] = {p.unit.id: p for p in plan.to_run}
        self.parallel = workflow.max_parallel
        limits = {index: stage.max_parallel for index, stage in enumerate(workflow.stages)
                  if stage.max_parallel}
        self.isolate = workflow.settings.on_failure == "isolate"
        self.scheduler = workflow.graph.scheduler(
            max_parallel=self.parallel, stage_max_parallel=limits,
            on_failure="isolate" if self.isolate else "stop")
        self.this_run: dict[str, Outcome] = {}
        """What became of each unit this run has looked at: RUNNING, APPLIED, SKIPPED, FAILED."""
        self.failed: list[Failure] = []
        """Each unit that failed: its error, and whether its side effect could have started."""
        self.skipped: list[str] = []
        self.left_by_failures: list[str] = []
        """What ``isolate`` skipped because it requires a unit that failed."""
        self.ran: list[str] = []
        """The units whose step this run applied, in the order they finished: what a
        failure compensates (a unit counted as applied by its precondition did nothing)."""
        self.stopped = False
        self._mutex = threading.Lock()

    # The loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Carry out the plan; raise as the run ends otherwise than SUCCEEDED."""
        result = self.frame.result
        try:
            if self.parallel == 1:
                self._one_at_a_time()
            else:
                self._side_by_side()
        finally:
            result.not_started = self.not_started()
        self._end()

    def _one_at_a_time(self) -> None:
        """Each unit in the calling thread, whose signals can interrupt it."""
        while self.scheduler.is_active() and not self.stopped:
            ready = self.scheduler.get_ready()
            if not ready:  # nothing left that may start (all the rest waits on a failure)
                break
            for unit_id in ready:
                if self.stopped:
                    break
                self._hand_out(unit_id, None)

    def _side_by_side(self) -> None:
        """Units in worker threads, the calling thread waiting for them and for signals."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait  # if parallel

        running: dict[Future[None], str] = {}
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="flamingock-unit") as pool:
            try:
                while True:
                    ready = () if self.stopped else self.scheduler.get_ready()
                    for unit_id in ready:
                        self._hand_out(unit_id, (pool, running))
                    if not running:
                        if self.stopped or not ready or not self.scheduler.is_active():
                            return
                        continue
                    done, _ = wait(running, timeout=_POLL, return_when=FIRST_COMPLETED)
                    for future in done:
                        running.pop(future)
                        future.result()  # a unit's own failure was reported; this is worse
                    self._watch_signals(running)
            finally:
                if running:  # a lost lock or the log refusing: let the others end first
                    wait(running)

    def _watch_signals(self, running: Mapping[Future[None], str]) -> None:
        interrupts = self.runner.interrupts
        if interrupts.stop.is_set():
            self.stopped = True
        if interrupts.forced is not None and running:
            self._abandon(list(running.values()))

    def _hand_out(self, unit_id: str, pool: tuple[ThreadPoolExecutor,
                                                  dict[Future[None], str]] | None) -> None:
        """Decide about one ready unit: skip it, or start it (here, or in the pool)."""
        planned = self.to_run.get(unit_id)
        if planned is None:
            self._not_in_this_run(unit_id)
            return
        self.frame.lease.check()
        if self.runner.interrupts.stop.is_set():  # a stop on request: start nothing new
            self.stopped = True
            return
        if not self._condition_holds(planned):
            return
        with self._mutex:
            self.this_run[unit_id] = Outcome.RUNNING
        if pool is None:
            self._carry_out(planned, inline=True)
        else:
            executor, running = pool
            running[executor.submit(self._carry_out, planned, inline=False)] = unit_id

    def _not_in_this_run(self, unit_id: str) -> None:
        """A unit the plan does not run: applied already (what requires it may go), or
        pending and left out of this run (what requires it waits)."""
        state = self.runner.state.units.get(unit_id)
        if state is not None and state.status.is_applied:
            self.scheduler.done(unit_id)
            return
        self._skip_dependents(self.scheduler.skip(unit_id), unit_id, "is not applied and not "
                              "part of this run")

    # One unit ------------------------------------------------------------------------------

    def _condition_holds(self, planned: PlannedUnit) -> bool:
        unit = planned.unit
        condition = self.runner.workflow.conditions.get(unit.id)
        if condition is None:
            return True
        try:
            holds = condition.evaluate(self._variables(condition.unit_refs))
        except ConditionError as exc:  # decided by nothing: the unit fails, not started
            self._fail(planned, ErrorInfo(type="ConditionError", message=str(exc)),
                       started=False, what="could not decide its condition")
            return False
        if not holds:
            self._skip(planned, SkipCause.CONDITION, condition.false_reason)
        return holds

    def _fail(self, planned: PlannedUnit, error: ErrorInfo, *, started: bool,
              what: str = "failed") -> None:
        """``planned`` failed (``started``: its side effect may have begun). Under ``stop``
        nothing more starts; under ``isolate`` what requires it is skipped and its own
        partial effect undone, within itself."""
        with self._mutex:
            self.this_run[planned.unit.id] = Outcome.FAILED
            self.failed.append((planned, error, started))
            skipped = self.scheduler.failed(planned.unit.id)
        if not self.isolate:
            self.stopped = True
            return
        self._skip_dependents(skipped, planned.unit.id, what)
        self.left_by_failures += [uid for uid in skipped if uid in self.to_run]
        if started:
            self.runner.compensate_failed(planned, error, self.frame,
                                          inline=threading.current_thread() is
                                          threading.main_thread())

    def _variables(self, refs: frozenset[str] | None) -> Variables:
        settings = self.runner.workflow.settings
        ids = refs if refs is not None else self.runner.workflow.graph.ids
        return Variables(settings.environment, settings.labels, settings.unit_settings,
                         {uid: self._outcome(uid) for uid in ids})

    def _outcome(self, unit_id: str) -> str:
        with self._mutex:
            now = self.this_run.get(unit_id)
        if now is not None:
            return now.value
        state = self.runner.state.units.get(unit_id)
        return Outcome.from_status(state.status.value if state else None).value

    def _carry_out(self, planned: PlannedUnit, *, inline: bool) -> None:
        """Precondition, step, outcome: what becomes of one started unit."""
        if planned.unit.precondition is not None and not self._precondition(planned, inline):
            return
        error, started = self.runner.apply_unit(planned, self.frame, inline=inline,
                                                defer=inline)
        if error is not None:
            self._fail(planned, error, started=started)
            return
        with self._mutex:
            self.this_run[planned.unit.id] = Outcome.APPLIED
            self.frame.result.applied.append(planned.unit.id)
            self.ran.append(planned.unit.id)
            self.scheduler.done(planned.unit.id)

    def _precondition(self, planned: PlannedUnit, inline: bool) -> bool:
        """Check the unit's precondition; True if its step may run."""
        unit = planned.unit
        holds, detail, error = self.runner.check_precondition(planned, self.frame)
        on_fail = "halt" if error is not None else unit.on_fail  # a check that broke decides
        self.frame.record(PreconditionChecked(unit_id=unit.id, holds=holds, on_fail=on_fail,
                                              detail=detail))
        if holds:
            return True
        if on_fail == "halt":
            self._fail(planned, error or ErrorInfo(
                type="PreconditionFailed", message=f"the precondition of {unit.id} does not "
                f"hold ({detail}); on_fail: halt"), started=False,
                what="failed its precondition")
            return False
        marked = on_fail == "mark-applied"
        self._skip(planned, SkipCause.PRECONDITION,
                   f"precondition does not hold ({detail}); on_fail: {on_fail}",
                   marked_applied=marked)
        return False

    def _skip(self, planned: PlannedUnit, cause: SkipCause, reason: str, *,
              marked_applied: bool = False) -> None:
        unit = planned.unit
        self.frame.record(ChangeSkipped(unit_id=unit.id, stage=planned.stage,
                                        checksum=unit.checksum, cause=cause, reason=reason,
                                        marked_applied=marked_applied))
        with self._mutex:
            if marked_applied:
                self.this_run[unit.id] = Outcome.APPLIED
                self.frame.result.applied.append(unit.id)
                self.scheduler.done(unit.id)
                return
            self.this_run[unit.id] = Outcome.SKIPPED
            self.skipped.append(unit.id)
            dependents = self.scheduler.skip(unit.id)
        self._skip_dependents(dependents, unit.id, "was skipped")

    def _skip_dependents(self, dependents: tuple[str, ...], cause: str, what: str) -> None:
        """Record why each unit of this run that requires ``cause`` does not run."""
        for unit_id in dependents:
            planned = self.to_run.get(unit_id)
            if planned is None:
                continue
            self.frame.record(ChangeSkipped(
                unit_id=unit_id, stage=planned.stage, checksum=planned.unit.checksum,
                cause=SkipCause.DEPENDENCY, reason=f"requires {cause}, which {what}"))
            with self._mutex:
                self.this_run[unit_id] = Outcome.SKIPPED
                self.skipped.append(unit_id)

    # The end -------------------------------------------------------------------------------

    def _end(self) -> None:
        """The run's outcome: compensate after a failure (``stop``), say what was left."""
        result, runner = self.frame.result, self.runner
        if self.failed and not self.isolate:
            result.error = self.failed[0][1]
            result.outcome = runner.compensate_run(self.failed, self.ran, self.frame)
            raise UnitFailedError(runner.failure_message(self.failed, result),
                                  remedies=runner.failure_remedies(result))
        if self.failed:
            result.outcome, result.error = RunOutcome.PARTIAL, self.failed[0][1]
            raise UnitFailedError(
                runner.failure_message(self.failed, result, self.left_by_failures),
                remedies=runner.failure_remedies(result))
        if self.stopped and result.not_started:
            interrupts = runner.interrupts
            result.outcome = RunOutcome.STOPPED
            result.error = ErrorInfo(type="Interrupted", message=(
                f"stopped on request ({interrupts.first or 'stop'}) after "
                f"{len(result.applied)} unit(s); {len(result.not_started)} not started"))
            raise RunInterrupted(f"{result.error.message}; the next run applies them")

    def not_started(self) -> list[str]:
        """The units of the plan this run has not looked at (yet)."""
        with self._mutex:
            return [uid for uid in self.to_run if uid not in self.this_run]

    def _abandon(self, running: list[str]) -> None:
        """No more grace, and units still run in other threads, which a signal cannot
        interrupt: record each as interrupted (in doubt), end the run, release the lock, end
        the process as the signal would. Nothing those threads do afterwards is recorded."""
        interrupts = self.runner.interrupts
        frame = self.frame
        stuck = threading.Event()
        stuck.wait(min(STUCK_AFTER, 1.0))  # a step about to return may still record itself
        with self._mutex:
            still = [uid for uid in running if self.this_run.get(uid) is Outcome.RUNNING]
        name = interrupts.first or "SIGTERM"
        reason = interrupts.forced or "stopped"
        result = frame.result
        result.outcome = RunOutcome.FAILED
        result.error = ErrorInfo(type="Interrupted", message=(
            f"{name}: {', '.join(still)} interrupted ({reason}); in doubt"))
        with suppress(Exception):
            frame.close(*(ChangeInterrupted(unit_id=uid, signal=name, reason=reason,
                                            compensating=False) for uid in still),
                        RunFinished(outcome=result.outcome, applied=tuple(result.applied),
                                    error=result.error,
                                    not_started=tuple(self.not_started())),
                        LockReleased(holder=frame.lease.holder))
        with suppress(Exception):
            frame.lease.release()
        for observer in self.runner.observers:
            with suppress(Exception):
                observer.close()
        os._exit(exit_code(name))
