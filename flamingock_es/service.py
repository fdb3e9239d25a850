"""``flamingock-es serve``: the runner service that executes change requests from the bus.

It consumes the namespace's requests (its own consumer group, ``{prefix}.runner.{ns}``) and
runs each under the lock with ``trigger="request"``, so every audit event of the run carries
the request id and its ``RunFinished`` answers the request. A request's offset is committed
only once that answer is durable in the audit log: a runner that dies mid-request gets it
again, and the fold tells it whether the request was already answered (same id: runs once).

Malformed or unauthorized requests (another namespace, a principal not allowed, unknown
stages or units, a namespace that needs a person) are answered ``REJECTED`` with the reason,
under the lock like any run; they never stop the service. SIGTERM lets the current unit
finish (applied, or failed and compensated), records the run's outcome with the remaining
units still pending, releases the lock, and the service exits 0.

Also registers the ``request``, ``serve`` and ``replay`` CLI subcommands.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import telemetry
from .api import WorkflowLike, open_workflow, undo
from .backends import Backend, open_backend
from .engine import Runner
from .errors import (
    AppendError,
    ChecksumDriftError,
    ConfigError,
    DecodeError,
    FlamingockError,
    LockLostError,
    LockTimeoutError,
    ManualInterventionRequired,
    RunInterrupted,
    UnitFailedError,
)
from .events import ErrorInfo, RunOutcome
from .reporting import LogReporter, Reporter
from .request_bus import Delivery, RequestBus, open_request_bus
from .requests import ChangeRequest, Stages, UndoTo, Units
from .workflow import Workflow

__all__ = ["ServeStats", "register", "serve"]

log = logging.getLogger(__name__)

_RETRYABLE = (LockTimeoutError, LockLostError, AppendError)


@dataclass
class ServeStats:
    """What a ``serve`` session did."""

    handled: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    duplicates: int = 0
    request_ids: list[str] = field(default_factory=list)


class RequestService:
    """Executes the requests of one workflow's namespace; one instance per ``serve``."""

    def __init__(self, workflow: Workflow, bus: RequestBus, reporter: Reporter,
                 allow: Sequence[str] = (), stop: threading.Event | None = None) -> None:
        self.workflow, self.bus, self.reporter = workflow, bus, reporter
        self.stop = stop or threading.Event()
        self.allow = frozenset(allow)
        base = open_backend(workflow.bus, workflow.namespace, workflow.bus_options)
        self.backend: Backend = dataclasses.replace(
            base, lock=telemetry.traced_lock(base.lock, workflow.namespace))
        self.stats = ServeStats()

    def close(self) -> None:
        self.backend.close()

    def handle(self, delivery: Delivery, group: str) -> None:
        """Answer one request in the audit log (run, skip as duplicate, or reject)."""
        request: ChangeRequest | None = None
        error: str | None = None
        try:
            request = self.bus.codec.decode(delivery.value, delivery.position)
        except DecodeError as exc:
            error = f"malformed request: {exc}"
        rid = request.request_id if request else (delivery.key or f"offset-{delivery.position}")
        with telemetry.process_span(self.bus.destination, delivery.headers, request,
                                    group=group, offset=delivery.position,
                                    key=delivery.key) as span:
            outcome = self._handle(request, rid, error)
            if span is not None:
                span.set_attribute(telemetry.OUTCOME, outcome)
        self.stats.handled += 1
        self.stats.request_ids.append(rid)

    def _handle(self, request: ChangeRequest | None, rid: str, error: str | None) -> str:
        runner = self._runner(rid)
        state = runner.refresh()
        if any(r.request_id == rid and r.outcome is not None for r in state.runs.values()):
            log.info("request %s was already answered: not run again", rid)
            self.stats.duplicates += 1
            return "DUPLICATE"
        if request is not None and error is None:
            error = self._refusal(request)
        if request is None or error is not None:
            self._answer(runner, RunOutcome.REJECTED,
                         ErrorInfo(type="RequestRejected", message=str(error)))
            self.stats.rejected += 1
            return RunOutcome.REJECTED.value
        return self._execute(runner, request)

    def _runner(self, rid: str, trigger: str = "request") -> Runner:
        reporter = (telemetry.TracingReporter(self.reporter, self.workflow.namespace)
                    if telemetry.enabled() else self.reporter)
        return Runner(self.workflow, self.backend, reporter, trigger=trigger, request_id=rid,
                      trace=telemetry.current_trace, stop=self.stop)

    def _refusal(self, request: ChangeRequest) -> str | None:
        """Why ``request`` may not run here, or None."""
        wf = self.workflow
        if request.namespace != wf.namespace:
            return (f"this runner serves namespace {wf.namespace!r}, not "
                    f"{request.namespace!r}")
        if self.allow and request.requested_by not in self.allow:
            return f"{request.requested_by!r} is not allowed to request changes here"
        known_units = {u.id for _, u in wf.units()}
        target = request.target
        if isinstance(target, Stages):
            unknown = set(target.names) - {s.name for s in wf.stages}
            what = "stage"
        elif isinstance(target, Units):
            unknown, what = set(target.ids) - known_units, "unit"
        elif isinstance(target, UndoTo):
            unknown, what = {target.unit_id} - known_units, "unit"
        else:
            return None
        if unknown:
            return f"unknown {what}(s) {', '.join(sorted(unknown))} in workflow {wf.name!r}"
        return None

    def _execute(self, runner: Runner, request: ChangeRequest) -> str:
        target, rid = request.target, request.request_id
        log.info("request %s by %s: %s (%s)", rid, request.requested_by, request.describe(),
                 request.reason)
        try:
            if isinstance(target, UndoTo):
                result = undo(self.workflow, target.unit_id, reporter=runner.reporter,
                              request_id=rid, trace=telemetry.current_trace)
            else:
                units: list[str] | None = None
                if isinstance(target, Units):
                    units = list(target.ids)
                elif isinstance(target, Stages):
                    units = [u.id for s in self.workflow.stages if s.name in target.names
                             for u in s.units]
                result = runner.run(units)
        except (UnitFailedError, RunInterrupted):
            self.stats.failed += 1  # the run recorded its outcome (compensated, or stopped)
            return RunOutcome.FAILED.value
        except (ChecksumDriftError, ManualInterventionRequired, ConfigError) as exc:
            self._answer(self._runner(rid), RunOutcome.REJECTED, ErrorInfo.of(exc))
            self.stats.rejected += 1
            return RunOutcome.REJECTED.value
        finally:
            if isinstance(runner.reporter, telemetry.TracingReporter):
                runner.reporter.close()
        if result.run_id is None:  # nothing to do: no run was recorded; answer anyway
            self._answer(self._runner(rid), RunOutcome.SUCCEEDED, None)
        if result.outcome is RunOutcome.FAILED:
            self.stats.failed += 1
        else:
            self.stats.succeeded += 1
        return (result.outcome or RunOutcome.SUCCEEDED).value

    def _answer(self, runner: Runner, outcome: RunOutcome, error: ErrorInfo | None) -> None:
        """Answer the request with a run that applies nothing (rejected, or nothing to do)."""
        runner.answer(outcome, error)
        if error is not None:
            log.warning("request %s %s: %s", runner.request_id, outcome.value.lower(), error)


