"""The fold: audit events in, current state out. Pure: no I/O, no clock, no randomness.

The runner folds the log to plan, the projection worker folds it to write documents, and the
compliance replay folds it to report: all three call :func:`fold` (or :meth:`State.apply` for
one event at a time), so there is one definition of what the history means.

The fold also keeps what a reader must not decide on (:meth:`State.findings`): chain breaks,
records that could not be decoded, signatures that did not verify, events no signature
covers. A signature covers exactly the events of the append it ends (``signed_from`` to its
own seq; a version 2 signature, which names no start, the events since the signature before
it), never what came before them: an event that no signature claims stays unsigned until an
operator decides about it. An operator's quarantine decision (a ``RecordQuarantined``
event) excludes a record: the fold skips it, and every later reader sees that it did, by
whom and why; the chain runs through it (what was written after it chained to it) or around
it (a runner that never saw it, an injected record, chained to the one before it). A vouch
(``HistoryVouched``) adopts unsigned history. Checking signatures is
:mod:`flamingock_es.core.trust`'s job, done by the reader; the fold only collects them
(:class:`Seal`) with what each claims to cover.

The fold also keeps the log's Merkle tree (RFC 6962, :mod:`flamingock_es.core.merkle`): its
frontier, ``State.tree``, grows by one leaf per record the log stores, in log order, whatever
the record means: an event the fold applies, one a quarantine excludes, one that cannot be
decoded. A leaf is the hash of the record's bytes as stored (``Recorded.leaf``), so anyone
with a copy of the log recomputes the tree from its bytes alone, and an operator's later
decision about a record never changes the tree that was signed (docs/compliance.md).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .events import (
    ZERO_HASH,
    Actor,
    AuditEvent,
    BudgetChecked,
    ChangeFailed,
    ChangeInterrupted,
    ChangeSkipped,
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
    Payload,
    PreconditionChecked,
    Recorded,
    RecordQuarantined,
    RolloutFinished,
    RolloutResumed,
    RolloutStarted,
    RolloutStopped,
    RunFinished,
    RunOutcome,
    RunStarted,
    SkipCause,
    TagRecorded,
    TenantFinished,
    WavePublished,
)
from .merkle import Frontier

__all__ = [
    "ChainBreak",
    "Finding",
    "LockState",
    "Quarantine",
    "RolloutState",
    "RolloutStatus",
    "RunState",
    "Seal",
    "Skip",
    "State",
    "Tag",
    "TenantResult",
    "UnitState",
    "UnitStatus",
    "Unsealed",
    "Wave",
    "effective_skip",
    "fold",
]


class UnitStatus(enum.StrEnum):
    """A unit's derived status, in Flamingock's vocabulary."""

    STARTED = "STARTED"
    APPLIED = "APPLIED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    MANUAL_MARKED_AS_APPLIED = "MANUAL_MARKED_AS_APPLIED"
    MANUAL_MARKED_AS_ROLLED_BACK = "MANUAL_MARKED_AS_ROLLED_BACK"

    @property
    def is_applied(self) -> bool:
        return self in (UnitStatus.APPLIED, UnitStatus.MANUAL_MARKED_AS_APPLIED)

    @property
    def needs_attention(self) -> bool:
        """Failed, in doubt or half-compensated: recovery strategy decides, or a person."""
        return self in (UnitStatus.STARTED, UnitStatus.FAILED, UnitStatus.ROLLBACK_FAILED)


@dataclass(slots=True)
class UnitState:
    """What the log says about one change unit; the last attempt's details win."""

    unit_id: str
    status: UnitStatus
    checksum: str
    author: str = ""
    stage: str = ""
    template: str | None = None
    parameters: str = "{}"
    attempts: int = 0
    application: int = 0
    """Which application of the unit its last start belongs to (0, the first): a new one
    begins when it starts again after it was undone (compensated, or marked rolled back)
    or, run again once applied, after it completed. Retries of one application (after a
    crash, or a failure not compensated) share it, and so its idempotency key."""
    last_run_id: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    error: ErrorInfo | None = None
    rollback_error: ErrorInfo | None = None
    compensating: bool = False
    mark_reason: str | None = None
    trace_id: str | None = None
    interrupted: str | None = None
    """Which signal stopped its last step, and why it could not finish."""
    failed_before_start: bool = False
    """Its last attempt failed before its side effect could start: nothing to decide."""
    runs: list[str] = field(default_factory=list)
    position: int = -1
    seq: int = -1

    @property
    def needs_attention(self) -> bool:
        """Failed, in doubt or half-compensated: its recovery strategy decides, or a person."""
        return self.status.needs_attention and not self.failed_before_start


