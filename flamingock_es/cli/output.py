"""What every command shares: settings from the flags, JSON and table output, time values."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from ..definition.settings import Settings, resolve_settings
from ..definition.workflow import Workflow, load_workflow
from ..errors import ConfigError
from ..run.progress import Progress
from .progress import console_progress
from .remedies import REASON_PLACEHOLDER

__all__ = ["jsonable", "parse_time", "print_json", "progress", "reason", "settings", "table",
           "workflow"]


def settings(args: argparse.Namespace, *, required: bool = False) -> Settings:
    """The settings the flags, the workflow file and the environment give, resolved once."""
    resolved: Settings | None = getattr(args, "_settings", None)
    if resolved is None or required:
        resolved = resolve_settings(args.config, required=required, bus=args.bus,
                                    namespace=args.namespace,
                                    environment=args.environment, labels=args.labels,
                                    store=getattr(args, "store", None),
                                    tenant=getattr(args, "tenant", None))
        args._settings = resolved
    return resolved


_PLACEHOLDERS = {REASON_PLACEHOLDER, "…", "r", "reason", "<reason>", "why", "todo", "tbd",
                 "xxx"}
"""What a command line copied as it was written says instead of a reason (``--reason
"..."`` from a remedy, ``--reason R`` from the docs)."""


def reason(args: argparse.Namespace) -> str:
    """The ``--reason`` a decision is recorded with: it may not be blank, nor the
    placeholder of a suggested command copied as it is."""
    given: str = args.reason
    if not given.strip():
        raise ConfigError(f"{args.command} needs a --reason: it is written to the audit log")
    if given.strip().lower() in _PLACEHOLDERS or not given.strip(". …"):
        raise ConfigError(f"{args.command} --reason {given!r} is the placeholder of the "
                          "suggested command, not a reason: write why you decided (what you "
                          "found, the ticket), it is written to the audit log")
    return given


def workflow(args: argparse.Namespace) -> Workflow:
    """The workflow file's units, loaded (their code imported): for commands that run them."""
    return load_workflow(settings(args, required=True))


def progress(args: argparse.Namespace) -> Progress:
    """What a run tells the person: nothing with --json or -q; a status line with an ETA on a
    terminal; plain lines otherwise."""
    return Progress() if args.json or args.quiet else console_progress(sys.stderr)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values: dataclasses, enums, times and bytes included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "avro_name"):
            out = {"type": type(value).__name__, **out}
        return out
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def print_json(value: Any) -> None:
    json.dump(jsonable(value), sys.stdout, indent=2)
    sys.stdout.write("\n")


def table(rows: Sequence[Sequence[str]], indent: str = "", out: TextIO | None = None) -> None:
    """Print ``rows`` with every column but the last as wide as its widest cell, so long
    unit ids keep the columns aligned."""
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print(indent + "  ".join([*cells, row[-1]]).rstrip(), file=out or sys.stdout)


def parse_time(text: str | None, flag: str = "--since") -> datetime | None:
    """An ISO time (UTC unless it names an offset); a clear error for anything else."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{flag} {text!r} is not a time: use ISO 8601, e.g. 2026-11-27 or "
                          "2026-11-27T10:00 (UTC unless an offset such as +01:00 is given)"
                          ) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
