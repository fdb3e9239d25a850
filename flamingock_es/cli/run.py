"""The run flow's commands: ``plan``, ``run``, ``status``, ``mark``, ``tag``, ``undo`` and
``wait``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..core.events import RunOutcome
from ..definition.conditions import Outcome as UnitOutcome
from ..definition.settings import resolve_settings
from ..definition.workflow import Workflow
from ..errors import ConfigError, ManualInterventionRequired, RunFailed, UnitFailedError
from ..run.planner import (
    IN_DOUBT,
    Blocker,
    OutOfOrderError,
    UndoBlockedError,
    UndoRefusedError,
    UndoScope,
)
from ..run.progress import Outcome
from ..run.results import RunResult
from . import graph as graph_text
from .output import jsonable, print_json, progress, reason, settings, table, workflow
from .preview import preview, render
from .remedies import command, to_resolve
from .status_codes import exit_code, plan_check

__all__ = ["register"]


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what `run` would apply, in order, and why every other unit is skipped.

    --check exits non-zero when `run` could not go ahead on its own (for CI: 2 if it would
    stop before taking the lock, on an unset ${VAR} or a python-call target that cannot be
    found; 7 if a unit is blocked for a person or in doubt; 6 if an applied unit drifted);
    --show prints what each unit to apply would do: template blocks with ${VAR} resolved,
    Python units' parameters and source, secrets as ***; --graph mermaid|dot prints the
    workflow's graph with each unit's state; --compare ENV lists what ENV has applied that
    this environment lacks."""
    wf = workflow(args)
    if args.compare is not None:
        return _compare(args, wf)
    plan = api.plan(wf, accept_drift=args.accept_drift, check=args.check)
    if args.graph is not None:
        states = {p.unit.id: UnitOutcome.from_status(
                      p.previous.status.value if p.previous else None).value
                  for p in plan.units}
        draw = graph_text.mermaid if args.graph == "mermaid" else graph_text.dot
        print(draw(wf.graph.nodes, states,
                   stage_names=dict(enumerate(s.name for s in wf.stages))), end="")
        return 0
    previews = [preview(f"{p.stage}/{p.unit.id}", p.unit, wf.settings.environ)
                for p in plan.to_run] if args.show else []
    code = plan_check(plan) if args.check else 0
    if args.json:
        print_json({"units": [{"stage": p.stage, "unit": p.unit.id, "action": p.action.value,
                               "reason": p.reason} for p in plan.units],
                    "blockers": [_blocker_json(b) for b in plan.blockers],
                    "unknown": plan.unknown,
                    "in_doubt": [p.unit.id for p in plan.in_doubt],
                    **({"show": [item.as_json() for item in previews]} if args.show else {}),
                    **({"check": code} if args.check else {})})
        return code
    table([(p.action.value, f"{p.stage}/{p.unit.id}", p.reason) for p in plan.units])
    for blocker in plan.blockers:
        print(f"\nBLOCKED {blocker.unit_id}: {blocker.message}{to_resolve(blocker.remedies)}")
    for uid in plan.unknown:
        print(f"note: {uid} is in the audit log but no longer in the workflow")
    if plan.up_to_date:
        print("up to date: nothing to apply")
    for item in previews:
        print(f"\n{render(item)}")
    if code:
        doubt = [p.unit.id for p in plan.in_doubt]
        print(f"plan --check: not clear to run (exit {code}): "
              + "; ".join(filter(None, (
                  f"{len(plan.blockers)} blocked" if plan.blockers else "",
                  f"in doubt: {', '.join(doubt)}" if doubt else ""))), file=sys.stderr)
    return code


def _compare(args: argparse.Namespace, wf: Workflow) -> int:
    """``plan --compare OTHER``: the units OTHER's namespace has applied and this one's has
    not, in workflow order (what promoting this environment to where OTHER is would apply)."""
    here = wf.settings
    there = resolve_settings(args.config, environment=args.compare, bus=args.bus)
    if (there.namespace, there.bus) == (here.namespace, here.bus):
        raise ConfigError(f"plan --compare {args.compare}: it is the same namespace as this "
                          f"one ({here.namespace}); name another environment")
    applied = [{uid for uid, s in api.read_state(s).units.items() if s.status.is_applied}
               for s in (here, there)]
    lacking = [u.id for _, u in wf.units() if u.id in applied[1] and u.id not in applied[0]]
    name, other = here.environment or here.namespace, args.compare
    if args.json:
        print_json({"environment": name, "compared_with": other, "lacks": lacking})
    elif lacking:
        print(f"{name} lacks {len(lacking)} unit(s) that {other} has applied: "
              f"{', '.join(lacking)}")
    else:
        print(f"{name} lacks nothing that {other} has applied")
    return 0