@dataclass(slots=True)
class RunState:
    """One run: who started it, what it planned, what it applied, how it ended."""

    run_id: str
    actor: Actor
    started_at: datetime
    workflow: str = ""
    trigger: str = ""
    request_id: str | None = None
    requested_by: str | None = None
    """The principal the request's verified signature names (not a field it chose)."""
    request_reason: str | None = None
    request_digest: str | None = None
    """What the request asked, by digest (a reused request id is told apart by it)."""
    environment: str | None = None
    labels: tuple[str, ...] = ()
    trace_id: str | None = None
    planned: tuple[str, ...] = ()
    applied: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    outcome: RunOutcome | None = None
    error: ErrorInfo | None = None
    not_started: tuple[str, ...] = ()
    holder: str | None = None
    """The lock holder of this run (``host:pid:run-id``), as its ``LockAcquired`` says."""
    position: int = -1
    seq: int = -1


@dataclass(slots=True)
class LockState:
    """The last ``LockAcquired`` with no release or loss after it."""

    holder: str
    lock: str
    generation: int
    run_id: str
    since: datetime
    position: int = -1


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """A place where the log's integrity does not hold."""

    position: int
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class Seal:
    """A signature found in the log, to be checked against the trust store, and the
    positions of the events it claims to cover (its own append)."""

    position: int
    key_id: str | None
    signature: bytes
    hash: bytes
    namespace: str
    covers: tuple[int, ...] = ()
    time: datetime | None = None
    """When it was made, as far as the log can tell: the signed event's time, or the latest
    time the log showed before it if that is later (a key's validity is judged by it)."""


@dataclass(frozen=True, slots=True)
class Unsealed:
    """An event no signature has claimed yet, with what links it into the chain."""

    position: int
    seq: int
    hash: bytes
    prev_hash: bytes


@dataclass(frozen=True, slots=True)
class Quarantine:
    """An operator's decision that the record at ``position`` is not part of the history."""

    position: int
    finding: str
    reason: str
    by: str
    at: datetime
    decided_at: int
    """Where the decision itself is in the log."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A record that a reader must not decide on: the log position, what kind, and why."""

    position: int
    kind: str
    """``break``, ``unreadable``, ``untrusted``, ``unsigned`` (or ``checkpoint``)."""
    reason: str
    seq: int = -1
    """The event's sequence number, where it has one that can be read."""


@dataclass(frozen=True, slots=True)
class Skip:
    """The last time a run considered a unit and did not apply it, and why."""

    cause: SkipCause
    reason: str
    run_id: str
    at: datetime
    position: int


@dataclass(frozen=True, slots=True)
class Tag:
    """A name for a log position, and the units applied there (``tag``)."""

    name: str
    through: int
    applied: tuple[str, ...]
    reason: str
    by: str
    at: datetime
    position: int
    """Where the tag itself is in the log."""


class RolloutStatus(enum.StrEnum):
    """Where a rollout is: going through its waves, stopped before one, or done."""

    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    FINISHED = "FINISHED"


@dataclass(frozen=True, slots=True)
class TenantResult:
    """How one tenant's run in a rollout ended."""

    tenant: str
    wave: int
    result: str
    """A :class:`RunOutcome`'s value, or ``UP_TO_DATE``."""
    run_id: str | None
    error: ErrorInfo | None
    at: datetime

    @property
    def failed(self) -> bool:
        """It counts against the budget: anything but applied or already up to date."""
        return self.result not in ("SUCCEEDED", "UP_TO_DATE")


@dataclass(slots=True)
class Wave:
    """One wave of a rollout: its tenants, the failures it may have, its budget check."""

    number: int
    tenants: tuple[str, ...]
    allowed_failures: int
    failures: int | None = None
    """Set by its budget check, once every tenant of it finished."""
    exceeded: bool = False


