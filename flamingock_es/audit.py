"""Compliance replay: re-derive the history from the log, prove it intact, export a report.

:func:`replay` reads the whole log, folds it event by event with the shared fold
(:meth:`~flamingock_es.state.State.apply`, which also checks the hash chain and the
sequence), and after each change outcome takes one report row from the folded unit state:
who, when, what, outcome, duration, trace id. Nothing is re-derived here; the fold decides
what every event means. A time range selects the rows; the chain is always verified whole,
because a break before ``since`` invalidates what follows it.

:func:`render` turns the report into JSON, CSV or a self-contained HTML page with a
timeline per unit.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .codec import AuditCodec, Recorded
from .errors import ConfigError
from .events import (
    ChangeFailed,
    ChangeSucceeded,
    CompensationFailed,
    CompensationSucceeded,
    ManualMark,
)
from .state import ChainBreak, RunState, State

__all__ = ["ChangeRow", "ReplayReport", "RunRow", "render", "replay", "replay_records"]

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


@dataclass(frozen=True)
class RunRow:
    """One run: trigger, request, who, outcome."""

    run_id: str
    trigger: str
    request_id: str
    principal: str
    host: str
    started_at: str
    finished_at: str
    outcome: str
    applied: str
    compensated: str
    error: str
    trace_id: str


@dataclass
class ReplayReport:
    """The replay of one log: integrity, runs and every change step."""

    log: str
    namespace: str
    events: int
    head_hash: str
    breaks: list[ChainBreak]
    runs: list[RunRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    since: str | None = None
    until: str | None = None

    @property
    def ok(self) -> bool:
        """True if the hash chain and the sequence hold from the first event to the last."""
        return not self.breaks


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _in_range(when: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or when >= since) and (until is None or when <= until)


def replay_records(records: list[Recorded] | Any, *, log: str = "", namespace: str = "",
                   since: datetime | None = None,
                   until: datetime | None = None) -> ReplayReport:
    """Fold ``records`` one by one and report; the pure part of :func:`replay`."""
    state = State()
    rows: list[ChangeRow] = []
    for record in records:
        state.apply(record)
        event, payload = record.event, record.event.payload
        if not isinstance(payload, _OUTCOMES) or not _in_range(event.time, since, until):
            continue
        unit = state.units[payload.unit_id]
        run = state.runs.get(event.run_id)
        if isinstance(payload, ManualMark):
            action, duration, started = "mark", None, event.time
            error = payload.reason
        elif isinstance(payload, ChangeSucceeded | ChangeFailed):
            action, duration, started = "apply", payload.duration_ms, unit.started_at
            error = str(unit.error) if unit.error else ""
        else:
            action, duration, started = "compensate", payload.duration_ms, None
            error = str(payload.error) if isinstance(payload, CompensationFailed) else ""
        rows.append(ChangeRow(
            seq=event.seq, position=record.position, time=_iso(event.time),
            namespace=event.namespace, run_id=event.run_id, request_id=event.request_id or "",
            trigger=run.trigger if run else "", unit_id=unit.unit_id, stage=unit.stage,
            action=action, status=unit.status.value, principal=event.actor.principal,
            host=event.actor.host, started_at=_iso(started), finished_at=_iso(event.time),
            duration_ms=duration, attempt=unit.attempts, checksum=unit.checksum,
            template=unit.template or "", parameters=unit.parameters, error=error,
            trace_id=event.trace_id or unit.trace_id or ""))
    rows += _in_doubt(state, namespace, since, until)
    runs = [_run_row(run) for run in state.runs.values()
            if _in_range(run.started_at, since, until)]
    return ReplayReport(log=log, namespace=namespace, events=state.events,
                        head_hash=state.head_hash.hex(), breaks=list(state.breaks),
                        runs=runs, changes=rows, since=_iso(since) or None,
                        until=_iso(until) or None)


def _in_doubt(state: State, namespace: str, since: datetime | None,
              until: datetime | None) -> list[ChangeRow]:
    """Units whose last step started and never ended (the process died): one row each."""
    out = []
    for unit in state.units.values():
        if unit.status.value != "STARTED" or unit.started_at is None:
            continue
        if not _in_range(unit.started_at, since, until):
            continue
        run = state.runs.get(unit.last_run_id)
        out.append(ChangeRow(
            seq=unit.seq, position=unit.position, time=_iso(unit.started_at),
            namespace=namespace, run_id=unit.last_run_id,
            request_id=(run.request_id or "") if run else "",
            trigger=run.trigger if run else "", unit_id=unit.unit_id, stage=unit.stage,
            action="compensate" if unit.compensating else "apply", status=unit.status.value,
            principal=run.actor.principal if run else "", host=run.actor.host if run else "",
            started_at=_iso(unit.started_at), finished_at="", duration_ms=None,
            attempt=unit.attempts, checksum=unit.checksum, template=unit.template or "",
            parameters=unit.parameters, error="in doubt: started, no outcome recorded",
            trace_id=unit.trace_id or ""))
    return out


def _run_row(run: RunState) -> RunRow:
    return RunRow(
        run_id=run.run_id, trigger=run.trigger, request_id=run.request_id or "",
        principal=run.actor.principal, host=run.actor.host, started_at=_iso(run.started_at),
        finished_at=_iso(run.finished_at), outcome=run.outcome.value if run.outcome else "",
        applied=" ".join(run.applied), compensated=" ".join(run.compensated),
        error=str(run.error) if run.error else "", trace_id=run.trace_id or "")


def replay(bus: str, namespace: str, *, since: datetime | None = None,
           until: datetime | None = None,
           options: dict[str, str] | None = None) -> ReplayReport:
    """Replay ``namespace``'s whole log on ``bus``; rows limited to ``[since, until]``."""
    from .backends import open_backend

    backend = open_backend(bus, namespace, options)
    try:
        records = AuditCodec().decode_all(backend.log.read())
        report = replay_records(records, log=backend.log.name, namespace=namespace,
                                since=since, until=until)
    finally:
        backend.close()
    return report


# Rendering --------------------------------------------------------------------------------

def render(report: ReplayReport, fmt: str) -> str:
    """The report as ``json``, ``csv`` (one row per change step) or ``html``."""
    if fmt == "json":
        return json.dumps(_as_json(report), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report.changes)
    if fmt == "html":
        from .audit_html import to_html

        return to_html(report)
    raise ConfigError(f"unknown report format {fmt!r}: use json, csv or html")


def _as_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "log": report.log, "namespace": report.namespace, "verified": report.ok,
        "events": report.events, "head_hash": report.head_hash,
        "since": report.since, "until": report.until,
        "breaks": [asdict(b) for b in report.breaks],
        "runs": [asdict(r) for r in report.runs],
        "changes": [asdict(c) for c in report.changes],
    }


def to_csv(rows: list[ChangeRow]) -> str:
    """One CSV line per change step, with a header line."""
    out = io.StringIO()
    names = list(ChangeRow.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return out.getvalue()