def _blocker_json(blocker: Blocker) -> dict[str, object]:
    """A blocker for ``--json``: its remedies as data, and as the commands to type."""
    out: dict[str, object] = jsonable(blocker)
    return {**out, "resolve": "\n".join(command(r) for r in blocker.remedies)}


def cmd_run(args: argparse.Namespace) -> int:
    """Apply every pending ChangeUnit of the workflow, under the namespace lock."""
    heard = Outcome() if args.json else None
    try:
        result = api.run(workflow(args), units=args.unit, accept_drift=args.accept_drift,
                         progress=heard or progress(args), trigger="cli",
                         out_of_order=args.out_of_order, to_tag=args.to_tag)
    except OutOfOrderError as refused:  # said with the flags given
        units = " ".join(f"--unit {u}" for u in refused.units)
        one = len(refused.pending) == 1
        refused.args = (f"run {units}: {', '.join(refused.pending)} "
                        f"{'comes' if one else 'come'} before it in the workflow and "
                        f"{'is' if one else 'are'} not applied yet. Apply "
                        f"{'it' if one else 'them'} first (`flamingock-es run`), or give "
                        "--out-of-order to go ahead anyway.",)
        raise
    except RunFailed:  # a unit failed, or the run was stopped: its result, then its error
        if heard is not None and heard.result.run_id is not None:
            print_json(heard.result)
        raise
    if args.json:
        print_json(result)
    return 0  # in text, the progress on stderr is the report, its last line the result


def cmd_status(args: argparse.Namespace) -> int:
    """Show each unit's status; list what needs manual intervention and the exact command."""
    report = api.status(workflow(args))
    if args.json:
        print_json(report)
        return 0
    print(f"namespace {report.namespace}: {report.events} audit events")
    if not report.events:
        print("  nothing recorded yet: no run has written to this namespace's log")
    table([(row.status, f"{row.stage}/{row.unit_id}",
            f"{row.finished_at:%Y-%m-%d %H:%M:%S}" if row.finished_at else "-", row.detail)
           for row in report.rows], indent="  ")
    if report.lock is not None:
        print(f"lock: last acquired by {report.lock.holder} (run {report.lock.run_id})")
    last = report.last_run
    if last is not None and last.outcome is RunOutcome.STOPPED:
        why = last.error.message if last.error else "stopped on request"
        rest = f"; the next run applies {', '.join(last.not_started)}" \
            if last.not_started else ""
        print(f"last run {last.run_id}: STOPPED: {why}{rest}")
    if report.attention:
        print("\nneeds manual intervention (check the target system, then record one):")
        for row in report.attention:
            commands = "".join(f"\n    {command(remedy)}" for remedy in row.remedies)
            first = (f"\n    first make sure run {row.last_run}'s process is gone: cut off "
                     "from the bus, a runner goes on with its step, whose side effect may "
                     "still land" if row.detail.startswith(IN_DOUBT) else "")
            print(f"  {row.unit_id}: {row.detail}{first}{commands}")
        return exit_code(ManualInterventionRequired)
    return 0