@dataclass(slots=True)
class RolloutState:
    """What a rollout's log says: who started it and why, its waves, each tenant's result,
    and whether it is going, stopped (and why) or finished."""

    rollout_id: str
    workflow: str
    reason: str
    started_by: str
    started_at: datetime
    tenants: tuple[str, ...]
    max_failures: str
    planned_waves: int
    waves: list[Wave] = field(default_factory=list)
    results: dict[str, TenantResult] = field(default_factory=dict)
    status: RolloutStatus = RolloutStatus.RUNNING
    stop_reason: str | None = None
    stopped_before: int | None = None
    resumed: list[tuple[str, str, bool]] = field(default_factory=list)
    """``(by, reason, past_budget)`` of each resumption, in order."""
    result: str | None = None
    finished_at: datetime | None = None
    position: int = -1

    def pending(self, wave: Wave) -> list[str]:
        """The tenants of ``wave`` with no result yet, in order."""
        return [t for t in wave.tenants if t not in self.results]

    @property
    def next_wave(self) -> Wave | None:
        """The first wave whose budget was not checked yet (``None``: all were)."""
        return next((w for w in self.waves if w.failures is None), None)

    def counts(self, tenants: Iterable[str] | None = None) -> dict[str, int]:
        """How many tenants (of ``tenants``, a wave's; default: all) have each result, and
        ``PENDING`` for those with none."""
        out: dict[str, int] = {}
        for tenant in self.tenants if tenants is None else tenants:
            found = self.results.get(tenant)
            key = found.result if found is not None else "PENDING"
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def failed(self) -> list[TenantResult]:
        """The tenants whose run failed, in the order they finished."""
        return [r for r in self.results.values() if r.failed]

    def as_json(self) -> dict[str, Any]:
        """The rollout as plain JSON values: what its projection document, the compliance
        report and ``rollout status --json`` show."""
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        def error(e: ErrorInfo | None) -> dict[str, str | None] | None:
            return None if e is None else {"type": e.type, "message": e.message,
                                           "where": e.where}
        return {
            "rollout_id": self.rollout_id, "workflow": self.workflow,
            "status": self.status.value, "result": self.result, "reason": self.reason,
            "started_by": self.started_by, "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at), "max_failures": self.max_failures,
            "stop_reason": self.stop_reason, "stopped_before": self.stopped_before,
            "counts": self.counts(),
            "waves": [{"wave": w.number, "tenants": list(w.tenants),
                       "allowed_failures": w.allowed_failures, "failures": w.failures,
                       "exceeded": w.exceeded, "counts": self.counts(w.tenants)}
                      for w in self.waves],
            "tenants": {t.tenant: {"wave": t.wave, "result": t.result, "run_id": t.run_id,
                                   "error": error(t.error), "at": iso(t.at)}
                        for t in self.results.values()},
            "failed": [{"tenant": t.tenant, "wave": t.wave, "result": t.result,
                        "run_id": t.run_id, "error": str(t.error) if t.error else None}
                       for t in self.failed],
            "resumed": [{"by": by, "reason": why, "past_budget": past}
                        for by, why, past in self.resumed],
        }


