"""One section per run: who asked for it, who applied it, when, how it ended, and its steps.

Who requested (a change request's principal and reason) and who applied (the runner's
principal at its host) are two differently marked blocks, never one "by" column: they are
often different people, and an auditor asks about each. Rows that a broken chain makes
untrustworthy say so in words and link to the finding that explains why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..replay import ChangeRow, ReplayReport, RunRow, run_row
from .findings import Finding, Findings
from .htmlkit import badge, css_token, expandable, facts, identifier, table, text, time_tag
from .humanize import (
    answers_request,
    duration,
    in_doubt,
    outcome_key,
    outcome_text,
    shorten,
    span_between,
    trigger_text,
)
from .run_lanes import run_lanes
from .steps import step_anchor

__all__ = ["Anchors", "outcome_badge", "run_sections", "status_badge"]

_STEP_COLUMNS = ["Seq", "Recorded", "Unit", "Action", "Status", "Took", "Attempt", "Checksum",
                 "Details"]


class Anchors:
    """The ``id`` of each run's section, so findings can link to it (a step's row has
    :func:`~.steps.step_anchor`)."""

    def __init__(self, report: ReplayReport) -> None:
        self._runs = {run.run_id: f"run-{i}" for i, run in enumerate(report.runs, start=1)}

    def run(self, run_id: str) -> str:
        """The ``id`` of the run's section."""
        # A run that started before the selected range is numbered when it is first shown.
        return self._runs.setdefault(run_id, f"run-{len(self._runs) + 1}")


def status_badge(status: str) -> str:
    """A unit status in its palette colour."""
    return badge(status, f"s-{css_token(status)}")


def _unverified(finding: Finding | None) -> str:
    if finding is None:
        return ""
    return (f'<a class="unverified" href="#{finding.anchor}">\u26a0 unverified: after '
            f"finding {finding.number}</a>")


def _labelled(label: str, html: str) -> str:
    # The space keeps label and value apart when the page is copied or read aloud.
    return f'<span class="label">{label}</span> {html}'


def _details(row: ChangeRow, run_trace: str) -> str:
    parts = []
    if row.action == "mark":
        parts.append(_labelled("Reason", expandable(row.error, css="reason")))
    elif in_doubt(row):
        parts.append(_labelled("In doubt", "started, no outcome recorded: the process died "
                                           "or was cut off mid-change"))
    elif row.error:
        parts.append(_labelled("Error", expandable(row.error, css="error")))
    if row.template:
        parts.append(_labelled("Template", text(row.template)))
    if row.parameters not in ("", "{}"):
        parts.append(_labelled("Parameters", _parameters(row.parameters)))
    if row.trace_id and row.trace_id != run_trace:
        parts.append(_labelled("Trace", identifier(row.trace_id)))
    return "<br>".join(parts)


def _parameters(raw: str) -> str:
    """The parameters (secrets already redacted), their keys as the summary."""
    try:
        value = json.loads(raw)
    except ValueError:
        return expandable(raw)
    keys = ", ".join(value) if isinstance(value, dict) else f"{len(raw)} characters"
    return expandable(json.dumps(value, indent=2), summary=shorten(keys, 60))


def _step_row(row: ChangeRow, findings: Findings, run_trace: str) -> str:
    finding = findings.of_step(row)
    cells = [
        f'<td class="num">{row.seq}</td>',
        f'<td class="when">{time_tag(row.finished_at or row.started_at)}</td>',
        f'<td><strong class="wrap">{text(row.unit_id)}</strong>'
        + (f'<br><span class="muted">stage {text(row.stage)}</span>' if row.stage else "")
        + "</td>",
        f"<td>{text(row.action)}</td>",
        f"<td>{status_badge(row.status)}"
        + (f"<br>{_unverified(finding)}" if finding else "") + "</td>",
        f'<td class="num">{text(duration(row.duration_ms))}</td>',
        f'<td class="num">{row.attempt}</td>',
        f"<td class=\"checksum\">{identifier(row.checksum) if row.checksum else ''}</td>",
        f"<td>{_details(row, run_trace)}</td>",
    ]
    tainted = ' class="tainted"' if finding else ""
    return f'<tr id="{step_anchor(row)}"{tainted}>{"".join(cells)}</tr>'


