"""The plan: which units a run would apply, in order, and why every other one is skipped.

Pure, like the fold: a workflow and a state in, a :class:`Plan` out. ``plan`` prints it,
``run`` executes it, ``wait`` polls it, ``status`` turns it into rows; ``undo`` asks it which
units to compensate.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..core.changes import ChangeUnit, Recovery
from ..core.events import SkipCause
from ..core.state import LockState, RunState, State, Tag, UnitState, UnitStatus
from ..definition.conditions import Condition, ConditionError, Outcome, Variables
from ..definition.workflow import Stage, Workflow
from ..errors import ConfigError, ManualInterventionRequired, Remedy, RemedyKind

__all__ = [
    "IN_DOUBT",
    "Action",
    "Blocker",
    "NamespaceStatus",
    "OutOfOrderError",
    "Plan",
    "PlannedUnit",
    "StatusRow",
    "UndoBlockedError",
    "UndoRefusedError",
    "UndoScope",
    "make_plan",
    "mark_remedies",
    "namespace_status",
    "new_tag_refusal",
    "only",
    "pending_before",
    "tagged",
    "undo_targets",
]


class Action(enum.StrEnum):
    RUN = "run"
    SKIP = "skip"
    ACCEPT_DRIFT = "accept-drift"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class PlannedUnit:
    """One unit's fate in this plan."""

    stage: str
    unit: ChangeUnit
    action: Action
    reason: str
    previous: UnitState | None = None


@dataclass(frozen=True)
class Blocker:
    """Why the run cannot go on without a person's decision, and the decisions that would."""

    unit_id: str
    kind: str
    """``drift`` or ``manual-intervention``."""
    message: str
    remedies: tuple[Remedy, ...]
    """What resolves it, one remedy per decision a person can take."""


@dataclass(frozen=True)
class Plan:
    units: tuple[PlannedUnit, ...]
    blockers: tuple[Blocker, ...] = ()
    unknown: tuple[str, ...] = field(default=())
    """Units the log knows and the workflow does not (deleted or renamed definitions)."""

    @property
    def to_run(self) -> list[PlannedUnit]:
        return [p for p in self.units if p.action is Action.RUN]

    @property
    def drift_to_accept(self) -> list[PlannedUnit]:
        return [p for p in self.units if p.action is Action.ACCEPT_DRIFT]

    @property
    def has_work(self) -> bool:
        return bool(self.to_run or self.drift_to_accept)

    @property
    def up_to_date(self) -> bool:
        return not self.has_work and not self.blockers

    @property
    def in_doubt(self) -> list[PlannedUnit]:
        """Units whose last attempt started and never finished, whether their recovery
        strategy retries them or a person decides (blocked)."""
        return [p for p in self.units
                if p.previous is not None and p.previous.status is UnitStatus.STARTED]

    @property
    def needs_a_person(self) -> bool:
        """A unit is blocked for a person's decision, or in doubt: ``run`` would not go ahead
        on its own (drift aside, which :attr:`drifted` says)."""
        return bool(self.in_doubt) or any(b.kind != "drift" for b in self.blockers)

    @property
    def drifted(self) -> bool:
        """An applied unit changed and its drift is not accepted."""
        return any(b.kind == "drift" for b in self.blockers)


def only(plan: Plan, units: Sequence[str] | None, workflow: Workflow) -> Plan:
    """``plan`` narrowed to ``units`` (all of it when ``units`` is empty)."""
    if not units:
        return plan
    wanted = set(units)
    unknown = wanted - {p.unit.id for p in plan.units}
    if unknown:
        raise ConfigError(f"unknown unit(s) {', '.join(sorted(unknown))} in workflow "
                          f"{workflow.name!r}")
    return Plan(tuple(p for p in plan.units if p.unit.id in wanted),
                tuple(b for b in plan.blockers if b.unit_id in wanted), plan.unknown)


def pending_before(plan: Plan, units: Sequence[str]) -> list[PlannedUnit]:
    """The units of (the whole) ``plan`` that come before one of ``units`` it would apply and
    are not applied yet: what applying only ``units`` would skip over."""
    wanted = set(units)
    chosen = [i for i, p in enumerate(plan.units) if p.unit.id in wanted
              and p.action is Action.RUN]
    if not chosen:
        return []
    return [p for p in plan.units[:chosen[-1]] if p.unit.id not in wanted
            and p.action is Action.RUN
            and (p.previous is None or not p.previous.status.is_applied)]


