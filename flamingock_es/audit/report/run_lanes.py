"""A run's units side by side: one lane per thread of work, each step a bar from its start to
its outcome, on the run's own time axis.

Drawn only for a run whose steps overlapped (a workflow with ``max_parallel`` above 1): one
unit after another is a single lane, which the steps table already says better. Lanes are
assigned greedily in start order (a step takes the first lane free when it starts), so the
number of lanes is the most steps that were running at once.
"""

from __future__ import annotations

from datetime import datetime

from ..replay import ChangeRow, RunRow
from .htmlkit import css_token, text
from .humanize import duration, parse_time

__all__ = ["run_lanes"]


def _span(row: ChangeRow) -> tuple[datetime, datetime] | None:
    start, end = parse_time(row.started_at), parse_time(row.finished_at)
    if start is None:
        return None
    return start, end or start


def run_lanes(run: RunRow, steps: list[ChangeRow]) -> str:
    """The lanes of ``run``'s apply steps, or ``""`` when no two of them overlapped."""
    timed = sorted(((span, row) for row in steps if row.action == "apply"
                    if (span := _span(row)) is not None), key=lambda item: item[0][0])
    lanes: list[datetime] = []  # when each lane is free again
    placed: list[tuple[int, tuple[datetime, datetime], ChangeRow]] = []
    for (start, end), row in timed:
        lane = next((i for i, free in enumerate(lanes) if free <= start), len(lanes))
        if lane == len(lanes):
            lanes.append(end)
        lanes[lane] = end
        placed.append((lane, (start, end), row))
    if len(lanes) < 2:
        return ""
    first = min(start for _, (start, _), _ in placed)
    last = max(end for _, (_, end), _ in placed)
    total = max((last - first).total_seconds(), 1e-3)
    bars: list[list[str]] = [[] for _ in lanes]
    for lane, (start, end), row in placed:
        left = 100 * (start - first).total_seconds() / total
        width = max(100 * (end - start).total_seconds() / total, 0.5)
        took = duration(row.duration_ms)
        bars[lane].append(
            f'<span class="bar s-{css_token(row.status)}" style="left:{left:.2f}%;'
            f'width:{width:.2f}%" title="{text(row.unit_id)}: {text(row.status)}, {took}">'
            f"{text(row.unit_id)}</span>")
    rows = "".join(f'<div class="lane">{"".join(b)}</div>' for b in bars)
    return (f'<div class="lanes" aria-label="units side by side in run {text(run.run_id)}">'
            f'<div class="muted">{len(lanes)} lanes: the most units running at once, over '
            f'{duration(total * 1000)}</div>{rows}</div>')