@dataclass(slots=True)
class State:
    """The whole derived state of one namespace's audit log."""

    units: dict[str, UnitState] = field(default_factory=dict)
    runs: dict[str, RunState] = field(default_factory=dict)
    lock: LockState | None = None
    head_hash: bytes = ZERO_HASH
    next_seq: int = 0
    position: int = -1
    events: int = 0
    last_time: datetime | None = None
    breaks: list[ChainBreak] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)
    """Records that could not be decoded, by position; never applied, never in the chain."""
    quarantined: dict[int, Quarantine] = field(default_factory=dict)
    skip: frozenset[int] = frozenset()
    """Quarantined positions this fold does not apply (the chain may run through them)."""
    around_hash: bytes | None = None
    """The head before the excluded records just passed: the next event may chain to it."""
    around_seq: int = -1
    needs_refold: bool = False
    """A quarantine decision excluded a record this fold had already applied: fold again
    from the start with ``skip`` (see :func:`flamingock_es.core.reading.read_log`)."""
    seals: list[Seal] = field(default_factory=list)
    """Signatures folded since the trust store last checked them."""
    unsealed: list[Unsealed] = field(default_factory=list)
    """The events after the last signature: none claims them yet."""
    uncovered: dict[int, str] = field(default_factory=dict)
    """Events no signature will ever cover (one that came after them claimed less, or the
    one that claimed them was refused), by position, with why: unsigned until an operator
    quarantines or vouches for each."""
    signed_through: int = -1
    """The last position a trusted signature covers (set by the trust check)."""
    untrusted: dict[int, str] = field(default_factory=dict)
    """Signatures that the trust check refused, by position, with why."""
    skipped: dict[str, Skip] = field(default_factory=dict)
    """Units a run considered and did not apply (a condition, a precondition, a failed
    requirement), by id: the last such decision, until the unit runs."""
    tags: dict[str, Tag] = field(default_factory=dict)
    """Named log positions, by name."""
    tree: Frontier = field(default_factory=Frontier)
    """The log's Merkle tree so far: one leaf per stored record up to ``position``."""
    rollouts: dict[str, RolloutState] = field(default_factory=dict)
    """The rollouts a rollout namespace's log holds, by id, in the order they started."""

    def apply(self, record: Recorded) -> bool:
        """Fold one record in. Returns False (and changes nothing) for a redelivered one."""
        position, event = record.position, record.event
        if 0 <= position <= self.position:
            return False
        self.position = position
        self.tree.append(record.leaf)
        if position in self.skip:  # excluded: not applied, but the chain may run through it
            if self.around_hash is None:
                self.around_hash, self.around_seq = self.head_hash, self.next_seq
            self.next_seq, self.head_hash = event.seq + 1, event.hash
            return True
        chains = record.intact and event.seq == self.next_seq and \
            event.prev_hash == self.head_hash
        around = record.intact and event.seq == self.around_seq and \
            event.prev_hash == self.around_hash  # around the records just excluded
        if not chains and not around:
            self._check_chain(record)  # the rare path: say exactly what does not hold
        self.around_hash, self.around_seq = None, -1
        self.events += 1
        self.next_seq = event.seq + 1
        self.head_hash = event.hash
        before, self.last_time = self.last_time, event.time
        self.unsealed.append(Unsealed(position, event.seq, event.hash, event.prev_hash))
        if event.signature is not None:
            self._seal(record, event.time if before is None else max(before, event.time))
        _HANDLERS[type(event.payload)](self, event, event.payload, position)
        return True

    def _seal(self, record: Recorded, time: datetime) -> None:
        """Collect the signature that ends an append, with the events it claims: those of
        its own append, found by walking the chain back from the signed event to seq
        ``signed_from`` (a foreign event beside them, even one with a seq of theirs, is not
        on that chain); events that no signature claimed are uncovered for good. A version 2
        signature claims everything since the last one."""
        event, start = record.event, record.event.signed_from
        if start is None:
            claimed = {u.position for u in self.unsealed}
        else:
            claimed, wanted = set(), event.hash
            for pending in reversed(self.unsealed):
                if pending.hash == wanted and pending.seq >= start:
                    claimed.add(pending.position)
                    wanted = pending.prev_hash
        for pending in self.unsealed:
            if pending.position not in claimed:
                self.uncovered[pending.position] = (
                    f"no signature covers it: the next one (offset {record.position}) covers "
                    "only its own append")
        self.unsealed.clear()
        assert event.signature is not None
        self.seals.append(Seal(record.position, event.key_id, event.signature, event.hash,
                               event.namespace, tuple(sorted(claimed)), time))

    def start_over(self, exclude: frozenset[int] = frozenset()) -> None:
        """Forget everything but the quarantine decisions, to fold again from the start
        without the records they exclude (and ``exclude``); the object stays the same:
        holders keep it."""
        self.take(State(skip=effective_skip(self.quarantined.values()) | exclude))

    def take(self, other: State) -> None:
        """Become ``other`` (a snapshot, a fresh start), in place: holders keep this object."""
        for name in State.__dataclass_fields__:
            setattr(self, name, getattr(other, name))

    def note_unreadable(self, position: int, why: str, leaf: bytes) -> None:
        """A record at ``position`` could not be decoded: noted, never applied; reading goes
        on after it (it is not part of the chain: the next event chains to the one before).
        It is a leaf of the tree all the same (``leaf``: its bytes' leaf hash): the tree is
        of what the log stores."""
        self.unreadable[position] = why
        if position > self.position:
            self.position = position
            self.tree.append(leaf)

    def findings(self, signatures: bool = False) -> list[Finding]:
        """What a reader must not decide on, oldest first: chain breaks, undecodable records,
        refused signatures and, when ``signatures`` are required, events none covers.
        Quarantined records are not findings: an operator decided about them."""
        out = [Finding(b.position, "break", b.reason, b.seq) for b in self.breaks]
        out += [Finding(p, "unreadable", why) for p, why in self.unreadable.items()]
        out += [Finding(p, "untrusted", why) for p, why in self.untrusted.items()]
        if signatures:
            out += [Finding(p, "unsigned", why) for p, why in self.uncovered.items()]
            out += [Finding(p, "unsigned", "no trusted signature covers it yet")
                    for p in (u.position for u in self.unsealed)]
        return sorted((f for f in out if f.position not in self.quarantined),
                      key=lambda f: f.position)

    def in_progress(self, unit: UnitState) -> bool:
        """True if ``unit`` started in a run that, per the log, still holds the lock: it may
        be running right now (only the lock itself can tell a live runner from a dead one)."""
        run = self.runs.get(unit.last_run_id)
        return (unit.status is UnitStatus.STARTED and run is not None and run.outcome is None
                and self.lock is not None and self.lock.run_id == run.run_id)

    def _check_chain(self, record: Recorded) -> None:
        event = record.event
        if not record.intact:
            self._break(record, "hash mismatch: the event was altered after it was written")
        forked = next((u for u in self.unsealed if (u.seq, u.prev_hash) == (
            event.seq, event.prev_hash) and u.hash != event.hash), None)
        if record.intact and forked is not None:  # its writer never saw what came between
            self._break(record, f"it chains to the event before offset {forked.position}, "
                        "around the records appended from there on by another writer: once "
                        "they are excluded, the chain holds")
            return
        if event.seq != self.next_seq:
            what = "dropped" if event.seq > self.next_seq else "duplicated or reordered"
            self._break(record, f"sequence {event.seq} where {self.next_seq} was expected: "
                        f"events {what}")
        if event.prev_hash != self.head_hash:
            self._break(record, "prev_hash does not match the previous event's hash")

    def _break(self, record: Recorded, reason: str) -> None:
        self.breaks.append(ChainBreak(record.position, record.event.seq, reason))

    # Queries shared by the runner, the CLI and the projections.

    def unit(self, unit_id: str) -> UnitState | None:
        return self.units.get(unit_id)

    def attention(self) -> list[UnitState]:
        """Units that are failed, in doubt or failed to roll back (not those still running
        in a run that holds the lock)."""
        return [u for u in self.units.values() if u.needs_attention and not self.in_progress(u)]

    def counts(self) -> dict[str, int]:
        """Number of units in each status."""
        out: dict[str, int] = {}
        for unit in self.units.values():
            out[unit.status.value] = out.get(unit.status.value, 0) + 1
        return out

    @property
    def last_run(self) -> RunState | None:
        return next(reversed(self.runs.values()), None)

    def for_decisions(self) -> State:
        """A copy without what only a history needs: what a snapshot stores, so that a
        start-up costs the same after a thousand runs as after one.

        It keeps everything a decision reads: every unit, the lock, the chain head and the
        findings, the run each unit's last attempt belongs to (``in_progress``), every run
        that answered a request (a request id is single-use), and the latest run. It drops
        the details of other runs and each unit's list of earlier runs; the log keeps them,
        and ``verify``, ``replay`` and the projections read them there, never from this.
        """
        wanted = {unit.last_run_id for unit in self.units.values()}
        latest = self.last_run
        runs = {run_id: run for run_id, run in self.runs.items()
                if run_id in wanted or run.request_id is not None or run is latest}
        units = {unit_id: replace(unit, runs=unit.runs[-1:])
                 for unit_id, unit in self.units.items()}
        return replace(self, runs=runs, units=units, tree=self.tree.copy())


