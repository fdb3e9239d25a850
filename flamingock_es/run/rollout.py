"""A rollout: one workflow applied to its tenants in waves, a canary first, under a budget.

The coordinator holds the lock of the workflow's rollout namespace (``NAMESPACE._rollouts``:
a tenant id cannot start with ``_``, so no tenant's namespace is it) for as long as it works,
and records every decision there as an audit event, through the runner's own frame and
recorder, signed like any other: the rollout and its waves (``RolloutStarted``,
``WavePublished``), each tenant's result as it arrives (``TenantFinished``), each wave's
budget check, a stop, a resumption, the end. The one fold turns them into
:class:`~flamingock_es.core.state.RolloutState`, so a coordinator started again after one
was killed reads where that one was and goes on with the tenants that have no result: a
tenant with a result is never run again.

Each tenant is its own namespace: who applies it (this process, or a fleet of ``serve``
workers) takes that tenant's lock, and a failed tenant is compensated within itself. The
coordinator only hands a wave's tenants to an :data:`Apply` and records what comes back.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..core.events import (
    ROLLOUT_TRIGGER,
    BudgetChecked,
    ErrorInfo,
    RolloutFinished,
    RolloutResumed,
    RolloutStarted,
    RolloutStopped,
    TenantFinished,
    WavePublished,
)
from ..core.ports import Fleet, FleetMember, FleetResult
from ..core.recorder import Recorder, new_run_id
from ..core.state import RolloutState, RolloutStatus, State
from ..errors import (
    ConfigError,
    DecisionRequired,
    FlamingockError,
    Remedy,
    RemedyKind,
    retryable,
)

__all__ = [
    "ROLLOUT_NAMESPACE_SUFFIX",
    "UP_TO_DATE",
    "Apply",
    "Budget",
    "RolloutOptions",
    "RolloutStoppedError",
    "TenantOutcome",
    "by_fleet",
    "coordinate",
    "parse_budget",
    "plan_waves",
    "rollout_namespace",
    "rollout_trigger",
    "sequential",
    "work",
]

ROLLOUT_NAMESPACE_SUFFIX = "._rollouts"
UP_TO_DATE = "UP_TO_DATE"
"""A tenant's result when its run had nothing to apply (it counts as a success)."""
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_COUNT = re.compile(r"^\s*(\d+)\s*$")


def rollout_namespace(namespace: str) -> str:
    """Where the rollouts of the workflow whose namespace is ``namespace`` are recorded."""
    return namespace + ROLLOUT_NAMESPACE_SUFFIX


def rollout_trigger(rollout_id: str) -> str:
    """The trigger a tenant's run in rollout ``rollout_id`` records in its ``RunStarted``."""
    return f"{ROLLOUT_TRIGGER}{rollout_id}"