def serve(
    workflow: WorkflowLike = None,
    *,
    reporter: Reporter | None = None,
    allow: Sequence[str] = (),
    stop: threading.Event | None = None,
    max_requests: int | None = None,
    group: str | None = None,
    handle_signals: bool = False,
    **overrides: Any,
) -> ServeStats:
    """Execute change requests for ``workflow``'s namespace until ``stop`` is set.

    ``max_requests`` ends the service after that many requests (tests, one-shot jobs).
    With ``handle_signals`` (the CLI), SIGTERM and SIGINT set ``stop``: the current unit
    finishes (or is compensated), the run's outcome is recorded, the lock is released, and
    ``serve`` returns.
    """
    wf = open_workflow(workflow, **overrides)
    stop = stop or threading.Event()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with open_request_bus(wf.bus, wf.namespace, wf.bus_options) as bus:
        group = group or str(getattr(bus, "group", "runner"))
        service = RequestService(wf, bus, reporter or LogReporter(), allow, stop)
        consumer = bus.consumer(group)
        try:
            while not stop.is_set():
                if max_requests is not None and service.stats.handled >= max_requests:
                    break
                delivery = consumer.poll(0.2)
                if delivery is None:
                    continue
                if _handle_with_retry(service, delivery, group, stop):
                    consumer.commit(delivery)  # only now: the answer is durable
        finally:
            consumer.close()
            service.close()
    return service.stats