def effective_skip(decisions: Iterable[Quarantine]) -> frozenset[int]:
    """The positions the quarantine ``decisions`` exclude: a decision that a later one
    excluded (it was itself forged, say) excludes nothing. Decisions only ever name earlier
    records, so the latest is read first."""
    skipped: set[int] = set()
    for decision in sorted(decisions, key=lambda d: d.decided_at, reverse=True):
        if decision.decided_at not in skipped:
            skipped.add(decision.position)
    return frozenset(skipped)


def fold(records: Iterable[Recorded], state: State | None = None) -> State:
    """Fold ``records`` into ``state`` (a fresh one by default) and return it."""
    state = state if state is not None else State()
    apply = state.apply
    for record in records:
        apply(record)
    return state


# One handler per payload type. Each updates the state for one event; none does I/O.

def _unit(state: State, unit_id: str, status: UnitStatus, checksum: str = "") -> UnitState:
    unit = state.units.get(unit_id)
    if unit is None:
        unit = state.units[unit_id] = UnitState(unit_id, status, checksum)
    return unit


def _touch(unit: UnitState, event: AuditEvent, position: int) -> None:
    unit.position = position
    unit.seq = event.seq
    unit.last_run_id = event.run_id
    if not unit.runs or unit.runs[-1] != event.run_id:
        unit.runs.append(event.run_id)


