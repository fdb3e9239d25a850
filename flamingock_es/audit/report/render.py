"""The compliance report as JSON, CSV (one row per change step) or a self-contained HTML page."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any

from ...errors import ConfigError
from ..replay import ChangeRow, ReplayReport

__all__ = ["FORMATS", "as_json", "render", "to_csv"]

FORMATS = ("json", "csv", "html")


def render(report: ReplayReport, fmt: str) -> str:
    """The report as ``json``, ``csv`` or ``html``."""
    if fmt == "json":
        return json.dumps(as_json(report), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report.changes)
    if fmt == "html":
        from .html import to_html  # the page's modules load when a page is asked for

        return to_html(report)
    raise ConfigError(f"unknown report format {fmt!r}: use json, csv or html")


def as_json(report: ReplayReport) -> dict[str, Any]:
    """The report as plain JSON-able values."""
    return {
        "log": report.log, "namespace": report.namespace, "verified": report.ok,
        "events": report.events, "head_hash": report.head_hash,
        "since": report.since, "until": report.until,
        "breaks": [asdict(b) for b in report.breaks],
        "findings": [asdict(f) for f in report.findings],
        "quarantined": [{**asdict(q), "at": q.at.isoformat()} for q in report.quarantined],
        "runs": [asdict(r) for r in report.runs],
        "changes": [asdict(c) for c in report.changes],
        # a rollout namespace's log (NAMESPACE._rollouts): who started each rollout, every
        # wave, every tenant's outcome, as verified above
        **({"rollouts": [r.as_json() for r in report.state.rollouts.values()]}
           if report.state.rollouts else {}),
    }


def to_csv(rows: list[ChangeRow]) -> str:
    """One CSV line per change step, with a header line."""
    out = io.StringIO()
    names = list(ChangeRow.__dataclass_fields__)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return out.getvalue()