def _handle_with_retry(service: RequestService, delivery: Delivery, group: str,
                       stop: threading.Event) -> bool:
    """Handle ``delivery``; retry infrastructure errors with backoff. False if stopped."""
    delay = 0.5
    while True:
        try:
            service.handle(delivery, group)
            return True
        except _RETRYABLE as exc:
            log.warning("request at offset %d not answered yet (%s); retrying in %.1fs",
                        delivery.position, exc, delay)
        except FlamingockError as exc:
            log.error("request at offset %d: %s; retrying in %.1fs", delivery.position, exc,
                      delay)
        if stop.wait(delay):
            return False  # not committed: the next runner gets it again
        delay = min(delay * 2, 10.0)


# CLI ---------------------------------------------------------------------------------------

def cmd_request(args: argparse.Namespace) -> int:
    """Publish a change request to the bus for `serve` to execute (optionally --wait)."""
    from .cli import _bus_and_namespace, _print_json
    from .requests import request_changes

    bus, namespace, options = _bus_and_namespace(args)
    answer = request_changes(
        bus, namespace, stages=args.stage, units=args.unit, undo_to=args.undo_to,
        reason=args.reason, requested_by=args.requested_by, service=args.service,
        request_id=args.id, wait=args.wait, timeout=args.timeout, options=options)
    telemetry.shutdown()
    if isinstance(answer, str):
        _print_json({"request_id": answer}) if args.json else print(answer)
        return 0
    if args.json:
        _print_json(answer)
    else:
        error = f": {answer.error}" if answer.error else ""
        print(f"request {answer.request_id}: {answer.outcome} (run {answer.run_id}){error}")
    return {RunOutcome.SUCCEEDED: 0, RunOutcome.REJECTED: 2}.get(answer.outcome or
                                                                 RunOutcome.FAILED, 8)


def cmd_serve(args: argparse.Namespace) -> int:
    """Execute change requests from the bus for the workflow's namespace, until SIGTERM."""
    from .cli import _overrides, _reporter

    stats = serve(args.config, reporter=_reporter(args), allow=args.allow or (),
                  max_requests=args.max_requests, handle_signals=True, **_overrides(args))
    telemetry.shutdown()
    if not args.quiet:
        print(f"served {stats.handled} request(s): {stats.succeeded} succeeded, "
              f"{stats.failed} failed, {stats.rejected} rejected, {stats.duplicates} "
              "duplicate(s)", file=sys.stderr)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the audit log, verify its hash chain, and export a compliance report."""
    from .audit import render, replay
    from .cli import _bus_and_namespace, _parse_time

    bus, namespace, options = _bus_and_namespace(args)
    report = replay(bus, namespace, since=_parse_time(args.since),
                    until=_parse_time(args.until), options=options)
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


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``request``, ``serve`` and ``replay`` to the ``flamingock-es`` parser."""
    def add(name: str, handler: Any) -> argparse.ArgumentParser:
        doc = (handler.__doc__ or "").strip()
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=doc.splitlines()[0], description=doc)
        p.set_defaults(handler=handler)
        return p

    p = add("request", cmd_request)
    p.add_argument("--stage", action="append", help="only this stage (repeatable)")
    p.add_argument("--unit", action="append", help="only this unit (repeatable)")
    p.add_argument("--undo-to", help="compensate the applied units after this one")
    p.add_argument("--reason", default="", help="why; written to the audit log")
    p.add_argument("--requested-by", help="principal (default: FLAMINGOCK_PRINCIPAL or user)")
    p.add_argument("--service", help="the requesting service and version")
    p.add_argument("--id", help="request id (default: a new UUID); a repeated id runs once")
    p.add_argument("--wait", action="store_true", help="wait for the outcome")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for --wait")
    p = add("serve", cmd_serve)
    p.add_argument("--allow", action="append", help="only requests by this principal "
                   "(repeatable; default: anyone who can write the requests topic)")
    p.add_argument("--max-requests", type=int, help="exit after this many requests")
    p = add("replay", cmd_replay)
    p.add_argument("--since", help="ISO time: report changes from then on")
    p.add_argument("--until", help="ISO time")
    p.add_argument("--format", choices=["json", "csv", "html"], default="json")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")