class OutOfOrderError(ConfigError):
    """Only some units were asked for, and units before them are pending: applying them
    first would change the order the workflow gives, so it is refused unless allowed."""

    def __init__(self, units: Sequence[str], pending: Sequence[str]) -> None:
        self.units, self.pending = tuple(units), tuple(pending)
        super().__init__(
            f"{_words(list(self.units))}: {_words(list(self.pending))} "
            f"{'comes' if len(self.pending) == 1 else 'come'} before in the workflow, not "
            "applied yet; applying only the later ones changes the order the workflow gives. "
            "Apply the earlier units first, or allow it explicitly (out_of_order).")


@dataclass(frozen=True)
class UndoScope:
    """Which applied units ``undo`` compensates: those after ``to``, the newest ``count``, or
    (neither given) every one, back to before the first unit."""

    to: str | None = None
    count: int | None = None
    tag: str | None = None
    """Back to a tag: the units applied since it was recorded."""

    def describe(self) -> str:
        """The scope in words, for messages and the audit log."""
        if self.tag is not None:
            return f"the units applied after tag {self.tag}"
        if self.to is not None:
            return f"the units after {self.to}"
        if self.count is not None:
            return f"the {self.count} newest applied unit(s)"
        return "every applied unit"


def undo_targets(workflow: Workflow, state: State, scope: UndoScope | str) -> list[ChangeUnit]:
    """The applied units in ``scope`` in workflow order, newest first: what ``undo`` reverts.

    Refuses, before anything runs, when one of them has no rollback, or when a unit it would
    reach past is failed or in doubt (a person decides that one first).
    """
    scope = UndoScope(to=scope) if isinstance(scope, str) else scope
    order = [u for _, u in workflow.units()]
    reach = order
    if scope.to is not None:
        ids = [u.id for u in order]
        if scope.to not in ids:
            raise ConfigError(f"undo back to {scope.to!r}: no such unit in workflow "
                              f"{workflow.name!r}")
        reach = order[ids.index(scope.to) + 1:]
    if scope.tag is not None:
        kept = set(tagged(state, scope.tag).applied)
        reach = [u for u in order if u.id not in kept]
    if scope.count is not None and scope.count < 1:
        raise ConfigError(f"an undo of the {scope.count} newest units: give a count of 1 or "
                          "more")
    applied = [u for u in reversed(reach)
               if (s := state.units.get(u.id)) is not None and s.status.is_applied]
    targets = applied[:scope.count] if scope.count is not None else applied
    if targets and scope.count is not None:  # the oldest target is as far as undo reaches
        reach = reach[[u.id for u in reach].index(targets[-1].id):]
    undecided = [s for u in reach if (s := state.units.get(u.id)) is not None
                 and s.needs_attention]
    if undecided:
        unit = undecided[0]
        raise UndoBlockedError(
            scope, f"{unit.unit_id} is {unit.status.value}, and undo would reach past it. Check "
            "the target system, then record what you found.", remedies=mark_remedies(unit))
    missing = [u.id for u in targets if u.rollback is None]
    if missing:
        verb = "has" if len(missing) == 1 else "have"
        them = "it" if len(missing) == 1 else "them"
        raise UndoRefusedError(scope, f"{_words(missing)} {verb} no rollback. Write one, or, "
                               f"once reverted by hand, mark {them} rolled back.")
    return targets


TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What a tag's name may be: it is written on command lines and in file names."""


def tagged(state: State, name: str) -> Tag:
    """The tag ``name`` of the log, or a ``ConfigError`` naming the tags there are."""
    tag = state.tags.get(name)
    if tag is None:
        known = ", ".join(sorted(state.tags)) or "none yet"
        raise ConfigError(f"no tag {name!r} in this namespace's log (tags: {known}); "
                          "`flamingock-es tag NAME --reason ...` records one at the head")
    return tag


def new_tag_refusal(state: State, name: str) -> ConfigError | None:
    """Why ``name`` cannot name a new tag, if it cannot: a tag is never moved."""
    if not TAG_PATTERN.fullmatch(name):
        return ConfigError(f"tag {name!r}: a tag's name is letters, digits, '.', '_' and '-', "
                           "starting with a letter or digit")
    old = state.tags.get(name)
    if old is not None:
        return ConfigError(f"tag {name!r} already names offset {old.through} (recorded by "
                           f"{old.by} at {old.at:%Y-%m-%d %H:%M:%S}): a tag never moves; "
                           "pick another name")
    return None


class _UndoRefusal:
    """An undo refused before it started: its scope and why, as data (the CLI names the
    scope as its flags do)."""

    scope: UndoScope
    detail: str

    def _say(self, scope: UndoScope, detail: str) -> str:
        self.scope, self.detail = scope, detail
        return f"cannot undo {scope.describe()}: {detail}"