def _run(state: State, event: AuditEvent) -> RunState:
    run = state.runs.get(event.run_id)
    if run is None:  # a mark or undo writes no RunStarted of its own
        run = state.runs[event.run_id] = RunState(event.run_id, event.actor, event.time)
    return run


def _run_started(state: State, event: AuditEvent, p: RunStarted, position: int) -> None:
    run = _run(state, event)
    run.workflow, run.trigger, run.planned = p.workflow, p.trigger, p.planned
    run.request_id, run.trace_id = event.request_id, event.trace_id
    run.environment, run.labels = p.environment, p.labels
    if p.requester is not None:
        run.requested_by, run.request_reason = p.requester.principal, p.requester.reason
        run.request_digest = p.requester.request_digest
    run.position, run.seq = position, event.seq


def _lock_acquired(state: State, event: AuditEvent, p: LockAcquired, position: int) -> None:
    state.lock = LockState(p.holder, p.lock, p.generation, event.run_id, event.time, position)
    _run(state, event).holder = p.holder


def _lock_gone(state: State, event: AuditEvent, p: LockReleased | LockLost, pos: int) -> None:
    if state.lock is not None and state.lock.holder == p.holder:
        state.lock = None


_CLOSED = frozenset({UnitStatus.APPLIED, UnitStatus.MANUAL_MARKED_AS_APPLIED,
                     UnitStatus.ROLLED_BACK, UnitStatus.MANUAL_MARKED_AS_ROLLED_BACK})
"""A unit starting from one of these begins a new application: the last one is over."""


def _change_started(state: State, event: AuditEvent, p: ChangeStarted, position: int) -> None:
    state.skipped.pop(p.unit_id, None)
    known = p.unit_id in state.units
    unit = _unit(state, p.unit_id, UnitStatus.STARTED)
    if known and unit.status in _CLOSED:
        unit.application += 1
    unit.status, unit.checksum, unit.author, unit.stage = (
        UnitStatus.STARTED, p.checksum, p.author, p.stage)
    unit.template, unit.parameters = p.template, p.parameters
    unit.attempts += 1
    unit.started_at, unit.finished_at, unit.duration_ms = event.time, None, None
    unit.error = unit.rollback_error = unit.mark_reason = unit.interrupted = None
    unit.compensating = unit.failed_before_start = False
    unit.trace_id = event.trace_id
    _touch(unit, event, position)


def _change_succeeded(state: State, event: AuditEvent, p: ChangeSucceeded, pos: int) -> None:
    unit = _unit(state, p.unit_id, UnitStatus.APPLIED, p.checksum)
    unit.status, unit.checksum = UnitStatus.APPLIED, p.checksum
    unit.finished_at, unit.duration_ms = event.time, p.duration_ms
    _touch(unit, event, pos)
    _run(state, event).applied.append(p.unit_id)


def _change_failed(state: State, event: AuditEvent, p: ChangeFailed, pos: int) -> None:
    unit = _unit(state, p.unit_id, UnitStatus.FAILED, p.checksum)
    unit.status, unit.error = UnitStatus.FAILED, p.error
    unit.failed_before_start = p.not_started
    unit.finished_at, unit.duration_ms = event.time, p.duration_ms
    _touch(unit, event, pos)
    _run(state, event).failed.append(p.unit_id)


def _comp_started(state: State, event: AuditEvent, p: CompensationStarted, pos: int) -> None:
    unit = _unit(state, p.unit_id, UnitStatus.STARTED)
    unit.compensating = True
    _touch(unit, event, pos)


