"""The report at a glance: units by final status, runs by outcome, who applied, who asked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ..replay import ChangeRow, ReplayReport
from .htmlkit import expandable, table, text
from .humanize import INCOMPLETE, answers_request, outcome_key
from .run_sections import outcome_badge, status_badge
from .style import OUTCOMES, STATUSES

__all__ = ["summary"]


def _card(title: str, note: str, head: list[str], rows: list[str]) -> str:
    body = table(head, rows) if rows else '<p class="muted">None.</p>'
    return (f"<section><h3>{text(title)}</h3><p class=\"muted\">{text(note)}</p>"
            f"{body}</section>")


def _ordered(counts: Counter[str], order: Mapping[str, object]) -> list[str]:
    """The counted keys in palette order, unknown ones last."""
    return sorted(counts, key=lambda k: list(order).index(k) if k in order else len(order))


def _units(report: ReplayReport) -> str:
    by_status: dict[str, list[str]] = {}
    for unit in report.state.units.values():
        by_status.setdefault(unit.status.value, []).append(unit.unit_id)
    counts = Counter({status: len(ids) for status, ids in by_status.items()})
    rows = [f"<tr><td>{status_badge(status)}</td><td class=\"num\">{counts[status]}</td>"
            f"<td>{expandable(', '.join(by_status[status]), limit=120)}</td></tr>"
            for status in _ordered(counts, STATUSES)]
    return _card("Units by final status", "At the end of the log, whatever range is selected.",
                 ["Status", "Units", "Which"], rows)


def _runs(report: ReplayReport) -> str:
    counts = Counter(outcome_key(run) for run in report.runs)
    example = {outcome_key(run): run for run in report.runs}
    rows = [f"<tr><td>{outcome_badge(example[key])}</td><td class=\"num\">{counts[key]}</td>"
            "</tr>" for key in _ordered(counts, OUTCOMES)]
    note = ("A run with no outcome recorded was killed mid-run (or was still running)."
            if INCOMPLETE in counts else "How each run in the range ended.")
    return _card("Runs by outcome", note, ["Outcome", "Runs"], rows)


def _appliers(report: ReplayReport, steps: list[ChangeRow]) -> str:
    runs = Counter(f"{run.principal}@{run.host}" for run in report.runs)
    done = Counter(f"{row.principal}@{row.host}" for row in steps)
    rows = [f"<tr><td>{text(who)}</td><td class=\"num\">{runs[who]}</td>"
            f"<td class=\"num\">{done[who]}</td></tr>" for who in sorted(runs | done)]
    return _card("Who applied", "The runner's principal at its host.",
                 ["Principal@host", "Runs", "Steps"], rows)


def _requesters(report: ReplayReport) -> str:
    requested = [run for run in report.runs if answers_request(run)]
    runs = Counter(run.requested_by or "" for run in requested)
    unnamed = '<span class="muted">not recorded</span>'
    rows = [f'<tr><td>{text(who) if who else unnamed}</td><td class="num">{runs[who]}</td></tr>'
            for who in sorted(runs)]
    direct = len(report.runs) - len(requested)
    note = (f"Principals of change requests; {direct} run(s) were started directly, "
            "with no request.")
    return _card("Who requested", note, ["Requested by", "Runs"], rows)


def summary(report: ReplayReport, steps: list[ChangeRow]) -> str:
    """Four small tables side by side (stacked on a narrow page)."""
    return (f'<div class="summary">{_units(report)}{_runs(report)}{_appliers(report, steps)}'
            f"{_requesters(report)}</div>")