class UndoRefusedError(_UndoRefusal, ConfigError):
    """An undo whose units cannot all be compensated (one has no rollback)."""

    def __init__(self, scope: UndoScope, detail: str) -> None:
        super().__init__(self._say(scope, detail))


class UndoBlockedError(_UndoRefusal, ManualInterventionRequired):
    """An undo that would reach past a unit a person must decide about first."""

    def __init__(self, scope: UndoScope, detail: str, *, remedies: Sequence[Remedy]) -> None:
        super().__init__(self._say(scope, detail), remedies=remedies)


def _words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


@dataclass(frozen=True)
class StatusRow:
    """One unit as ``status`` shows it."""

    unit_id: str
    stage: str
    status: str
    """A :class:`UnitStatus` value, or ``PENDING`` for a unit never run."""
    last_run: str | None
    finished_at: datetime | None
    detail: str
    remedies: tuple[Remedy, ...] = ()
    """What resolves it, when it needs a person."""


@dataclass(frozen=True)
class NamespaceStatus:
    """Every unit of a workflow with its status, the lock, and what the log knows beyond."""

    namespace: str
    rows: list[StatusRow]
    lock: LockState | None
    unknown: list[str]
    events: int
    last_run: RunState | None = None
    """The namespace's latest run: a stop on request (``STOPPED``) is said beside the rows."""

    @property
    def attention(self) -> list[StatusRow]:
        return [row for row in self.rows if row.remedies]


def namespace_status(workflow: Workflow, state: State, plan: Plan,
                     holder: str | None = None) -> NamespaceStatus:
    """The rows of ``status``: each unit's derived status and, if blocked, how to resolve it.

    ``holder`` is who holds the lock right now: a unit started by that holder's run is
    running, not in doubt, and needs no one.
    """
    blockers = {b.unit_id: b for b in plan.blockers}
    rows = []
    for planned in plan.units:
        unit = state.units.get(planned.unit.id)
        blocker = blockers.get(planned.unit.id)
        detail = planned.reason
        run = state.runs.get(unit.last_run_id) if unit is not None else None
        if unit is not None and run is not None and unit.status is UnitStatus.STARTED \
                and holder is not None and run.holder == holder:
            since = f"{unit.started_at:%Y-%m-%d %H:%M:%S} UTC" if unit.started_at else "?"
            detail, blocker = f"running now in run {run.run_id} (held by {holder}, started " \
                              f"{since})", None
        if unit is not None and unit.error:
            detail += f"; error: {unit.error}"
        if unit is not None and unit.rollback_error:
            detail += f"; rollback error: {unit.rollback_error}"
        rows.append(StatusRow(
            planned.unit.id, planned.stage, unit.status.value if unit else "PENDING",
            unit.last_run_id if unit else None, unit.finished_at if unit else None, detail,
            blocker.remedies if blocker else ()))
    return NamespaceStatus(workflow.namespace, rows, state.lock, list(plan.unknown),
                           state.events, state.last_run)


def mark_remedies(unit: UnitState) -> tuple[Remedy, ...]:
    """The marks that resolve a unit needing attention, one per decision a person can take.
    Each carries where its history was: a mark refuses if it moved meanwhile."""
    return tuple(Remedy(RemedyKind.MARK, unit_id=unit.unit_id, marked_as=choice,
                        position=unit.position) for choice in ("APPLIED", "ROLLED_BACK"))


def make_plan(workflow: Workflow, state: State, accept_drift: bool = False) -> Plan:
    """Decide each unit's action from its last recorded status (see docs/recovery.md)."""
    planned: list[PlannedUnit] = []
    blockers: list[Blocker] = []
    for stage, unit in workflow.units():
        entry, blocker = _decide(stage, unit, state.units.get(unit.id), accept_drift)
        planned.append(entry)
        if blocker is not None:
            blockers.append(blocker)
    known = {u.id for _, u in workflow.units()}
    unknown = tuple(uid for uid in state.units if uid not in known)
    return Plan(_still_skipped(workflow, state, planned), tuple(blockers), unknown)


