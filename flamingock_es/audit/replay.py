"""Compliance replay: re-derive the history from the log, prove it intact, report it.

:func:`replay_records` folds the records event by event with the shared fold
(:meth:`~flamingock_es.core.state.State.apply`, which also checks the hash chain and the
sequence), and after each change outcome takes one report row from the folded unit state:
who, when, what, outcome, duration, trace id. Nothing is re-derived here; the fold decides
what every event means. A time window selects the rows; the chain is always verified whole,
because a break before ``since`` invalidates what follows it. ``verify`` is the same replay
without the rows. Rendering is in :mod:`.render` and :mod:`.html`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..core.codec import Recorded
from ..core.events import (
    AuditEvent,
    ChangeFailed,
    ChangeSucceeded,
    CompensationFailed,
    CompensationSucceeded,
    ManualMark,
)
from ..core.ports import StoredRecord
from ..core.reading import LogReader
from ..core.state import ChainBreak, Finding, Quarantine, RunState, State
from .checkpoint import Checkpoint, check_expectations

__all__ = ["ChangeRow", "Entry", "ReplayReport", "RunRow", "Window", "replay_records",
           "run_row", "select_events"]

_OUTCOMES = (ChangeSucceeded, ChangeFailed, CompensationSucceeded, CompensationFailed,
             ManualMark)


@dataclass(frozen=True)
class ChangeRow:
    """One step on one unit: an apply, a compensation or a manual mark, and how it ended."""

    seq: int
    position: int
    time: str
    namespace: str
    run_id: str
    request_id: str
    trigger: str
    unit_id: str
    stage: str
    action: str
    """``apply``, ``compensate`` or ``mark``."""
    status: str
    """The unit's status after this step, from the fold (Flamingock's vocabulary)."""
    principal: str
    host: str
    started_at: str
    finished_at: str
    duration_ms: float | None
    attempt: int
    checksum: str
    template: str
    parameters: str
    error: str
    trace_id: str
    requested_by: str = ""
    """Who asked for the step's run (a change request's verified principal), else empty."""


@dataclass(frozen=True)
class RunRow:
    """One run: trigger, request, who, outcome."""

    run_id: str
    trigger: str
    request_id: str
    requested_by: str
    """Who asked for the run (a change request's verified principal), else empty."""
    request_reason: str
    principal: str
    """Who applied it: the runner's principal."""
    host: str
    started_at: str
    finished_at: str
    outcome: str
    applied: str
    compensated: str
    error: str
    trace_id: str


@dataclass(frozen=True)
class Window:
    """A time range, both ends included; an open end is ``None``."""

    since: datetime | None = None
    until: datetime | None = None

    def __contains__(self, when: datetime) -> bool:
        return (self.since is None or when >= self.since) and \
            (self.until is None or when <= self.until)


@dataclass
class ReplayReport:
    """The replay of one log: its folded state, its integrity, its runs and change steps."""

    log: str
    namespace: str
    state: State
    records: list[Recorded] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    since: str | None = None
    until: str | None = None
    findings: list[Finding] = field(default_factory=list)
    """Everything that does not hold: chain breaks, undecodable records, refused or missing
    signatures (with a trust store), checkpoints the log no longer holds."""
    signatures_checked: bool = False
    evidence: list[str] = field(default_factory=list)
    """A line per published checkpoint that holds (``verify``)."""

    @property
    def ok(self) -> bool:
        """True if nothing is wrong from the first event to the last (quarantined records,
        excluded by an operator's audited decision, are not findings)."""
        return not self.findings

    @property
    def quarantined(self) -> list[Quarantine]:
        return sorted(self.state.quarantined.values(), key=lambda q: q.position)

    @property
    def breaks(self) -> list[ChainBreak]:
        return list(self.state.breaks)

    @property
    def events(self) -> int:
        return self.state.events

    @property
    def head_hash(self) -> str:
        return self.state.head_hash.hex()


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


@dataclass(frozen=True)
class Entry:
    """One event of a log's history, with what the replay made of it: ``verified`` when
    nothing at or before it is a finding (with a trust store: a trusted signature covers it);
    ``quarantined`` when an operator excluded it."""

    event: AuditEvent
    position: int
    verified: bool
    quarantined: bool


def select_events(report: ReplayReport, *, unit: str | None = None, run_id: str | None = None,
                  window: Window = Window()) -> list[Entry]:
    """The events of ``report`` about ``unit``, of ``run_id`` and inside ``window``."""
    first = min((f.position for f in report.findings), default=None)
    quarantined = report.state.quarantined
    entries = []
    for record in report.records:
        event = record.event
        if unit is not None and getattr(event.payload, "unit_id", None) != unit:
            continue
        if run_id is not None and event.run_id != run_id:
            continue
        if event.time in window:
            excluded = record.position in quarantined
            entries.append(Entry(event, record.position,
                                 not excluded and (first is None or record.position < first),
                                 excluded))
    return entries


def replay_records(stored: Iterable[StoredRecord], reader: LogReader | None = None, *,
                   log: str = "", namespace: str = "", window: Window = Window(),
                   rows: bool = True,
                   expect: Sequence[Checkpoint] = ()) -> ReplayReport:
    """Fold a whole log's records through ``reader`` (the namespace's: its codec and trust
    store) and report (``rows=False``: integrity and state only). With a trust store, every
    signature is checked; ``expect`` are checkpoints the log must still hold."""
    reader = reader or LogReader()
    changes: list[ChangeRow] = []

    def row(state: State, record: Recorded) -> None:
        if isinstance(record.event.payload, _OUTCOMES) and record.event.time in window \
                and record.position not in state.skip:
            changes.append(_change_row(state, record))

    folded = reader.replay(stored, on_record=row if rows else None)
    state, records = folded.state, folded.records
    findings = reader.findings(state)
    findings += check_expectations(records, expect, reader.trust)
    if rows:
        changes += _in_doubt(state, namespace, window)
    runs = [run_row(run) for run in state.runs.values() if run.started_at in window] \
        if rows else []
    return ReplayReport(log=log, namespace=namespace, state=state, records=records, runs=runs,
                        changes=changes, since=_iso(window.since) or None,
                        until=_iso(window.until) or None,
                        findings=sorted(findings, key=lambda f: f.position),
                        signatures_checked=reader.trust is not None)


def _change_row(state: State, record: Recorded) -> ChangeRow:
    event, payload = record.event, record.event.payload
    assert isinstance(payload, _OUTCOMES)
    unit = state.units[payload.unit_id]
    run = state.runs.get(event.run_id)
    started: datetime | None
    if isinstance(payload, ManualMark):
        action, duration, started = "mark", None, event.time
        error = payload.reason
    elif isinstance(payload, ChangeSucceeded | ChangeFailed):
        action, duration, started = "apply", payload.duration_ms, unit.started_at
        error = str(unit.error) if unit.error else ""
    else:
        action, duration, started = "compensate", payload.duration_ms, None
        error = str(payload.error) if isinstance(payload, CompensationFailed) else ""
    return ChangeRow(
        seq=event.seq, position=record.position, time=_iso(event.time),
        namespace=event.namespace, run_id=event.run_id, request_id=event.request_id or "",
        requested_by=(run.requested_by or "") if run else "",
        trigger=run.trigger if run else "", unit_id=unit.unit_id, stage=unit.stage,
        action=action, status=unit.status.value, principal=event.actor.principal,
        host=event.actor.host, started_at=_iso(started), finished_at=_iso(event.time),
        duration_ms=duration, attempt=unit.attempts, checksum=unit.checksum,
        template=unit.template or "", parameters=unit.parameters, error=error,
        trace_id=event.trace_id or unit.trace_id or "")


def _in_doubt(state: State, namespace: str, window: Window) -> list[ChangeRow]:
    """Units whose last step started and never ended (the process died): one row each."""
    out = []
    for unit in state.units.values():
        if unit.status.value != "STARTED" or unit.started_at is None:
            continue
        if unit.started_at not in window:
            continue
        run = state.runs.get(unit.last_run_id)
        out.append(ChangeRow(
            seq=unit.seq, position=unit.position, time=_iso(unit.started_at),
            namespace=namespace, run_id=unit.last_run_id,
            request_id=(run.request_id or "") if run else "",
            requested_by=(run.requested_by or "") if run else "",
            trigger=run.trigger if run else "", unit_id=unit.unit_id, stage=unit.stage,
            action="compensate" if unit.compensating else "apply", status=unit.status.value,
            principal=run.actor.principal if run else "", host=run.actor.host if run else "",
            started_at=_iso(unit.started_at), finished_at="", duration_ms=None,
            attempt=unit.attempts, checksum=unit.checksum, template=unit.template or "",
            parameters=unit.parameters, error="in doubt: started, no outcome recorded",
            trace_id=unit.trace_id or ""))
    return out


def run_row(run: RunState) -> RunRow:
    return RunRow(
        run_id=run.run_id, trigger=run.trigger, request_id=run.request_id or "",
        requested_by=run.requested_by or "", request_reason=run.request_reason or "",
        principal=run.actor.principal, host=run.actor.host, started_at=_iso(run.started_at),
        finished_at=_iso(run.finished_at), outcome=run.outcome.value if run.outcome else "",
        applied=" ".join(run.applied), compensated=" ".join(run.compensated),
        error=str(run.error) if run.error else "", trace_id=run.trace_id or "")