def cmd_mark(args: argparse.Namespace) -> int:
    """Record a manual decision about a unit (applied or rolled back), with a reason."""
    marked_as = args.as_.replace("-", "_").upper()
    why = reason(args)
    api.mark(workflow(args), args.unit_id, marked_as, why, seen=args.seen)
    if args.json:
        print_json({"unit": args.unit_id, "marked_as": marked_as, "reason": why,
                    "seen": args.seen})
    elif not args.quiet:
        print(f"marked {args.unit_id} as {args.as_}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    """Compensate applied units, newest first: those after --to ID, the newest --count N,
    or --all of them (back to before the first unit)."""
    try:
        result = api.undo(workflow(args), to=args.to, count=args.count, all_units=args.all,
                          to_tag=args.to_tag, progress=progress(args))
    except (UndoRefusedError, UndoBlockedError) as refused:  # said with the flags given
        refused.args = (f"cannot undo {_flags(refused.scope)}: {refused.detail}",)
        raise
    if args.json:
        print_json(result)
    elif not args.quiet:
        print(undo_summary(result, args.to))
    return 0 if result.outcome is not RunOutcome.FAILED else exit_code(UnitFailedError)


def _flags(scope: UndoScope) -> str:
    """An undo's scope as the command line says it (``--to u1``, ``--count 2``, ``--all``)."""
    if scope.tag is not None:
        return f"--to-tag {scope.tag}"
    if scope.to is not None:
        return f"--to {scope.to}"
    return f"--count {scope.count}" if scope.count is not None else "--all"


def undo_summary(result: RunResult, to: str | None) -> str:
    """One line that says what the undo did, from the result the progress reported too."""
    if result.outcome is None:
        return f"nothing to undo after {to}" if to else "nothing to undo: no unit is applied"
    done = ", ".join(result.compensated)
    if result.outcome is not RunOutcome.FAILED:
        return f"undid {len(result.compensated)} unit(s), newest first: {done} " \
               f"(run {result.run_id})"
    left = f"; not attempted: {', '.join(result.not_started)}" if result.not_started else ""
    return (f"undo FAILED in run {result.run_id}: undid {len(result.compensated)} unit(s)"
            f"{': ' + done if done else ''}; then {_error(result)}{left}. See "
            "`flamingock-es status`.")


def _error(result: RunResult) -> str:
    error = result.error
    return "a rollback failed" if error is None else f"{error.message} ({error.type})"


def cmd_tag(args: argparse.Namespace) -> int:
    """Name the log's head: record a tag with the units applied there (audited, signed), for
    `run --to-tag` and `undo --to-tag`. Without a name, list the tags."""
    if args.name is None:
        tags = sorted(api.read_state(settings(args)).tags.values(), key=lambda t: t.position)
        if args.json:
            print_json([{"name": t.name, "through": t.through, "applied": list(t.applied),
                         "reason": t.reason, "by": t.by, "at": t.at} for t in tags])
        elif tags:
            table([["TAG", "OFFSET", "UNITS", "BY", "AT", "REASON"],
                   *([t.name, str(t.through), str(len(t.applied)), t.by,
                      f"{t.at:%Y-%m-%d %H:%M:%S}", t.reason] for t in tags)])
        else:
            print("no tags yet")
        return 0
    tag = api.tag(workflow(args), args.name, reason(args))
    if args.json:
        print_json({"name": tag.name, "through": tag.through, "applied": list(tag.applied)})
    elif not args.quiet:
        print(f"tagged {tag.name} at offset {tag.through}: {len(tag.applied)} unit(s) applied")
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    """Block until the namespace is up to date (a readiness check), or time out."""
    plan = api.wait(workflow(args), timeout=args.timeout, poll=args.poll)
    if args.json:
        print_json({"up_to_date": True, "units": len(plan.units)})
    elif not args.quiet:
        print("up to date")
    return 0


def register(add: Any) -> None:
    """Add the run flow's commands through ``add(name, handler) -> parser``."""
    p = add("plan", cmd_plan)
    p.add_argument("--accept-drift", action="store_true",
                   help="plan as `run --accept-drift` would")
    p.add_argument("--check", action="store_true",
                   help="exit non-zero when run could not go ahead on its own: 2 if it would "
                        "stop before taking the lock (what run checks then), 7 if a unit is "
                        "blocked for a person or in doubt, 6 if an applied unit drifted (for "
                        "CI pipelines)")
    p.add_argument("--show", action="store_true",
                   help="print what each unit to apply would do: template blocks with "
                        "${VAR} resolved, Python units' parameters and source; secrets as ***")
    p.add_argument("--graph", choices=["mermaid", "dot"],
                   help="print the workflow as a Mermaid flowchart or a Graphviz digraph, "
                        "each unit with its state")
    p.add_argument("--compare", metavar="ENV",
                   help="list the units environment ENV has applied that this one (--env) "
                        "has not")
    p = add("run", cmd_run)
    p.add_argument("--unit", action="append", help="only this unit (repeatable)")
    p.add_argument("--out-of-order", action="store_true",
                   help="with --unit: apply it even though units before it are not applied "
                        "yet (refused without this flag)")
    p.add_argument("--accept-drift", action="store_true",
                   help="accept changed definitions of applied units (audited as manual marks)")
    p.add_argument("--to-tag", metavar="NAME",
                   help="apply the units tag NAME says were applied (those pending now)")
    add("status", cmd_status)
    p = add("mark", cmd_mark)
    p.add_argument("unit_id")
    p.add_argument("--as", dest="as_", required=True, choices=["applied", "rolled-back"],
                   help="what you found on the target system")
    p.add_argument("--reason", required=True, help="why; written to the audit log")
    p.add_argument("--seen", type=int, metavar="OFFSET",
                   help="the offset of the unit's last event as you saw it (`status` prints "
                        "it): refused if the unit changed since (default: as this mark starts)")
    p = add("undo", cmd_undo)
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--to", metavar="ID", help="the last unit to keep applied")
    scope.add_argument("--count", type=int, metavar="N",
                       help="compensate the N newest applied units (in workflow order)")
    scope.add_argument("--to-tag", metavar="NAME",
                       help="compensate the units applied after tag NAME was recorded")
    scope.add_argument("--all", action="store_true",
                       help="compensate every applied unit, back to before the first one")
    p = add("tag", cmd_tag)
    p.add_argument("name", nargs="?", help="the tag's name (letters, digits, . _ -); "
                   "omitted: list the tags")
    p.add_argument("--reason", default="", help="why; written to the audit log (needed with "
                   "a name)")
    p = add("wait", cmd_wait)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    p.add_argument("--poll", type=float, default=1.0,
                   help="seconds between checks (default 1)")
