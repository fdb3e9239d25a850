"""``flamingock-es``: the command line, a thin layer over :mod:`flamingock_es.api`.

Exit codes: 0 success (or nothing to do); 1 unexpected error; 2 invalid configuration or
change file; 3 lock timeout or lock lost; 4 undecodable or inconsistent audit log; 5 an audit
event or projection could not be written; 6 checksum drift; 7 manual intervention required;
8 a unit failed (after compensation); 9 the run was stopped between units (SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import api
from .errors import FlamingockError
from .reporting import ConsoleReporter, Reporter
from .workflow import load_workflow

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "avro_name"):
            out = {"type": type(value).__name__, **out}
        return out
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _print_json(value: Any) -> None:
    json.dump(_jsonable(value), sys.stdout, indent=2)
    sys.stdout.write("\n")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"bus": args.bus, "namespace": args.namespace}


def _reporter(args: argparse.Namespace) -> Reporter:
    return Reporter() if args.json or args.quiet else ConsoleReporter()


def cmd_run(args: argparse.Namespace) -> int:
    """Apply every pending ChangeUnit of the workflow, under the namespace lock."""
    result = api.run(args.config, units=args.unit, accept_drift=args.accept_drift,
                     reporter=_reporter(args), trigger="cli", **_overrides(args))
    if args.json:
        _print_json(result)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what `run` would apply, in order, and why every other unit is skipped."""
    plan = api.plan(args.config, accept_drift=args.accept_drift, **_overrides(args))
    if args.json:
        _print_json({"units": [{"stage": p.stage, "unit": p.unit.id, "action": p.action.value,
                                "reason": p.reason} for p in plan.units],
                     "blockers": plan.blockers, "unknown": plan.unknown})
        return 0
    for p in plan.units:
        name = f"{p.stage}/{p.unit.id}"
        print(f"{p.action.value:<12} {name:<40} {p.reason}")
    for blocker in plan.blockers:
        print(f"\nBLOCKED {blocker.unit_id}: {blocker.message}\n  to resolve: {blocker.resolve}")
    for uid in plan.unknown:
        print(f"note: {uid} is in the audit log but no longer in the workflow")
    if plan.up_to_date:
        print("up to date: nothing to apply")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show each unit's status; list what needs manual intervention and the exact command."""
    report = api.status(args.config, **_overrides(args))
    if args.json:
        _print_json(report)
        return 0
    print(f"namespace {report.namespace}: {report.events} audit events")
    for row in report.rows:
        when = f"{row.finished_at:%Y-%m-%d %H:%M:%S}" if row.finished_at else "-"
        name = f"{row.stage}/{row.unit_id}"
        print(f"  {row.status:<28} {name:<40} {when:<19} {row.detail}")
    if report.lock is not None:
        print(f"lock: last acquired by {report.lock.holder} (run {report.lock.run_id})")
    if report.attention:
        print("\nneeds manual intervention:")
        for row in report.attention:
            print(f"  {row.unit_id}: {row.detail}\n    {row.resolve}")
        return 7
    return 0


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _bus_and_namespace(args: argparse.Namespace) -> tuple[str, str, dict[str, str]]:
    """For commands that read the log only: from the flags, else from the workflow file."""
    if args.bus and args.namespace:
        return args.bus, args.namespace, {}
    wf = load_workflow(args.config, bus=args.bus, namespace=args.namespace)
    return wf.bus, wf.namespace, dict(wf.bus_options)


def cmd_history(args: argparse.Namespace) -> int:
    """List audit events, oldest first; filter by unit, run or time."""
    bus, namespace, options = _bus_and_namespace(args)
    events = api.history(bus, namespace, unit=args.unit, run_id=args.run,
                         since=_parse_time(args.since), until=_parse_time(args.until),
                         options=options)
    if args.json:
        _print_json(events)
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
    bus, namespace, options = _bus_and_namespace(args)
    report = api.verify(bus, namespace, options)
    if args.json:
        _print_json({"log": report.log, "ok": report.ok, "events": report.state.events,
                     "head_hash": report.state.head_hash, "breaks": report.breaks,
                     "counts": report.state.counts()})
    else:
        print(f"{report.log}: {report.state.events} events, head {report.state.head_hash.hex()}")
        for br in report.breaks:
            print(f"  BREAK at offset {br.position} (seq {br.seq}): {br.reason}")
        print("chain intact" if report.ok else f"{len(report.breaks)} break(s) found")
    return 0 if report.ok else 4


def cmd_mark(args: argparse.Namespace) -> int:
    """Record a manual decision about a unit (applied or rolled back), with a reason."""
    api.mark(args.config, args.unit_id, args.as_.replace("-", "_").upper(), args.reason,
             **_overrides(args))
    if not args.quiet:
        print(f"marked {args.unit_id} as {args.as_}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    """Compensate the applied units after --to ID, newest first."""
    result = api.undo(args.config, args.to, reporter=_reporter(args), **_overrides(args))
    if args.json:
        _print_json(result)
    elif not result.compensated:
        print(f"nothing to undo after {args.to}")
    return 0 if result.outcome is not api.RunOutcome.FAILED else 8


def cmd_wait(args: argparse.Namespace) -> int:
    """Block until the namespace is up to date (a readiness check), or time out."""
    api.wait(args.config, timeout=args.timeout, poll=args.poll, **_overrides(args))
    if not args.quiet:
        print("up to date")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Create a flamingock.yaml and a changes/ folder with an example unit of each kind."""
    from .scaffold import scaffold

    for path in scaffold(Path(args.directory)):
        print(f"created {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flamingock-es",
        description="Apply ChangeUnits exactly once under a distributed lock, with every step "
                    "recorded as an Avro event in an append-only audit log.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default="flamingock.yaml",
                        help="workflow file (default: ./flamingock.yaml)")
    common.add_argument("--bus", help="audit log and lock: local:PATH (default local:.flamingock)"
                        " or kafka://HOST:PORT; overrides the workflow file")
    common.add_argument("--namespace", help="namespace; overrides the workflow file")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        p = sub.add_parser(name, parents=[common], help=doc.splitlines()[0], description=doc)
        p.set_defaults(handler=handler)
        return p

    p = add("run", cmd_run)
    p.add_argument("--unit", action="append", help="only this unit (repeatable)")
    p.add_argument("--accept-drift", action="store_true",
                   help="accept changed definitions of applied units (audited as manual marks)")
    p = add("plan", cmd_plan)
    p.add_argument("--accept-drift", action="store_true")
    add("status", cmd_status)
    p = add("history", cmd_history)
    p.add_argument("--unit", help="only events of this unit")
    p.add_argument("--run", help="only events of this run id")
    p.add_argument("--since", help="ISO time, e.g. 2026-11-27T10:00")
    p.add_argument("--until", help="ISO time")
    add("verify", cmd_verify)
    p = add("mark", cmd_mark)
    p.add_argument("unit_id")
    p.add_argument("--as", dest="as_", required=True, choices=["applied", "rolled-back"])
    p.add_argument("--reason", required=True, help="why; written to the audit log")
    p = add("undo", cmd_undo)
    p.add_argument("--to", required=True, help="the last unit to keep applied")
    p = add("wait", cmd_wait)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between checks")
    p = add("init", cmd_init)
    p.add_argument("directory", nargs="?", default=".")
    for module in ("projections.commands", "flamingock_es.service"):
        try:
            register = __import__(module, fromlist=["register"]).register
        except ImportError:
            continue
        register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flamingock-es`` console script."""
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)  # plugin subcommands may not define it
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except FlamingockError as exc:
        print(f"flamingock-es: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("flamingock-es: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