def _still_skipped(workflow: Workflow, state: State,
                   planned: list[PlannedUnit]) -> tuple[PlannedUnit, ...]:
    """Units the last run skipped that a run now would skip the same way are not work:
    otherwise every start-up would take the lock only to record the same skip again. That
    is a unit whose condition is still false (it names no unit this run would apply, so the
    plan decides it as the run would) and what requires it, skipped for it last time."""
    conditions = workflow.conditions
    if not conditions or not state.skipped:
        return tuple(planned)
    settings = workflow.settings
    index = {p.unit.id: i for i, p in enumerate(planned)}
    will_run = {p.unit.id for p in planned if p.action is Action.RUN}
    held: set[str] = set()
    for unit_id in workflow.graph.order():
        entry = planned[index[unit_id]]
        skip = state.skipped.get(unit_id)
        if entry.action is not Action.RUN or skip is None or entry.unit.run_always:
            continue
        condition = conditions.get(unit_id)
        if skip.cause is SkipCause.DEPENDENCY:
            still = any(uid in held for uid in entry.unit.requires)
        elif skip.cause is SkipCause.CONDITION and condition is not None \
                and skip.reason == condition.false_reason:
            refs = condition.unit_refs if condition.unit_refs is not None else index.keys()
            still = not (will_run - held).intersection(refs) and not _holds(condition, Variables(
                settings.environment, settings.labels, settings.unit_settings,
                {uid: Outcome.SKIPPED.value if uid in held else Outcome.from_status(
                    state.units[uid].status.value if uid in state.units else None).value
                 for uid in refs}))
        else:
            continue
        if still:
            held.add(unit_id)
            planned[index[unit_id]] = PlannedUnit(
                entry.stage, entry.unit, Action.SKIP,
                f"skipped as in run {skip.run_id}: {skip.reason}", entry.previous)
    return tuple(planned)


def _holds(condition: Condition, variables: Variables) -> bool:
    """The condition's value; one that fails to evaluate counts as holding (the run then
    evaluates it, and fails the unit with the condition's error)."""
    try:
        return condition.evaluate(variables)
    except ConditionError:
        return True


def _decide(
    stage: Stage, unit: ChangeUnit, last: UnitState | None, accept_drift: bool
) -> tuple[PlannedUnit, Blocker | None]:
    def entry(action: Action, reason: str) -> PlannedUnit:
        return PlannedUnit(stage.name, unit, action, reason, last)

    if last is None:
        return entry(Action.RUN, "pending"), None
    status = last.status
    if status.is_applied:
        if last.checksum != unit.checksum:
            if accept_drift or unit.accept_drift:
                return entry(Action.ACCEPT_DRIFT, "changed since applied; drift accepted"), None
            message = (f"{unit.source}: unit {unit.id!r} changed after it was applied "
                       f"(checksum {last.checksum[:12]} -> {unit.checksum[:12]}). Revert the "
                       "edit and write a new unit instead, or accept the drift.")
            return (entry(Action.BLOCKED, "checksum drift"),
                    Blocker(unit.id, "drift", message, (Remedy(RemedyKind.ACCEPT_DRIFT),)))
        if unit.run_always:
            return entry(Action.RUN, "run-always"), None
        return entry(Action.SKIP, f"applied in run {last.last_run_id}"), None
    if status in (UnitStatus.ROLLED_BACK, UnitStatus.MANUAL_MARKED_AS_ROLLED_BACK):
        return entry(Action.RUN, f"pending again: {status.value.lower().replace('_', ' ')}"), None
    # STARTED (in doubt), FAILED, ROLLBACK_FAILED
    if last.failed_before_start:
        return entry(Action.RUN, "retry: its last attempt failed before it started "
                                 "(nothing was changed)"), None
    doubt = _doubt(last)
    if unit.recovery is Recovery.ALWAYS_RETRY and status is not UnitStatus.ROLLBACK_FAILED:
        return entry(Action.RUN, f"retry ({doubt})"), None
    message = (f"unit {unit.id!r} is {doubt} in run {last.last_run_id}"
               + (f" ({last.error})" if last.error else "")
               + (f"; its rollback failed too ({last.rollback_error})"
                  if last.rollback_error else "")
               + ". Its recovery strategy is manual-intervention: check the target system, "
                 "then record what you found"
               + (". Its runner may be alive and cut off from the bus, its step still in "
                  "flight: first make sure it is gone (the lock's session has expired and the "
                  "process is not running), as its side effect may still land"
                  if status is UnitStatus.STARTED and not last.interrupted else "")
               + ".")
    return (entry(Action.BLOCKED, doubt),
            Blocker(unit.id, "manual-intervention", message, mark_remedies(last)))



IN_DOUBT = "in doubt: started, no outcome recorded"
"""How a unit with a start and no outcome (not cut short by a signal) is described."""

def _doubt(last: UnitState) -> str:
    if last.status is not UnitStatus.STARTED:
        return last.status.value.lower().replace("_", " ")
    if last.interrupted:
        return f"in doubt: interrupted by {last.interrupted}"
    return (f"{IN_DOUBT} (the process died, or was cut off from the bus and its side effect "
            "may still land)")
