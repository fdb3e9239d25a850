"""One section per run: who asked for it, who applied it, when, how it ended, and its steps.

Who requested (a change request's principal and reason) and who applied (the runner's
principal at its host) are two differently marked blocks, never one "by" column: they are
often different people, and an auditor asks about each. Rows that a broken chain makes
untrustworthy say so in words and link to the finding that explains why.
"""

from __future__ import annotations

import json

from .findings import Finding, Findings
from .htmlkit import badge, css_token, expandable, identifier, table, text, time_tag
from .humanize import (
    duration,
    in_doubt,
    outcome_key,
    outcome_text,
    shorten,
    span_between,
    trigger_text,
)
from .replay import ChangeRow, ReplayReport, RunRow
from .steps import step_anchor

__all__ = ["Anchors", "outcome_badge", "run_sections", "status_badge"]

_STEP_COLUMNS = ["Seq", "Recorded", "Unit", "Action", "Status", "Took", "Attempt", "Checksum",
                 "Details"]


class Anchors:
    """The ``id`` of each run section and step row, so findings and marks can link to them."""

    def __init__(self, report: ReplayReport) -> None:
        self._runs = {run.run_id: f"run-{i}" for i, run in enumerate(report.runs, start=1)}

    def run(self, run_id: str) -> str:
        # A step whose run started before the selected range gets a section of its own.
        return self._runs.setdefault(run_id, f"run-{len(self._runs) + 1}")

    step = staticmethod(step_anchor)


def status_badge(status: str) -> str:
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
                                           "mid-change"))
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
    return f'<tr id="{Anchors.step(row)}"{tainted}>{"".join(cells)}</tr>'


def _requested(run: RunRow) -> str:
    if not (run.request_id or run.trigger == "request"):
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


def _facts(run: RunRow, outside_range: bool) -> str:
    finished = time_tag(run.finished_at) or (
        '<span class="muted">before the selected range</span>' if outside_range else
        '<span class="muted">never: no outcome recorded</span>')
    facts = [("Started", time_tag(run.started_at) or '<span class="muted">before the '
              "selected range</span>"),
             ("Finished", finished),
             ("Took", text(duration(span_between(run.started_at, run.finished_at)))),
             ]
    if not outside_range:
        facts += [("Applied", text(run.applied) or '<span class="muted">none</span>'),
                  ("Compensated", text(run.compensated) or '<span class="muted">none</span>')]
    if run.trace_id:
        facts.append(("Trace id", f'<code class="id">{text(run.trace_id)}</code>'))
    if run.error:
        facts.append(("Error", expandable(run.error, css="error")))
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts if value)
    return f'<dl class="facts">{items}</dl>'


def outcome_badge(run: RunRow) -> str:
    """The run's outcome; a run with none recorded reads "incomplete", in a dashed box."""
    kind = f"o-{css_token(outcome_key(run))}" + ("" if run.outcome else " incomplete")
    return badge(outcome_text(run), kind)


def _section(run: RunRow, steps: list[ChangeRow], findings: Findings, anchor: str,
             outside_range: bool = False) -> str:
    finding = findings.of_run(run) or next(
        (f for f in map(findings.of_step, steps) if f is not None), None)
    rows = [_step_row(step, findings, run.trace_id) for step in steps]
    body = (table(_STEP_COLUMNS, rows, "steps") if rows else
            '<p class="muted">No change steps: nothing was pending, or nothing was '
            "started.</p>")
    tainted = " tainted" if finding else ""
    outcome = (badge("outcome outside the selected range", "plain") if outside_range
               else outcome_badge(run))
    return (f'<section class="run{tainted}" id="{anchor}"><header>'
            f'<h3>Run <code class="id">{text(run.run_id)}</code></h3>'
            f"{outcome} {_unverified(finding)}</header>"
            f'<div class="who">{_requested(run)}{_applied(run)}</div>'
            f"{_facts(run, outside_range)}{body}</section>")


def _run_of_orphan_steps(steps: list[ChangeRow]) -> RunRow:
    """A stand-in for a run that started before the selected range, from its steps."""
    first = steps[0]
    return RunRow(run_id=first.run_id, trigger=first.trigger, request_id=first.request_id,
                  requested_by="", request_reason="", principal=first.principal,
                  host=first.host, started_at="", finished_at="", outcome="", applied="",
                  compensated="", error="", trace_id=first.trace_id)


def run_sections(report: ReplayReport, steps: list[ChangeRow], findings: Findings,
                 anchors: Anchors) -> str:
    """A section per run in log order, each with its steps; then steps of runs outside the
    selected time range, grouped by run."""
    steps_of: dict[str, list[ChangeRow]] = {}
    for row in steps:
        steps_of.setdefault(row.run_id, []).append(row)
    out = [_section(run, steps_of.pop(run.run_id, []), findings, anchors.run(run.run_id))
           for run in report.runs]
    out += [_section(_run_of_orphan_steps(rows), rows, findings, anchors.run(run_id),
                     outside_range=True) for run_id, rows in steps_of.items()]
    return "".join(out) or '<p class="muted">No runs in this report.</p>'
