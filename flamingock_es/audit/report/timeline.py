"""A timeline per unit: one lane each, a mark per step, a time axis and a status legend.

Plain HTML positioned in percentages of the report's time range: no script, so it prints.
Each mark links to its step's row (where everything a hover shows is written out) and
carries its status letter, so the lanes read on black-and-white paper too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..replay import ChangeRow
from .findings import Findings
from .htmlkit import css_token, text
from .humanize import duration, human_time, parse_time
from .steps import step_anchor
from .style import STATUSES

__all__ = ["Scale", "legend", "timeline"]

# Candidate distances between axis ticks, in seconds: the first to give at most
# _MAX_TICKS ticks over the range wins.
_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
          3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000, 31536000)
_MAX_TICKS = 7
# Marks closer than this (percent of the lane) go on separate rows of their lane, so none
# hides another: a mark is 2.4em wide, about 3% of a lane on a screen and 6% on paper.
_MIN_GAP_PERCENT = 6.0
_TWO_DAYS = timedelta(days=2)
_ROW_PX = 24


@dataclass(frozen=True)
class Scale:
    """The report's time range, mapped onto 0-100 percent of a lane."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, rows: Iterable[ChangeRow]) -> Scale | None:
        """The range the steps' times span, or None when there are no steps."""
        times = [t for row in rows for t in (parse_time(row.started_at),
                                             parse_time(row.finished_at)) if t is not None]
        if not times:
            return None
        start, end = min(times), max(times)
        if end - start < timedelta(seconds=1):  # a single instant still needs a width
            start, end = start - timedelta(milliseconds=500), end + timedelta(milliseconds=500)
        return cls(start.astimezone(UTC), end.astimezone(UTC))

    @property
    def seconds(self) -> float:
        """The range's length."""
        return (self.end - self.start).total_seconds()

    def percent(self, when: datetime) -> float:
        """Where ``when`` falls on a lane, from 0 (start) to 100 (end)."""
        return 100 * (when - self.start).total_seconds() / self.seconds

    def ticks(self) -> list[datetime]:
        """Round times inside the range, evenly spaced, at most ``_MAX_TICKS`` of them."""
        step = next((s for s in _STEPS if self.seconds / s <= _MAX_TICKS), _STEPS[-1])
        epoch = self.start.timestamp()
        first = (epoch // step + 1) * step
        count = int((self.end.timestamp() - first) // step) + 1
        return [datetime.fromtimestamp(first + i * step, UTC) for i in range(max(count, 0))]

    def label(self, when: datetime) -> str:
        """A tick's label: only what changes along this axis (the caption names the rest)."""
        if self.end - self.start > _TWO_DAYS:
            return f"{when:%Y-%m-%d}"
        if self.start.date() != self.end.date():
            return f"{when:%m-%d %H:%M}"
        if self.seconds < 10:
            return f"{when:%H:%M:%S}.{when.microsecond // 1000:03d}"
        return f"{when:%H:%M:%S}" if self.seconds < 3600 else f"{when:%H:%M}"

    def caption(self) -> str:
        """The zone, and the part of the date that the labels leave out."""
        if self.start.date() == self.end.date():
            return f"UTC, {self.start:%Y-%m-%d}"
        if self.end - self.start <= _TWO_DAYS and self.start.year == self.end.year:
            return f"UTC, {self.start:%Y}"
        return "UTC"


@dataclass(frozen=True)
class _Mark:
    row: ChangeRow
    left: float
    width: float
    lane_row: int = 0


def _marks(steps: list[ChangeRow], scale: Scale) -> list[_Mark]:
    """Each step placed on the lane, on the first lane row where it overlaps nothing."""
    ends: list[float] = []  # where each lane row is taken up to
    out = []
    for row in steps:
        start = parse_time(row.started_at or row.finished_at)
        if start is None:  # no row lacks both times; skip rather than place it anywhere
            continue
        end = parse_time(row.finished_at) or start
        left = scale.percent(start)
        width = max(scale.percent(end) - left, 0.0)
        lane_row = next((i for i, taken in enumerate(ends) if left >= taken), len(ends))
        if lane_row == len(ends):
            ends.append(0.0)
        ends[lane_row] = left + max(width, _MIN_GAP_PERCENT)
        out.append(_Mark(row, left, width, lane_row))
    return out


def _hover(row: ChangeRow) -> str:
    parts = [row.unit_id, row.action, row.status, human_time(row.finished_at or row.started_at),
             duration(row.duration_ms), f"by {row.principal}@{row.host}", f"run {row.run_id}"]
    if row.request_id:
        parts.append(f"request {row.request_id}")
    return " \u00b7 ".join(p for p in parts if p)


def _mark_html(mark: _Mark, findings: Findings) -> str:
    tone = STATUSES.get(mark.row.status)
    letter = tone.letter if tone else "\u2022"
    finding = findings.of_step(mark.row)
    hover = _hover(mark.row) + (f" \u00b7 UNVERIFIED: after finding {finding.number}"
                                if finding else "")
    tainted = " tainted" if finding else ""
    return (f'<a class="mark s-{css_token(mark.row.status)}{tainted}" '
            f'href="#{step_anchor(mark.row)}" style="left:{mark.left:.2f}%;'
            f'width:{mark.width:.2f}%;'
            f'top:{mark.lane_row * _ROW_PX + 4}px" title="{text(hover)}">{text(letter)}</a>')


def _lane(unit_id: str, status_badge: str, steps: list[ChangeRow], scale: Scale,
          ticks: list[float], findings: Findings) -> str:
    marks = _marks(steps, scale)
    rows = 1 + max((m.lane_row for m in marks), default=0)
    grid = "".join(f'<span class="grid" style="left:{t:.2f}%"></span>' for t in ticks)
    inner = "".join(_mark_html(m, findings) for m in marks)
    count = f'{len(steps)} step{"s" if len(steps) != 1 else ""}'
    return (f'<div class="unit"><strong class="wrap">{text(unit_id)}</strong><br>'
            f'{status_badge} <span class="muted">{count}</span></div>'
            f'<div class="lane" style="min-height:{rows * _ROW_PX + 8}px">'
            f'<div class="track">{grid}{inner}</div></div>')


def _edge(percent: float) -> str:
    """Labels near an end of the axis are aligned to stay inside it."""
    return " start" if percent < 6 else " end" if percent > 94 else ""


def legend() -> str:
    """Every status colour, its letter and what it means."""
    items = "".join(
        f'<li><span class="swatch s-{name}">{text(tone.letter)}</span>'
        f"<span><strong>{text(name)}</strong>: {text(tone.meaning)}</span></li>"
        for name, tone in STATUSES.items())
    return f'<ul class="legend" aria-label="Status colours">{items}</ul>'


def timeline(rows: list[ChangeRow], unit_badges: dict[str, str], findings: Findings) -> str:
    """Lanes for the units of ``rows`` (in order of first appearance), with an axis.

    ``unit_badges`` gives each unit's final-status badge; a step that ``findings`` leave
    unverified has its mark outlined and says so.
    """
    scale = Scale.of(rows)
    if scale is None:
        return '<p class="muted">No change steps in this report.</p>'
    units: dict[str, list[ChangeRow]] = {}
    for row in rows:
        units.setdefault(row.unit_id, []).append(row)
    tick_times = scale.ticks()
    tick_pct = [scale.percent(t) for t in tick_times]
    lanes = "".join(_lane(unit_id, unit_badges.get(unit_id, ""), steps, scale, tick_pct,
                          findings) for unit_id, steps in units.items())
    labels = "".join(f'<span class="tick{_edge(p)}" style="left:{p:.2f}%">'
                     f"{text(scale.label(t))}</span>"
                     for t, p in zip(tick_times, tick_pct, strict=True))
    axis = (f'<div class="axis-caption">{text(scale.caption())}</div>'
            f'<div class="axis"><div class="track">{labels}</div></div>')
    span = (f"From {human_time(scale.start)} to {human_time(scale.end)} "
            f"({duration(scale.seconds * 1000)}).")
    return (f'{legend()}<p class="muted">{text(span)} Each mark is a step; select it '
            f"for its row.</p><div class=\"timeline\">{lanes}{axis}</div>")