def _comp_succeeded(state: State, event: AuditEvent, p: CompensationSucceeded, pos: int) -> None:
    unit = _unit(state, p.unit_id, UnitStatus.ROLLED_BACK)
    unit.status, unit.compensating = UnitStatus.ROLLED_BACK, False
    unit.finished_at = event.time
    _touch(unit, event, pos)
    _run(state, event).compensated.append(p.unit_id)


def _comp_failed(state: State, event: AuditEvent, p: CompensationFailed, pos: int) -> None:
    unit = _unit(state, p.unit_id, UnitStatus.ROLLBACK_FAILED)
    unit.status, unit.compensating = UnitStatus.ROLLBACK_FAILED, False
    unit.rollback_error = p.error
    unit.error = p.original_error or unit.error
    unit.finished_at = event.time
    _touch(unit, event, pos)


def _manual_mark(state: State, event: AuditEvent, p: ManualMark, pos: int) -> None:
    status = (UnitStatus.MANUAL_MARKED_AS_APPLIED if p.marked_as is MarkedAs.APPLIED
              else UnitStatus.MANUAL_MARKED_AS_ROLLED_BACK)
    unit = _unit(state, p.unit_id, status, p.checksum or "")
    unit.status, unit.mark_reason, unit.compensating = status, p.reason, False
    if p.checksum:
        unit.checksum = p.checksum
    unit.finished_at = event.time
    _touch(unit, event, pos)


def _run_finished(state: State, event: AuditEvent, p: RunFinished, pos: int) -> None:
    run = _run(state, event)
    run.finished_at, run.outcome, run.error = event.time, p.outcome, p.error
    run.not_started = p.not_started
    run.position, run.seq = pos, event.seq


def _interrupted(state: State, event: AuditEvent, p: ChangeInterrupted, pos: int) -> None:
    unit = _unit(state, p.unit_id, UnitStatus.STARTED)
    unit.status, unit.interrupted = UnitStatus.STARTED, f"{p.signal}: {p.reason}"
    unit.compensating = p.compensating
    _touch(unit, event, pos)


def _quarantined(state: State, event: AuditEvent, p: RecordQuarantined, pos: int) -> None:
    state.quarantined[p.position] = Quarantine(
        p.position, p.finding, p.reason, f"{event.actor.principal}@{event.actor.host}",
        event.time, pos)
    if p.position not in state.unreadable and p.position not in state.skip:
        state.needs_refold = True  # its payload was applied: only a fold without it is right


def _vouched(state: State, event: AuditEvent, p: HistoryVouched, pos: int) -> None:
    """An operator adopted the unsigned history up to ``through``: it is covered by this
    decision (itself signed: a vouch no trusted signature covers is a finding of its own)."""
    for position in [q for q in state.uncovered if q <= p.through]:
        del state.uncovered[position]
    state.unsealed[:] = [u for u in state.unsealed if u.position > p.through or u.position == pos]


def _skipped(state: State, event: AuditEvent, p: ChangeSkipped, pos: int) -> None:
    state.skipped[p.unit_id] = Skip(p.cause, p.reason, event.run_id, event.time, pos)
    if p.marked_applied:
        unit = _unit(state, p.unit_id, UnitStatus.APPLIED, p.checksum)
        unit.status, unit.checksum, unit.stage = UnitStatus.APPLIED, p.checksum, p.stage
        unit.mark_reason, unit.finished_at = p.reason, event.time
        _touch(unit, event, pos)
        _run(state, event).applied.append(p.unit_id)


def _precondition(state: State, event: AuditEvent, p: PreconditionChecked, pos: int) -> None:
    """Nothing to change: its outcome (a start, a skip, a halt) is an event of its own."""


def _tagged(state: State, event: AuditEvent, p: TagRecorded, pos: int) -> None:
    state.tags[p.name] = Tag(p.name, p.through, p.applied, p.reason,
                             f"{event.actor.principal}@{event.actor.host}", event.time, pos)


def _rollout_started(state: State, event: AuditEvent, p: RolloutStarted, pos: int) -> None:
    state.rollouts[p.rollout_id] = RolloutState(
        p.rollout_id, p.workflow, p.reason, f"{event.actor.principal}@{event.actor.host}",
        event.time, p.tenants, p.max_failures, p.waves, position=pos)


