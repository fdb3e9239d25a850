"""Every change step of the report, the interrupted ones included.

The replay's rows are the steps that ended, plus one row per unit that is in doubt *now*.
A step whose process died and that was settled later (a retry, a mark) has no row: its
unit is no longer in doubt. The page shows it anyway, in the run that started it, because
that is the evidence of the crash. It is derived here from the records, as an in-doubt row
(status ``STARTED``, no finish), without changing what the replay reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.codec import Recorded
from ...core.events import (
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
)
from ..replay import ChangeRow, ReplayReport
from .humanize import parse_time

__all__ = ["all_steps", "step_anchor"]

_ENDS = (ChangeSucceeded, ChangeFailed, CompensationSucceeded, CompensationFailed)
IN_DOUBT = "in doubt: started, no outcome recorded"


@dataclass(frozen=True)
class _Open:
    record: Recorded
    action: str


def _never_finished(records: list[Recorded]) -> list[_Open]:
    """Starts (apply or compensation) with no outcome in the same run, in log order."""
    open_steps: dict[tuple[str, str], _Open] = {}
    for record in records:
        event, payload = record.event, record.event.payload
        if isinstance(payload, ChangeStarted | CompensationStarted):
            action = "apply" if isinstance(payload, ChangeStarted) else "compensate"
            open_steps[(event.run_id, payload.unit_id)] = _Open(record, action)
        elif isinstance(payload, _ENDS):
            open_steps.pop((event.run_id, payload.unit_id), None)
    return sorted(open_steps.values(), key=lambda o: o.record.position)


def _definition(report: ReplayReport, payload: ChangeStarted | CompensationStarted
                ) -> tuple[str, int, str, str, str]:
    """Stage, attempt, checksum, template, parameters of what the step ran: an apply names
    them; a compensation undoes the unit's last applied definition."""
    if isinstance(payload, ChangeStarted):
        return (payload.stage, payload.attempt, payload.checksum, payload.template or "",
                payload.parameters)
    unit = report.state.units.get(payload.unit_id)
    if unit is None:
        return "", 0, "", "", ""
    return unit.stage, unit.attempts, unit.checksum, unit.template or "", unit.parameters


def _row(report: ReplayReport, step: _Open) -> ChangeRow:
    event, payload = step.record.event, step.record.event.payload
    assert isinstance(payload, ChangeStarted | CompensationStarted)
    run = report.state.runs.get(event.run_id)
    stage, attempt, checksum, template, parameters = _definition(report, payload)
    return ChangeRow(
        seq=event.seq, position=step.record.position, time=event.time.isoformat(),
        namespace=event.namespace, run_id=event.run_id, request_id=event.request_id or "",
        trigger=run.trigger if run else "", unit_id=payload.unit_id, stage=stage,
        action=step.action, status="STARTED", principal=event.actor.principal,
        host=event.actor.host, started_at=event.time.isoformat(), finished_at="",
        duration_ms=None, attempt=attempt, checksum=checksum, template=template,
        parameters=parameters, error=IN_DOUBT, trace_id=event.trace_id or "")


def _in_range(report: ReplayReport, row: ChangeRow) -> bool:
    when, since, until = (parse_time(row.started_at), parse_time(report.since or ""),
                          parse_time(report.until or ""))
    assert when is not None
    return (since is None or when >= since) and (until is None or when <= until)


def step_anchor(row: ChangeRow) -> str:
    """The ``id`` of a step's row on the page: its position, unique in a log."""
    return f"step-{row.position}"


def all_steps(report: ReplayReport) -> list[ChangeRow]:
    """The report's rows and the interrupted steps it has no row for, in log order."""
    known = {row.position for row in report.changes}
    interrupted = [_row(report, step) for step in _never_finished(report.records)
                   if step.record.position not in known]
    return sorted([*report.changes, *(r for r in interrupted if _in_range(report, r))],
                  key=lambda row: row.position)
