"""The compliance flow's commands: ``history``, ``verify``, ``replay``. They read the log only:
no unit code is imported, and a namespace that was never written is an error."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..compliance import FORMATS, render
from .output import parse_time, print_json, settings

__all__ = ["register"]


def cmd_history(args: argparse.Namespace) -> int:
    """List audit events, oldest first; filter by unit, run or time."""
    s = settings(args)
    events = api.history(s.bus, s.namespace, unit=args.unit, run_id=args.run,
                         since=parse_time(args.since), until=parse_time(args.until, "--until"),
                         options=s.bus_options)
    if args.json:
        print_json(events)
        return 0
    for event in events:
        payload = event.payload
        subject = getattr(payload, "unit_id", None) or ""
        extra = ""
        for name in ("outcome", "error", "reason", "holder"):
            value = getattr(payload, name, None)
            if value:
                extra = f"{name}={value}"
                break
        print(f"{event.seq:>6} {event.time:%Y-%m-%d %H:%M:%S} {event.kind:<22} {subject:<28} "
              f"run={event.run_id} by={event.actor.principal}@{event.actor.host} {extra}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Replay the log with the shared fold; check its hash chain; report any break."""
    s = settings(args)
    report = api.verify(s.bus, s.namespace, s.bus_options)
    if args.json:
        print_json({"log": report.log, "ok": report.ok, "events": report.events,
                    "head_hash": report.head_hash, "breaks": report.breaks,
                    "counts": report.state.counts()})
    else:
        print(f"{report.log}: {report.events} events, head {report.head_hash}")
        for br in report.breaks:
            print(f"  BREAK at offset {br.position} (seq {br.seq}): {br.reason}")
        print("chain intact" if report.ok else f"{len(report.breaks)} break(s) found")
    return 0 if report.ok else 4


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the audit log, verify its hash chain, and export a compliance report."""
    s = settings(args)
    report = api.replay(s.bus, s.namespace, since=parse_time(args.since),
                        until=parse_time(args.until, "--until"), options=s.bus_options)
    text = render(report, args.format)
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if not args.quiet:
            print(f"{args.output}: {len(report.changes)} change(s), {len(report.runs)} run(s), "
                  f"chain {'intact' if report.ok else 'BROKEN'}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for br in report.breaks:
        print(f"BREAK at offset {br.position} (seq {br.seq}): {br.reason}", file=sys.stderr)
    return 0 if report.ok else 4


def register(add: Any) -> None:
    """Add the compliance flow's commands through ``add(name, handler) -> parser``."""
    p = add("history", cmd_history)
    p.add_argument("--unit", help="only events of this unit")
    p.add_argument("--run", help="only events of this run id")
    p.add_argument("--since", help="ISO time, e.g. 2026-11-27T10:00 (UTC unless an offset)")
    p.add_argument("--until", help="ISO time")
    add("verify", cmd_verify)
    p = add("replay", cmd_replay)
    p.add_argument("--since", help="ISO time: report changes from then on")
    p.add_argument("--until", help="ISO time")
    p.add_argument("--format", choices=FORMATS, default="json")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