@dataclass(frozen=True)
class Budget:
    """How many failed tenants a wave may have: a count, or a share of the wave."""

    text: str
    count: int | None = None
    percent: float | None = None

    def allowed(self, size: int) -> int:
        """The failures a wave of ``size`` tenants may have (a share rounds down: 2% of 10
        tenants is none)."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(size * self.percent / 100 + 1e-9)


def parse_budget(text: str) -> Budget:
    """``2`` (tenants) or ``2%`` (of each wave), or a :class:`ConfigError` saying so."""
    if (share := _SHARE.match(text)) is not None:
        percent = float(share.group(1))
        if percent <= 100:
            return Budget(text.strip(), percent=percent)
    elif (count := _COUNT.match(text)) is not None:
        return Budget(text.strip(), count=int(count.group(1)))
    raise ConfigError(f"--max-failures {text!r} does not parse: give a number of tenants "
                      "(2) or a share of each wave from 0% to 100% (2%). Nothing was started.")


def _size(text: str, total: int, what: str) -> int:
    """A size given as a count (``10``) or a share of ``total`` (``25%``, rounded up)."""
    if (share := _SHARE.match(text)) is not None and 0 < float(share.group(1)) <= 100:
        return max(1, math.ceil(total * float(share.group(1)) / 100 - 1e-9))
    if (count := _COUNT.match(text)) is not None and int(count.group(1)) > 0:
        return int(count.group(1))
    raise ConfigError(f"{what} {text!r} does not parse: give a number of tenants (10) or a "
                      "share of them above 0% (25%). Nothing was started.")


def plan_waves(tenants: Sequence[str], canary: str | None, wave_size: str | None
               ) -> list[tuple[str, ...]]:
    """The waves of a rollout, in order: the canary (``acme,globex``: those tenants; ``3``:
    the first three; ``None``: the first one), then the others in waves of ``wave_size``
    (``10`` tenants, or ``25%`` of all the tenants; ``None``: all of them at once)."""
    if canary is not None and _COUNT.match(canary) is None:
        named = [t.strip() for t in canary.split(",") if t.strip()]
        unknown = [t for t in named if t not in tenants]
        if unknown or not named:
            raise ConfigError(f"--canary {canary!r}: {', '.join(unknown) or 'no tenant'} "
                              f"{'is' if len(unknown) == 1 else 'are'} not among the "
                              f"{len(tenants)} tenant(s) of the workflow. Nothing was started.",
                              remedies=(Remedy(RemedyKind.TENANT),))
        first = tuple(dict.fromkeys(named))
    else:
        first = tuple(tenants[:_size(canary or "1", len(tenants), "--canary")])
    rest = [t for t in tenants if t not in set(first)]
    size = _size(wave_size, len(tenants), "--wave") if wave_size else max(1, len(rest))
    return [first, *(tuple(rest[i:i + size]) for i in range(0, len(rest), size))]


@dataclass(frozen=True)
class TenantOutcome:
    """How one tenant's run ended: a run outcome's value (or :data:`UP_TO_DATE`, or what
    stopped it before it could run: ``BLOCKED``), its run id there, its error."""

    tenant: str
    result: str
    run_id: str | None = None
    error: ErrorInfo | None = None


Apply = Callable[[str, int, Sequence[str]], Iterable[TenantOutcome]]
"""Applies the workflow to the tenants of one wave (the rollout id, the wave, its tenants
that have no result yet) and yields each one's outcome as it ends, in any order."""


@dataclass(frozen=True)
class RolloutOptions:
    """What ``rollout`` is asked: a new rollout's shape, or which one to go on with."""

    reason: str
    rollout_id: str | None = None
    canary: str | None = None
    wave_size: str | None = None
    max_failures: str = "0"
    past_budget: bool = False
    """Go on with a rollout its budget stopped (a person's decision, with ``reason``)."""


class RolloutStoppedError(DecisionRequired):
    """The rollout asked for stopped on its budget: a person decides whether it goes on."""


def coordinate(recorder: Recorder, state: State, workflow: str, tenants: Sequence[str],
               options: RolloutOptions, apply: Apply,
               tell: Callable[[str], None] = lambda line: None) -> RolloutState:
    """Start or resume a rollout, recording each decision through ``recorder`` (the
    rollout namespace's, under its lock; ``state`` is what it folds into), and run its waves
    until one exceeds its budget or all are done. Returns the rollout as the log now says."""
    rollout = _start_or_resume(recorder, state, workflow, tenants, options, tell)
    while rollout.status is RolloutStatus.RUNNING and (wave := rollout.next_wave) is not None:
        pending = rollout.pending(wave)
        name = "canary" if wave.number == 0 else f"wave {wave.number}"
        tell(f"{name}: {len(wave.tenants)} tenant(s), {len(pending)} to run, "
             f"{wave.allowed_failures} failure(s) allowed")
        for outcome in apply(rollout.rollout_id, wave.number, pending) if pending else ():
            recorder.record(TenantFinished(
                rollout_id=rollout.rollout_id, wave=wave.number, tenant=outcome.tenant,
                result=outcome.result, run_id=outcome.run_id, error=outcome.error))
            tell(f"  {outcome.tenant}: {outcome.result}"
                 + (f" ({outcome.error})" if outcome.error else ""))
        failures = sum(1 for t in wave.tenants
                       if (r := rollout.results.get(t)) is not None and r.failed)
        exceeded = failures > wave.allowed_failures
        recorder.record(BudgetChecked(rollout_id=rollout.rollout_id, wave=wave.number,
                                      failures=failures, allowed=wave.allowed_failures,
                                      exceeded=exceeded))
        last = wave.number == rollout.waves[-1].number
        if exceeded and not last:
            why = (f"{name}: {failures} tenant(s) failed, {wave.allowed_failures} allowed "
                   f"(--max-failures {rollout.max_failures})")
            recorder.record(RolloutStopped(rollout_id=rollout.rollout_id,
                                           wave=wave.number + 1, reason=why))
            tell(f"STOPPED before wave {wave.number + 1}: {why}")
    if rollout.status is RolloutStatus.RUNNING:
        failed = len(rollout.failed)
        # over budget in its last wave (no next wave to stop before); failures within the
        # budget, or past it on a person's decision (resume), leave it partial
        result = "FAILED" if rollout.waves[-1].exceeded else "PARTIAL" if failed \
            else "SUCCEEDED"
        recorder.record(RolloutFinished(rollout_id=rollout.rollout_id, result=result,
                                        succeeded=len(rollout.results) - failed,
                                        failed=failed))
        tell(f"rollout {rollout.rollout_id}: {result}; {len(rollout.results) - failed} "
             f"tenant(s) succeeded, {failed} failed")
    return rollout


