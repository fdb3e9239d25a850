"""The compliance report as one self-contained HTML page: runs, then a timeline per unit."""

from __future__ import annotations

from datetime import datetime
from html import escape

from .replay import ChangeRow, ReplayReport

__all__ = ["to_html"]

_COLOURS = {
    "APPLIED": "#2e7d32", "MANUAL_MARKED_AS_APPLIED": "#66bb6a", "FAILED": "#c62828",
    "ROLLED_BACK": "#ef6c00", "MANUAL_MARKED_AS_ROLLED_BACK": "#ffa726",
    "ROLLBACK_FAILED": "#6a1b9a", "STARTED": "#757575",
}

_STYLE = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.ok{color:#2e7d32}.bad{color:#c62828}
.lane{position:relative;height:22px;background:#fafafa;border:1px solid #eee;margin:2px 0}
.mark{position:absolute;top:2px;height:16px;min-width:6px;border-radius:3px;opacity:.85}
code{font-size:12px}
"""


def _time(text: str) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def _bar(row: ChangeRow, lo: float, span: float) -> str:
    start = _time(row.started_at) or _time(row.finished_at) or lo
    end = _time(row.finished_at) or start
    left = 100 * (start - lo) / span
    width = max(100 * (end - start) / span, 0.4)
    title = (f"{row.action} {row.status} at {row.finished_at or row.started_at} by "
             f"{row.principal}@{row.host} run {row.run_id}"
             + (f" request {row.request_id}" if row.request_id else "")
             + (f": {row.error}" if row.error else ""))
    colour = _COLOURS.get(row.status, "#999")
    return (f'<div class="mark" style="left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colour}" title="{escape(title)}"></div>')


def to_html(report: ReplayReport) -> str:
    """Render ``report``; the timeline of each unit is scaled to the whole report's range."""
    rows = report.changes
    times = [t for r in rows for t in (_time(r.started_at), _time(r.finished_at)) if t]
    lo, hi = (min(times), max(times)) if times else (0.0, 1.0)
    span = max(hi - lo, 1e-3)
    verdict = ('<p class="ok">Hash chain and sequence intact.</p>' if report.ok else
               '<p class="bad">INTEGRITY BREAKS:</p><ul>' + "".join(
                   f"<li>offset {b.position} (seq {b.seq}): {escape(b.reason)}</li>"
                   for b in report.breaks) + "</ul>")
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>Compliance report "
           f"{escape(report.namespace)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>Compliance report: {escape(report.namespace)}</h1>",
           f"<p>{escape(report.log)}: {report.events} events, head hash "
           f"<code>{report.head_hash}</code>"
           + (f"; from {escape(report.since)}" if report.since else "")
           + (f" until {escape(report.until)}" if report.until else "") + "</p>", verdict,
           "<h2>Runs</h2><table><tr><th>run</th><th>trigger</th><th>request</th><th>by</th>"
           "<th>started</th><th>finished</th><th>outcome</th><th>applied</th>"
           "<th>compensated</th><th>error</th><th>trace</th></tr>"]
    for run in report.runs:
        cells: tuple[str, ...] = (
            run.run_id, run.trigger, run.request_id, f"{run.principal}@{run.host}",
            run.started_at, run.finished_at, run.outcome, run.applied, run.compensated,
                 run.error, run.trace_id)
        out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table><h2>Timeline per unit</h2>")
    units: dict[str, list[ChangeRow]] = {}
    for row in rows:
        units.setdefault(row.unit_id, []).append(row)
    for unit_id, steps in units.items():
        out.append(f"<h3>{escape(unit_id)} <small>({escape(steps[-1].status)})</small></h3>"
                   f'<div class="lane">{"".join(_bar(r, lo, span) for r in steps)}</div>')
        out.append("<table><tr><th>seq</th><th>action</th><th>status</th><th>by</th>"
                   "<th>finished</th><th>ms</th><th>run</th><th>request</th><th>error</th>"
                   "<th>trace</th></tr>")
        for r in steps:
            cells = (str(r.seq), r.action, r.status, f"{r.principal}@{r.host}", r.finished_at,
                     "" if r.duration_ms is None else f"{r.duration_ms:.1f}", r.run_id,
                     r.request_id, r.error, r.trace_id)
            out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
        out.append("</table>")
    out.append("</body></html>\n")
    return "\n".join(out)
