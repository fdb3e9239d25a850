"""The read side's commands: ``project`` folds the log into the store, ``state`` reads it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from .. import api
from ..definition.settings import DEFAULT_STORE, Settings
from ..errors import ConfigError, HistoryError, Remedy, RemedyKind
from ..namespace import tenant_needed
from ..projections import ProjectedBatch, ProjectionReader
from .output import settings, table
from .remedies import command
from .status_codes import exit_code

__all__ = ["register"]


def cmd_project(args: argparse.Namespace) -> int:
    """Project the audit log into the read-side store (follows the log unless --once).

    With --all-tenants, a workflow with tenants: its rollout namespace and every tenant's
    namespace, one worker each, in this one process (what `flamingock-es dashboard`
    reads)."""
    s = settings(args)
    stop = threading.Event()
    if args.all_tenants:
        return _project_tenants(args, s, stop)

    def progress(batch: ProjectedBatch) -> None:
        if not args.quiet:
            print(f"projected {batch.events} event(s) up to position {batch.position}: "
                  f"{batch.written} document(s) written, {batch.skipped} already current "
                  f"({batch.seconds * 1000:.0f} ms)", flush=True)

    with _stopped_by_sigterm(stop, following=not args.once):
        position = api.project(s, once=args.once, rebuild=args.rebuild, stop=stop,
                               on_batch=progress, batch_size=args.batch_size)
    if not args.quiet:
        print(f"{s.namespace}: projected up to position {position} into {s.store}")
    return 0


@contextmanager
def _stopped_by_sigterm(stop: threading.Event, *, following: bool) -> Iterator[None]:
    """While a projection follows the log, SIGTERM sets ``stop`` (the projection ends as it
    does on a stop) instead of killing the process; the previous handler comes back after."""
    if not following:
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _project_tenants(args: argparse.Namespace, s: Settings, stop: threading.Event) -> int:
    if s.tenant is not None:
        raise ConfigError("project --all-tenants projects every tenant: leave --tenant out")

    def progress(namespace: str, batch: ProjectedBatch) -> None:
        if not args.quiet:
            print(f"{namespace}: projected {batch.events} event(s) up to position "
                  f"{batch.position} ({batch.written} document(s) written)", flush=True)

    with _stopped_by_sigterm(stop, following=not args.once):
        positions = api.project_tenants(s, once=args.once, rebuild=args.rebuild, stop=stop,
                                        on_batch=progress, batch_size=args.batch_size)
    if not args.quiet:
        for namespace, position in positions.items():
            where = "no log yet" if position < 0 else f"projected up to position {position}"
            print(f"{namespace}: {where} into {s.store}")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    """Show the projected state: summary, `unit ID`, `run ID`, `lock` or `units`."""
    s = settings(args)
    if s.tenant_unnamed:
        raise tenant_needed(s, reading=True)
    what, ident = args.what, args.ident
    if what in ("unit", "run") and not ident:
        print(f"flamingock-es: error: `state {what}` needs an id", file=sys.stderr)
        return 2
    with api.open_projection(s) as reader:
        code = _show(args, reader, what, ident)
    if code != 0:
        return code
    lag = api.projection_lag(s)
    if lag.behind:
        remedy = command(Remedy(RemedyKind.PROJECT))
        print(f"flamingock-es: BEHIND: the projection holds the log up to offset "
              f"{lag.projected}, and the log has {lag.behind} event(s) more (up to offset "
              f"{lag.last}); what is shown is out of date. Bring it up to date: {remedy} (or "
              "keep a `flamingock-es project` worker running).", file=sys.stderr)
        return exit_code(HistoryError)
    return 0


def _show(args: argparse.Namespace, reader: ProjectionReader, what: str,
          ident: str | None) -> int:
    doc: Any
    if what == "unit":
        doc = reader.unit(str(ident))
    elif what == "run":
        doc = reader.run(str(ident))
    elif what == "lock":
        doc = reader.lock()
    elif what == "units":
        doc = reader.units()
    else:
        doc = reader.summary()
    if doc is None:
        target = f"{what} {ident}" if ident else what
        print(f"no {target} in {reader.store.name} for namespace {reader.namespace!r} (has "
              "`flamingock-es project` run?)", file=sys.stderr)
        return 1
    if args.json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        _print(what, doc, sys.stdout)
    summary = doc if what == "summary" else reader.summary()
    stale = (summary or {}).get("stale")
    if stale:
        remedy = Remedy(RemedyKind(stale["remedy"]["kind"]),
                        position=stale["remedy"].get("position"))
        print(f"flamingock-es: STALE: the projection stopped before offset {stale['position']} "
              f"({stale['kind']}: {stale['reason']}); what is shown may be out of date. An "
              f"operator decides: {command(remedy)} (see docs/recovery.md).", file=sys.stderr)
        return exit_code(HistoryError)
    return 0


def _print(what: str, doc: Any, out: TextIO) -> None:
    if what == "units":
        table([(unit["unit_id"], unit["status"], unit["finished_at"] or "-") for unit in doc],
              out=out)
        return
    if what == "summary":
        counts = ", ".join(f"{k}={v}" for k, v in doc["counts"].items()) or "no units"
        last = doc.get("last_run") or {}
        print(f"namespace {doc['namespace']}: {counts}", file=out)
        print(f"last run: {last.get('run_id', '-')} {last.get('outcome') or ''}", file=out)
        print(f"events: {doc['events']}  head: {doc['head_hash'][:16]}  "
              f"position: {doc['position']}", file=out)
        if doc.get("attention"):
            print(f"needs attention: {', '.join(doc['attention'])}", file=out)
        return
    if what == "lock":
        if doc["held"]:
            print(f"held by {doc['holder']} since {doc['since']} (generation "
                  f"{doc['generation']}, run {doc['run_id']})", file=out)
        else:
            print("free", file=out)
        return
    for key, value in doc.items():
        if value not in (None, [], {}):
            print(f"{key:<16} {json.dumps(value) if isinstance(value, dict | list) else value}",
                  file=out)


def register(add: Any) -> None:
    """Add the read side's commands through ``add(name, handler) -> parser``."""
    store_help = (f"projection store: sqlite:PATH or couchbase://HOST?bucket=NAME (default: "
                  f"the workflow's, else {DEFAULT_STORE})")
    p = add("project", cmd_project)
    p.add_argument("--store", help=store_help)
    p.add_argument("--once", action="store_true",
                   help="catch up with the log, then exit (default: follow it)")
    p.add_argument("--rebuild", action="store_true",
                   help="drop this namespace's documents and replay the log from 0")
    p.add_argument("--all-tenants", action="store_true",
                   help="a workflow with tenants: project its rollout namespace and every "
                        "tenant's namespace, one worker each")
    p.add_argument("--batch-size", type=int, default=500,
                   help="events folded before their documents are written (default 500)")
    p = add("state", cmd_state)
    p.add_argument("--store", help=store_help)
    p.add_argument("what", nargs="?", choices=["summary", "unit", "run", "lock", "units"],
                   default="summary")
    p.add_argument("ident", nargs="?", help="the unit id or run id")
