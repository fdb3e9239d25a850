"""The rollout flow's command: ``rollout`` (start or go on), ``rollout status``, ``rollout
resume``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..core.state import RolloutState, RolloutStatus
from ..errors import ConfigError, Remedy, RemedyKind, UnitFailedError
from .output import print_json, reason, settings
from .status_codes import exit_code

__all__ = ["register"]


def cmd_rollout(args: argparse.Namespace) -> int:
    """Apply the workflow to every tenant in waves: a canary, then waves, under a budget.

    `rollout --reason R` starts one (or resumes the one a killed coordinator left); `rollout
    status [ID]` shows the rollouts (counts per result and wave, failed tenants with their
    reasons, the budget); `rollout resume ID --reason R` goes on past an exceeded budget.
    Exit 8 when the rollout stopped on its budget or finished over it."""
    if args.action == "status":
        return _status(args)
    if args.reason is None:
        raise ConfigError(f"rollout{' resume' if args.action else ''} needs a --reason: it is "
                          "written to the rollout's audit log")
    if args.action == "resume" and args.rollout_id is None:
        raise ConfigError("rollout resume needs the rollout's id (rollout status lists them)",
                          remedies=(Remedy(RemedyKind.ROLLOUT_STATUS),))
    lines = None if args.json or args.quiet else (lambda line: print(line, file=sys.stderr))
    found = api.rollout(settings(args, required=True), reason=reason(args),
                        canary=args.canary, wave_size=args.wave,
                        max_failures=args.max_failures,
                        rollout_id=args.rollout_id or args.rollout_given,
                        past_budget=args.action == "resume", wait=args.wait,
                        fleet=args.fleet, partitions=args.partitions,
                        tell=lines or (lambda line: None))
    if args.json:
        print_json(found.as_json())
    return 0 if found.status is RolloutStatus.FINISHED and found.result != "FAILED" \
        else exit_code(UnitFailedError)


def _status(args: argparse.Namespace) -> int:
    found = api.rollouts(settings(args, required=True))
    if args.rollout_id is not None:
        found = [r for r in found if r.rollout_id == args.rollout_id]
        if not found:
            raise ConfigError(f"no rollout {args.rollout_id!r} in this workflow's rollout log",
                              remedies=(Remedy(RemedyKind.ROLLOUT_STATUS),))
    if args.json:
        print_json([r.as_json() for r in found])
        return 0
    if not found:
        print("no rollout yet: `flamingock-es rollout --reason ...` starts one")
    for r in found:
        _print(r)
    return 0


def _print(r: RolloutState) -> None:
    done = f": {r.result}" if r.result else ""
    print(f"rollout {r.rollout_id} ({r.workflow}) {r.status.value}{done}; started by "
          f"{r.started_by} at {r.started_at:%Y-%m-%d %H:%M:%S}: {r.reason}")
    print(f"  {len(r.tenants)} tenant(s): "
          + ", ".join(f"{k} {v}" for k, v in sorted(r.counts().items()))
          + f"; budget --max-failures {r.max_failures}")
    for w in r.waves:
        checked = "not checked yet" if w.failures is None else \
            f"{w.failures} failed of {w.allowed_failures} allowed" + \
            (" EXCEEDED" if w.exceeded else "")
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.counts(w.tenants).items()))
        print(f"  {'canary' if w.number == 0 else f'wave {w.number}'}: {len(w.tenants)} "
              f"tenant(s) ({counts}); {checked}")
    for t in r.failed:
        print(f"  FAILED {t.tenant} (wave {t.wave}): {t.result}"
              + (f" in run {t.run_id}" if t.run_id else "") + (f": {t.error}" if t.error else ""))
    if r.stop_reason:
        print(f"  stopped before wave {r.stopped_before}: {r.stop_reason}")
    for by, why, past in r.resumed:
        print(f"  resumed{' past its budget' if past else ''} by {by}: {why}")


def register(add: Any) -> None:
    """Add the rollout flow's command through ``add(name, handler) -> parser``."""
    p = add("rollout", cmd_rollout)
    p.add_argument("action", nargs="?", choices=["status", "resume"],
                   help="status: show the rollouts; resume ID: go on past the budget")
    p.add_argument("rollout_id", nargs="?", metavar="ID",
                   help="the rollout (status: only this one; resume: required)")
    p.add_argument("--id", dest="rollout_given", metavar="ID",
                   help="the id of a new rollout (default: a time-ordered one)")
    p.add_argument("--reason", help="why; written to the rollout's audit log")
    p.add_argument("--canary", metavar="N|IDS",
                   help="the first wave: the first N tenants, or named ones (acme,globex); "
                        "default 1")
    p.add_argument("--wave", metavar="N|P%",
                   help="the size of each later wave: N tenants or P%% of all (default: all "
                        "the others at once)")
    p.add_argument("--max-failures", default="0", metavar="N|P%",
                   help="failed tenants a wave may have: N, or P%% of the wave (default 0); "
                        "one more stops the rollout before the next wave")
    p.add_argument("--fleet", action="store_true",
                   help="hand the tenants to the `serve --fleet` workers (Kafka) instead of "
                        "running them here")
    p.add_argument("--partitions", type=int, metavar="N",
                   help="partitions of the fleet's work topic when it is created (default "
                        "12): at most that many workers share a wave")
    p.add_argument("--wait", type=float, metavar="SECONDS",
                   help="wait this long for a coordinator that holds the rollout, then say "
                        "who holds it (default: at once on the embedded bus, 15 s on Kafka)")