def _rollout(state: State, rollout_id: str, pos: int) -> RolloutState | None:
    """The rollout an event is about (``None``: its start is not in this log, which only
    a quarantine can cause: the event then says nothing)."""
    rollout = state.rollouts.get(rollout_id)
    if rollout is not None:
        rollout.position = pos
    return rollout


def _wave_published(state: State, event: AuditEvent, p: WavePublished, pos: int) -> None:
    if (rollout := _rollout(state, p.rollout_id, pos)) is not None:
        rollout.waves.append(Wave(p.wave, p.tenants, p.allowed_failures))


def _tenant_finished(state: State, event: AuditEvent, p: TenantFinished, pos: int) -> None:
    if (rollout := _rollout(state, p.rollout_id, pos)) is not None:
        rollout.results[p.tenant] = TenantResult(p.tenant, p.wave, p.result, p.run_id,
                                                 p.error, event.time)


def _budget_checked(state: State, event: AuditEvent, p: BudgetChecked, pos: int) -> None:
    rollout = _rollout(state, p.rollout_id, pos)
    wave = next((w for w in rollout.waves if w.number == p.wave), None) if rollout else None
    if wave is not None:
        wave.failures, wave.exceeded = p.failures, p.exceeded


def _rollout_stopped(state: State, event: AuditEvent, p: RolloutStopped, pos: int) -> None:
    if (rollout := _rollout(state, p.rollout_id, pos)) is not None:
        rollout.status, rollout.stop_reason = RolloutStatus.STOPPED, p.reason
        rollout.stopped_before = p.wave


def _rollout_resumed(state: State, event: AuditEvent, p: RolloutResumed, pos: int) -> None:
    if (rollout := _rollout(state, p.rollout_id, pos)) is not None:
        rollout.status, rollout.stop_reason = RolloutStatus.RUNNING, None
        rollout.resumed.append((f"{event.actor.principal}@{event.actor.host}", p.reason,
                                p.past_budget))


def _rollout_finished(state: State, event: AuditEvent, p: RolloutFinished, pos: int) -> None:
    if (rollout := _rollout(state, p.rollout_id, pos)) is not None:
        rollout.status, rollout.result = RolloutStatus.FINISHED, p.result
        rollout.finished_at = event.time


_HANDLERS: dict[type[Payload], Callable[[State, AuditEvent, Payload, int], None]] = {
    RunStarted: _run_started,  # type: ignore[dict-item]
    LockAcquired: _lock_acquired,  # type: ignore[dict-item]
    LockReleased: _lock_gone,  # type: ignore[dict-item]
    LockLost: _lock_gone,  # type: ignore[dict-item]
    ChangeStarted: _change_started,  # type: ignore[dict-item]
    ChangeSucceeded: _change_succeeded,  # type: ignore[dict-item]
    ChangeFailed: _change_failed,  # type: ignore[dict-item]
    CompensationStarted: _comp_started,  # type: ignore[dict-item]
    CompensationSucceeded: _comp_succeeded,  # type: ignore[dict-item]
    CompensationFailed: _comp_failed,  # type: ignore[dict-item]
    ManualMark: _manual_mark,  # type: ignore[dict-item]
    RunFinished: _run_finished,  # type: ignore[dict-item]
    ChangeInterrupted: _interrupted,  # type: ignore[dict-item]
    RecordQuarantined: _quarantined,  # type: ignore[dict-item]
    HistoryVouched: _vouched,  # type: ignore[dict-item]
    ChangeSkipped: _skipped,  # type: ignore[dict-item]
    PreconditionChecked: _precondition,  # type: ignore[dict-item]
    TagRecorded: _tagged,  # type: ignore[dict-item]
    RolloutStarted: _rollout_started,  # type: ignore[dict-item]
    WavePublished: _wave_published,  # type: ignore[dict-item]
    TenantFinished: _tenant_finished,  # type: ignore[dict-item]
    BudgetChecked: _budget_checked,  # type: ignore[dict-item]
    RolloutStopped: _rollout_stopped,  # type: ignore[dict-item]
    RolloutResumed: _rollout_resumed,  # type: ignore[dict-item]
    RolloutFinished: _rollout_finished,  # type: ignore[dict-item]
}