def _start_or_resume(recorder: Recorder, state: State, workflow: str,
                     tenants: Sequence[str], options: RolloutOptions,
                     tell: Callable[[str], None]) -> RolloutState:
    """The rollout to work on: the one named (resumed), the one a coordinator left
    unfinished (resumed), or a new one (its waves published)."""
    rollout = _chosen(state, options)
    if rollout is None:
        budget = parse_budget(options.max_failures)
        waves = plan_waves(tenants, options.canary, options.wave_size)
        rollout_id = options.rollout_id or new_run_id()
        recorder.record(
            RolloutStarted(rollout_id=rollout_id, workflow=workflow, reason=options.reason,
                           tenants=tuple(tenants), max_failures=budget.text, waves=len(waves)),
            *(WavePublished(rollout_id=rollout_id, wave=i, tenants=wave,
                            allowed_failures=budget.allowed(len(wave)))
              for i, wave in enumerate(waves)))
        tell(f"rollout {rollout_id}: {len(tenants)} tenant(s) in {len(waves)} wave(s), "
             f"canary {', '.join(waves[0])}; --max-failures {budget.text}")
        return state.rollouts[rollout_id]
    if rollout.status is RolloutStatus.FINISHED:
        tell(f"rollout {rollout.rollout_id} finished already: {rollout.result}")
        return rollout
    if rollout.status is RolloutStatus.STOPPED and not options.past_budget:
        raise RolloutStoppedError(
            f"rollout {rollout.rollout_id} stopped before wave {rollout.stopped_before}: "
            f"{rollout.stop_reason}. Look at the failed tenants; to go on anyway, resume it "
            "with a reason.", remedies=(Remedy(RemedyKind.ROLLOUT_STATUS,
                                               rollout_id=rollout.rollout_id),
                                        Remedy(RemedyKind.ROLLOUT_RESUME,
                                               rollout_id=rollout.rollout_id)))
    past = rollout.status is RolloutStatus.STOPPED
    recorder.record(RolloutResumed(rollout_id=rollout.rollout_id, reason=options.reason,
                                   past_budget=past))
    done = len(rollout.results)
    tell(f"rollout {rollout.rollout_id}: resumed{' past its budget' if past else ''}; "
         f"{done} of {len(rollout.tenants)} tenant(s) have a result and are not run again")
    return rollout


