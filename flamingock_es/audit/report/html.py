"""The compliance report as one self-contained HTML page, for a person to read and print.

Top to bottom: the verdict (chain intact, or its findings tied to the rows they taint) with
what was verified; a summary; a section per run with its steps; a timeline per unit; who
made the page and when. Inline CSS only, no script, no external asset: the file is the
evidence, and it must read the same offline, years later, and on paper.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..._version import __version__
from ..replay import ReplayReport
from .findings import Finding, Findings
from .htmlkit import facts, identifier, text, time_tag
from .humanize import human_time
from .run_sections import Anchors, run_sections, status_badge
from .steps import all_steps, step_anchor
from .style import stylesheet
from .summary import summary
from .timeline import timeline

__all__ = ["to_html"]


_CHECKED = ("Checked for every event, from the first: its hash matches its content, it links "
            "to the hash of the one before it, and the sequence has no gap.")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _verified_facts(report: ReplayReport) -> str:
    """What the verdict covers: the log, its events, their time range, the head hash."""
    records = report.records
    first_seq = records[0].event.seq if records else 0
    last_seq = records[-1].event.seq if records else first_seq
    span = (f"{time_tag(records[0].event.time.isoformat())} to "
            f"{time_tag(records[-1].event.time.isoformat())}" if records else "")
    chosen = (f"from {time_tag(report.since or '') or 'the start'} until "
              f"{time_tag(report.until or '') or 'the end'}; the chain is verified whole "
              "regardless" if report.since or report.until else "")
    return facts([
        ("Log", f'<code class="id">{text(report.log)}</code>'),
        ("Namespace", text(report.namespace)),
        ("Events", f"{report.events} (sequence {first_seq} to {last_seq})"),
        ("Time range", span),
        ("Head hash", f'<code class="id">{text(report.head_hash)}</code>'),
        ("Rows shown", chosen),
    ])


def _finding(finding: Finding, anchors: Anchors) -> str:
    links = []
    if finding.first_step is not None:
        step = finding.first_step
        links.append(f'<a href="#{step_anchor(step)}">step {step.seq}: '
                     f"{text(step.unit_id)} {text(step.action)}</a>")
    if finding.first_run is not None:
        links.append(f'<a href="#{anchors.run(finding.first_run.run_id)}">run '
                     f"{text(finding.first_run.run_id)}</a>")
    first = ("First affected: " + ", ".join(links) + " and everything after."
             if links else "No report row comes after it.")
    seq = f" (seq {finding.seq})" if finding.seq >= 0 else ""
    return (f'<li id="{finding.anchor}"><span class="what">Finding {finding.number}: at '
            f"position {finding.position}{seq}: {text(finding.reason)}</span>"
            f"<br>{text(finding.meaning)}<br>{first}</li>")


def _quarantined(report: ReplayReport) -> str:
    """The records an operator excluded: not findings any more, but never out of sight."""
    if not report.quarantined:
        return ""
    items = "".join(
        f"<li>position {q.position}: {text(q.finding)}. Excluded by {text(q.by)} on "
        f"{time_tag(q.at.isoformat())}: {text(q.reason)}</li>" for q in report.quarantined)
    return (f'<p>{_plural(len(report.quarantined), "record")} excluded from the history by '
            f'an audited operator decision (quarantine):</p><ul class="quarantined">{items}'
            "</ul>")


def _banner(report: ReplayReport, findings: Findings, anchors: Anchors) -> str:
    if not findings:
        return (f'<section class="banner ok" id="verdict" aria-label="Verdict">'
                f'<p class="verdict">\u2714 Chain intact: all {_plural(report.events, "event")}'
                f" verified</p><p>{_CHECKED} All of it holds.</p>{_verified_facts(report)}"
                f"{_quarantined(report)}</section>")
    items = "".join(_finding(f, anchors) for f in findings.items)
    return (f'<section class="banner bad" id="verdict" aria-label="Verdict">'
            f'<p class="verdict">\u2716 {_plural(len(findings), "integrity finding")}: the '
            "log was altered or damaged</p>"
            f"<p>{_CHECKED} It does not hold at the places below: the report's rows from the "
            f"first of them on are unverified, and marked so.</p>{_verified_facts(report)}"
            f'<ol class="findings">{items}</ol>{_quarantined(report)}</section>')


def _header(report: ReplayReport, generated: str) -> str:
    return (f"<header><h1>Compliance report: {text(report.namespace)}</h1>"
            f'<p class="meta">Generated {text(generated)} by flamingock-es '
            f"{text(__version__)} from <code class=\"id\">{text(report.log)}</code></p>"
            f'<nav class="screen-only"><a href="#verdict">Verdict</a>'
            f'<a href="#summary">Summary</a><a href="#runs">Runs ({len(report.runs)})</a>'
            f'<a href="#timeline">Timeline</a></nav></header>')


def _unit_badges(report: ReplayReport) -> dict[str, str]:
    return {unit_id: status_badge(unit.status.value)
            for unit_id, unit in report.state.units.items()}


def to_html(report: ReplayReport, generated_at: datetime | None = None) -> str:
    """Render ``report`` as a page; ``generated_at`` (default: now) is printed on it."""
    generated = human_time(generated_at or datetime.now(UTC))
    steps = all_steps(report)
    findings = Findings(report, steps)
    anchors = Anchors(report)
    body = [
        _header(report, generated),
        "<main>",
        _banner(report, findings, anchors),
        '<h2 id="summary">Summary</h2>', summary(report, steps),
        f'<h2 id="runs">Runs ({len(report.runs)})</h2>',
        run_sections(report, steps, findings, anchors),
        '<h2 id="timeline">Timeline per unit</h2>',
        timeline(steps, _unit_badges(report), findings),
        "</main>",
        f"<footer><p class=\"meta\">Generated {text(generated)} by flamingock-es "
        f"{text(__version__)}. Head hash {identifier(report.head_hash, 16)} at "
        f"{_plural(report.events, 'event')}: a later replay showing the same hash at the same "
        "count proves the history was not rewritten since.</p></footer>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Compliance report: {text(report.namespace)}</title>"
            f"<style>{stylesheet()}</style></head>\n<body>\n" + "\n".join(body)
            + "\n</body></html>\n")
