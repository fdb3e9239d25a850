"""The request flow's commands: ``request`` publishes a change request, ``serve`` runs them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import api
from ..core.events import RunOutcome
from ..errors import ConfigError, UnitFailedError
from ..request.model import DEFAULT_TTL
from .output import print_json, progress, settings, workflow
from .status_codes import exit_code

__all__ = ["register"]


def cmd_request(args: argparse.Namespace) -> int:
    """Publish a change request to the bus for `serve` to execute (optionally --wait)."""
    sent = api.request_changes(
        settings(args), stages=args.stage, units=args.unit, undo_to=args.undo_to,
        reason=args.reason, requested_by=args.requested_by, service=args.service,
        request_id=args.id, wait=args.wait, timeout=args.timeout, ttl=args.ttl,
        signing_key=args.key)
    answer = sent.answer
    if answer is None:
        print_json({"request_id": sent.request_id}) if args.json else print(sent.request_id)
        return 0
    if args.json:
        print_json(answer)
    else:
        error = f": {answer.error}" if answer.error else ""
        print(f"request {answer.request_id}: {answer.outcome} (run {answer.run_id}){error}")
    codes = {RunOutcome.SUCCEEDED: 0, RunOutcome.REJECTED: exit_code(ConfigError)}
    return codes.get(answer.outcome or RunOutcome.FAILED, exit_code(UnitFailedError))


def cmd_serve(args: argparse.Namespace) -> int:
    """Execute change requests from the bus for the workflow's namespace, until SIGTERM.

    With --fleet, work in the fleet of the workflow's rollouts instead: Kafka's consumer
    group gives this worker a share of the tenants, each run under that tenant's lock."""
    if args.fleet:
        lines = None if args.quiet else (lambda line: print(line, file=sys.stderr))
        ran = api.serve_fleet(workflow(args), handle_signals=True,
                              tell=lines or (lambda line: None))
        if not args.quiet:
            print(f"fleet worker: ran {ran} tenant(s)", file=sys.stderr)
        return 0
    stats = api.serve(workflow(args), progress=progress(args), allow=args.allow or (),
                      max_requests=args.max_requests, handle_signals=True,
                      require_signed=args.require_signed)
    if not args.quiet:
        print(f"served {stats.handled} request(s): {stats.succeeded} succeeded, "
              f"{stats.failed} failed, {stats.rejected} rejected, {stats.duplicates} "
              f"duplicate(s), {stats.dead_letters} dead letter(s)", file=sys.stderr)
    return 0


def register(add: Any) -> None:
    """Add the request flow's commands through ``add(name, handler) -> parser``."""
    p = add("request", cmd_request)
    p.add_argument("--stage", action="append", help="only this stage (repeatable)")
    p.add_argument("--unit", action="append", help="only this unit (repeatable)")
    p.add_argument("--undo-to", help="compensate the applied units after this one")
    p.add_argument("--reason", default="", help="why; written to the audit log")
    p.add_argument("--requested-by", help="principal (default: FLAMINGOCK_PRINCIPAL or user)")
    p.add_argument("--service", help="the requesting service and version")
    p.add_argument("--id", help="request id (default: a new UUID); the same request sent "
                   "again runs once, and an id already used for another is refused (exit 2)")
    p.add_argument("--wait", action="store_true", help="wait for the outcome")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for --wait")
    p.add_argument("--key", help="sign with this private key (default: signing_key in the "
                                 "settings, or FLAMINGOCK_SIGNING_KEY)")
    p.add_argument("--ttl", type=float, default=DEFAULT_TTL,
                   help=f"seconds the request stays valid (default {DEFAULT_TTL:g})")
    p = add("serve", cmd_serve)
    p.add_argument("--fleet", action="store_true",
                   help="work in the fleet of the workflow's rollouts (Kafka): a share of the "
                        "tenants, as the consumer group assigns them")
    p.add_argument("--allow", action="append", help="only requests by this principal "
                   "(repeatable; default: anyone who can write the requests topic)")
    p.add_argument("--max-requests", type=int, help="exit after this many requests")
    p.add_argument("--require-signed", action="store_true",
                   help="insist on a trust store (with one, every request must be signed by a "
                        "key it trusts): an error without one, where no signature can be checked")
