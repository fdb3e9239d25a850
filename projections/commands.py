"""The CLI subcommands of the read side: ``project`` and ``state``.

``flamingock_es.cli`` calls :func:`register` with its subparsers; each handler takes the
parsed ``args`` and returns an exit code. They are thin layers over :func:`run_projection`
and :class:`ProjectionReader`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from flamingock_es.backends import DEFAULT_BUS
from flamingock_es.errors import FlamingockError
from flamingock_es.workflow import load_settings

from .reader import ProjectionReader
from .stores import DEFAULT_STORE, open_store
from .worker import BatchReport, run_projection

__all__ = ["cmd_project", "cmd_state", "register"]

Handler = Callable[[argparse.Namespace], int]


def _common(parser: argparse.ArgumentParser, bus: bool) -> None:
    parser.add_argument("-c", "--config", default="flamingock.yaml",
                        help="workflow file whose bus, namespace and store are the defaults "
                             "(default: ./flamingock.yaml, if present)")
    if bus:
        parser.add_argument("--bus", help="event log: local:PATH or kafka://HOST:PORT "
                                          f"(default: the workflow's, else {DEFAULT_BUS})")
    parser.add_argument("--namespace", help="namespace (default: the workflow's, else default)")
    parser.add_argument("--store", help="projection store: sqlite:PATH or "
                                        "couchbase://HOST?bucket=NAME (default: the workflow's,"
                                        f" else {DEFAULT_STORE})")


def _defaults(args: argparse.Namespace) -> None:
    """Fill the options not given from the workflow file, then from the built-in defaults."""
    settings = load_settings(args.config)
    if hasattr(args, "bus") and args.bus is None:
        args.bus = settings.get("bus", DEFAULT_BUS)
    if args.namespace is None:
        args.namespace = str(settings.get("namespace", "default"))
    if args.store is None:
        args.store = settings.get("store", DEFAULT_STORE)


def register(subparsers: Any, common: Any = None) -> None:
    """Add ``project`` and ``state`` to an ``argparse`` subparsers object."""
    project = subparsers.add_parser(
        "project", help=cmd_project.__doc__.splitlines()[0] if cmd_project.__doc__ else None,
        description=cmd_project.__doc__)
    _common(project, bus=True)
    project.add_argument("--once", action="store_true",
                         help="catch up with the log, then exit (default: follow it)")
    project.add_argument("--rebuild", action="store_true",
                         help="drop this namespace's documents and replay the log from 0")
    project.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    project.set_defaults(handler=cmd_project)

    state = subparsers.add_parser(
        "state", help=cmd_state.__doc__.splitlines()[0] if cmd_state.__doc__ else None,
        description=cmd_state.__doc__)
    _common(state, bus=False)
    state.add_argument("what", nargs="?", choices=["summary", "unit", "run", "lock", "units"],
                       default="summary")
    state.add_argument("ident", nargs="?", help="the unit id or run id")
    state.add_argument("--json", action="store_true", help="print the document(s) as JSON")
    state.set_defaults(handler=cmd_state)


def cmd_project(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Project the audit log into the read-side store (follows the log unless --once)."""
    out = out or sys.stdout
    stop = threading.Event()
    _defaults(args)

    def progress(report: BatchReport) -> None:
        if not getattr(args, "quiet", False):
            print(f"projected {report.events} event(s) up to position {report.position}: "
                  f"{report.written} document(s) written, {report.skipped} already current "
                  f"({report.seconds * 1000:.0f} ms)", file=out, flush=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = None
    if not args.once and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        position = run_projection(args.bus, args.namespace, args.store, once=args.once,
                                  rebuild=args.rebuild, stop=stop, on_batch=progress)
    except KeyboardInterrupt:
        return 130
    except FlamingockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not args.quiet:
        print(f"{args.namespace}: projected up to position {position} into {args.store}",
              file=out)
    return 0


def cmd_state(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Show the projected state: summary, `unit ID`, `run ID`, `lock` or `units`."""
    out = out or sys.stdout
    try:
        _defaults(args)
        store = open_store(args.store)
    except FlamingockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        reader = ProjectionReader(store, args.namespace)
        what, ident = args.what, args.ident
        if what in ("unit", "run") and not ident:
            print(f"error: `state {what}` needs an id", file=sys.stderr)
            return 2
        doc: Any
        if what == "unit":
            doc = reader.unit(ident)
        elif what == "run":
            doc = reader.run(ident)
        elif what == "lock":
            doc = reader.lock()
        elif what == "units":
            doc = reader.units()
        else:
            doc = reader.summary()
        if doc is None:
            target = f"{what} {ident}" if ident else what
            print(f"no {target} in {store.name} for namespace {args.namespace!r} (has "
                  "`flamingock-es project` run?)", file=sys.stderr)
            return 1
        if args.json:
            json.dump(doc, out, indent=2, sort_keys=True)
            out.write("\n")
        else:
            _print(what, doc, out)
        return 0
    except FlamingockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        store.close()


def _print(what: str, doc: Any, out: TextIO) -> None:
    if what == "units":
        for unit in doc:
            print(f"{unit['unit_id']:<40} {unit['status']:<28} {unit['finished_at'] or '-'}",
                  file=out)
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
