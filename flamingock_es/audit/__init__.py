"""The compliance flow: the log replayed with the shared fold, its integrity proven, reported.

:func:`replay_records` is the replay (``verify`` is the same without the rows);
:func:`render` writes the report as JSON, CSV or HTML. The bus-level calls are
:func:`flamingock_es.replay` and :func:`flamingock_es.verify`.
"""

from __future__ import annotations

from .checkpoint import Checkpoint, check_expectations, latest_checkpoint, parse_head
from .replay import (
    ChangeRow,
    Entry,
    ReplayReport,
    RunRow,
    Window,
    replay_records,
    select_events,
)
from .report.render import FORMATS, render, to_csv

__all__ = [
    "FORMATS",
    "ChangeRow",
    "Checkpoint",
    "Entry",
    "ReplayReport",
    "RunRow",
    "Window",
    "check_expectations",
    "latest_checkpoint",
    "parse_head",
    "render",
    "replay_records",
    "select_events",
    "to_csv",
]