def _requested(run: RunRow) -> str:
    if not answers_request(run):
        return ('<div class="requested"><div class="role">Requested by</div>'
                f'<div class="muted">no change request: {text(trigger_text(run.trigger))}'
                "</div></div>")
    who = (f'<div class="name">{text(run.requested_by)}</div>' if run.requested_by else
           '<div class="name muted">not recorded by this log</div>')
    reason = (f'<div>{_labelled("Reason", expandable(run.request_reason, css="reason"))}</div>'
              if run.request_reason else "")
    request = (f'<div class="muted">request <code class="id">{text(run.request_id)}</code></div>'
               if run.request_id else "")
    return (f'<div class="requested"><div class="role">Requested by</div>{who}{reason}'
            f"{request}</div>")


def _applied(run: RunRow) -> str:
    return ('<div class="applied"><div class="role">Applied by</div>'
            f'<div class="name">{text(run.principal)}@{text(run.host)}</div>'
            f'<div class="muted">{text(trigger_text(run.trigger))}</div></div>')


def _facts(run: RunRow) -> str:
    none = '<span class="muted">none</span>'
    trace = f'<code class="id">{text(run.trace_id)}</code>' if run.trace_id else ""
    return facts([
        ("Started", time_tag(run.started_at)),
        ("Finished", time_tag(run.finished_at)
         or '<span class="muted">never: no outcome recorded</span>'),
        ("Took", text(duration(span_between(run.started_at, run.finished_at)))),
        ("Applied", text(run.applied) or none),
        ("Compensated", text(run.compensated) or none),
        ("Trace id", trace),
        ("Error", expandable(run.error, css="error") if run.error else ""),
    ])


def outcome_badge(run: RunRow) -> str:
    """The run's outcome; a run with none recorded reads "incomplete", in a dashed box."""
    kind = f"o-{css_token(outcome_key(run))}" + ("" if run.outcome else " incomplete")
    return badge(outcome_text(run), kind)


def _section(run: RunRow, steps: list[ChangeRow], findings: Findings, anchor: str,
             before_range: bool = False) -> str:
    finding = findings.of_run(run) or next(
        (f for f in map(findings.of_step, steps) if f is not None), None)
    rows = [_step_row(step, findings, run.trace_id) for step in steps]
    body = (table(_STEP_COLUMNS, rows, "steps") if rows else
            '<p class="muted">No change steps: nothing was pending, or nothing was '
            "started.</p>")
    tainted = " tainted" if finding else ""
    note = badge("started before the selected range", "plain") if before_range else ""
    return (f'<section class="run{tainted}" id="{anchor}"><header>'
            f'<h3>Run <code class="id">{text(run.run_id)}</code></h3>'
            f"{outcome_badge(run)} {note} {_unverified(finding)}</header>"
            f'<div class="who">{_requested(run)}{_applied(run)}</div>'
            f"{_facts(run)}{run_lanes(run, steps)}{body}</section>")


def _runs_started_before(report: ReplayReport, run_ids: Iterable[str]) -> list[RunRow]:
    """The rows of runs that started before ``--since`` but have steps after it.

    The report lists the runs that started in the range; the folded state knows every run,
    so their rows are made exactly as the replay makes them.
    """
    runs = report.state.runs
    return [run_row(runs[run_id]) for run_id in run_ids if run_id in runs]


def run_sections(report: ReplayReport, steps: list[ChangeRow], findings: Findings,
                 anchors: Anchors) -> str:
    """A section per run in log order, each with its steps; then the runs that started
    before the selected time range and have steps in it."""
    steps_of: dict[str, list[ChangeRow]] = {}
    for row in steps:
        steps_of.setdefault(row.run_id, []).append(row)
    out = [_section(run, steps_of.pop(run.run_id, []), findings, anchors.run(run.run_id))
           for run in report.runs]
    out += [_section(run, steps_of[run.run_id], findings, anchors.run(run.run_id),
                     before_range=True) for run in _runs_started_before(report, steps_of)]
    return "".join(out) or '<p class="muted">No runs in this report.</p>'
