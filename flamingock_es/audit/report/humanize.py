"""Report values as a person reads them: times with their zone, durations, shortened texts.

Pure text, no HTML: the report rows carry ISO times and raw error messages (the JSON and CSV
formats keep them so); a page for a person shows them here first.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ..replay import ChangeRow, RunRow

__all__ = [
    "INCOMPLETE",
    "answers_request",
    "compress_number_lists",
    "duration",
    "human_time",
    "in_doubt",
    "outcome_key",
    "outcome_text",
    "parse_time",
    "shorten",
    "span_between",
    "trigger_text",
]

INCOMPLETE = "INCOMPLETE"
"""The outcome key of a run whose log ends without a ``RunFinished``."""

_TRIGGERS = {
    "cli": "started from the command line",
    "library": "started by the application at start-up (library call)",
    "request": "answering a change request",
    "undo": "an undo from the command line",
    "mark": "a manual mark from the command line",
}

_ELLIPSIS = "\u2026"
# A bracketed list of 4 or more integers, as an http-request error quotes its accepted codes.
_NUMBER_LIST = re.compile(r"([\[(])\s*(\d+(?:\s*,\s*\d+){3,})\s*([\])])")


def parse_time(text: str) -> datetime | None:
    """An ISO time from a report row, or None for an empty one (no such event)."""
    return datetime.fromisoformat(text) if text else None


def human_time(value: datetime | str | None) -> str:
    """``2026-11-27 10:30:15 UTC``: to the second, in UTC, the zone named."""
    when = parse_time(value) if isinstance(value, str) else value
    if when is None:
        return ""
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def duration(ms: float | None) -> str:
    """``12.5 ms``, ``1.52 s``, ``3 min 5 s``, ``2 h 4 min``: precise enough, never noisy."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def span_between(start: str, end: str) -> float | None:
    """Milliseconds from ``start`` to ``end`` (ISO times), or None when either is missing."""
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return None
    return (last - first).total_seconds() * 1000


def _ranges(numbers: list[int]) -> str:
    """``200-299, 304``: consecutive runs of numbers folded into ranges."""
    parts: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        parts.append(str(start) if start == prev else f"{start}\u2013{prev}")
        if number is not None:
            start = prev = number
    return ", ".join(parts)


def compress_number_lists(text: str) -> str:
    """Fold long integer lists into ranges: ``expected one of [200, 201, ..., 299]`` (100
    status codes) reads ``expected one of [200\u2013299]``. Nothing is lost: a range is exact."""
    def fold(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(2).split(",")]
        return f"{match.group(1)}{_ranges(numbers)}{match.group(3)}"

    return _NUMBER_LIST.sub(fold, text)


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary near ``limit`` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit)
    return text[: cut if cut > 0 else limit].rstrip(" ,;:") + _ELLIPSIS


def outcome_key(run: RunRow) -> str:
    """The run's outcome, or :data:`INCOMPLETE` when none was recorded."""
    return run.outcome or INCOMPLETE


def outcome_text(run: RunRow) -> str:
    """How the run ended, in words; a killed run says so rather than showing nothing."""
    if run.outcome:
        return run.outcome
    return "incomplete (no outcome recorded: the process died or was cut off)"


def trigger_text(trigger: str) -> str:
    """What started a run, in words."""
    return _TRIGGERS.get(trigger, f"trigger {trigger!r}" if trigger else "trigger not recorded")


def answers_request(run: RunRow) -> bool:
    """The run was asked for by a change request (rather than started directly)."""
    return bool(run.request_id) or run.trigger == "request"


def in_doubt(row: ChangeRow) -> bool:
    """A step that started and has no outcome: its process died mid-change."""
    return row.status == "STARTED" and not row.finished_at