def _chosen(state: State, options: RolloutOptions) -> RolloutState | None:
    if options.rollout_id is not None:
        found = state.rollouts.get(options.rollout_id)
        if found is None and options.past_budget:
            raise ConfigError(f"no rollout {options.rollout_id!r} in this workflow's rollout "
                              f"log ({_listed(state)})",
                              remedies=(Remedy(RemedyKind.ROLLOUT_STATUS),))
        return found
    unfinished = [r for r in state.rollouts.values() if r.status is not RolloutStatus.FINISHED]
    if not unfinished:
        return None
    if options.past_budget or unfinished[-1].status is RolloutStatus.RUNNING:
        return unfinished[-1]
    stopped = unfinished[-1]
    raise RolloutStoppedError(
        f"rollout {stopped.rollout_id} stopped before wave {stopped.stopped_before} "
        f"({stopped.stop_reason}) and is not finished: resume it past its budget, with a "
        "reason, before another rollout of this workflow starts.",
        remedies=(Remedy(RemedyKind.ROLLOUT_STATUS, rollout_id=stopped.rollout_id),
                  Remedy(RemedyKind.ROLLOUT_RESUME, rollout_id=stopped.rollout_id)))


def _listed(state: State) -> str:
    ids = list(state.rollouts)
    return f"it has {', '.join(ids[-5:])}" if ids else "it has none"


def sequential(apply_one: Callable[[str, str], TenantOutcome]) -> Apply:
    """An :data:`Apply` that runs the tenants one after the other in this process."""
    def apply(rollout_id: str, wave: int, tenants: Sequence[str]) -> Iterator[TenantOutcome]:
        for tenant in tenants:
            yield apply_one(rollout_id, tenant)
    return apply


def by_fleet(fleet: Fleet, tell: Callable[[str], None] = lambda line: None) -> Apply:
    """An :data:`Apply` that hands a wave's tenants to a fleet of workers and yields their
    results as they come back. Results already reported (a coordinator that died while the
    fleet worked) are taken as they are, and only the tenants with none are handed out."""
    def apply(rollout_id: str, wave: int, tenants: Sequence[str]) -> Iterator[TenantOutcome]:
        wanted, seen = set(tenants), set[str]()
        published = False

        def publish_the_rest() -> None:
            nonlocal published
            if not published:  # what was reported before is read first, then the rest goes
                published = True
                rest = [t for t in tenants if t not in seen]
                if rest:
                    fleet.publish(rollout_id, wave, rest)
                    tell(f"  handed {len(rest)} tenant(s) to the fleet")

        for found in fleet.results(rollout_id, lambda: wanted <= seen, publish_the_rest):
            if found.tenant in wanted and found.tenant not in seen:
                seen.add(found.tenant)
                yield TenantOutcome(found.tenant, found.result, found.run_id,
                                    ErrorInfo(type="TenantFailed", message=found.error,
                                              where=found.worker) if found.error else None)
    return apply


def work(member: FleetMember, fleet: Fleet, apply_one: Callable[[str, str], TenantOutcome],
         worker: str, stop: Callable[[], bool],
         tell: Callable[[str], None] = lambda line: None) -> int:
    """A fleet worker's loop: run each tenant its share of the group gives it, report how it
    ended, then commit the item; until ``stop()``. Returns how many tenants it ran."""
    done = 0
    while not stop():
        item = member.poll()
        if item is None:
            continue
        outcome = _with_retries(apply_one, item.rollout_id, item.tenant, tell)
        fleet.report(FleetResult(item.rollout_id, item.wave, item.tenant, outcome.result,
                                 outcome.run_id, str(outcome.error) if outcome.error else None,
                                 worker))
        member.commit(item)
        done += 1
        tell(f"{item.tenant} (rollout {item.rollout_id}, wave {item.wave}): {outcome.result}")
    return done


_RETRIES = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Seconds a fleet worker waits before trying a tenant again after a transient error (a
topic just created has no leader yet, a broker restarts): 30 s in all, then it gives up."""


def _with_retries(apply_one: Callable[[str, str], TenantOutcome], rollout_id: str,
                  tenant: str, tell: Callable[[str], None]) -> TenantOutcome:
    for pause in _RETRIES:
        try:
            return apply_one(rollout_id, tenant)
        except FlamingockError as exc:
            if not retryable(exc):
                raise
            tell(f"  transient: {exc}; trying again in {pause:g}s")
            time.sleep(pause)
    return apply_one(rollout_id, tenant)
