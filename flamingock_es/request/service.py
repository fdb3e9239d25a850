"""``serve``: the runner service that executes change requests from the bus.

It consumes the namespace's request channel (its own consumer group) and runs each request
under the lock with ``trigger="request"``, so every audit event of the run carries the
request id and its ``RunFinished`` answers the request. A request's position is committed
only once that answer is durable in the audit log: a runner that dies mid-request gets it
again, and the fold tells it whether the request was already answered (same id: runs once).

Who asked is established before anything else: a request that cannot be decoded, is
unsigned where a trust store (or ``require_signed``) wants a signature, is signed by a key not
trusted to request changes in this namespace, or has expired, goes to the dead-letter channel
with the reason, without the lock and without an audit event: its id is not taken, so that
garbage cannot delay real requests or claim their ids in advance. An authenticated request
that may not run (another namespace, a principal not allowed, unknown stages or units, a
namespace that needs a person) is answered ``REJECTED`` with the reason, under the lock like
any run. Neither ever stops the service. A first SIGTERM/SIGINT lets the current unit finish
within the grace period, records the run's outcome with the remaining units not started,
releases the lock, and ``serve`` returns; a second signal interrupts the unit (recorded).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..adapters import Backend, open_backend
from ..core.events import ErrorInfo, Requester, RunOutcome
from ..core.ports import Delivery
from ..core.state import State
from ..core.trust import Signer, TrustStore, writer_for
from ..definition.workflow import Workflow
from ..errors import (
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
from ..run.progress import LogProgress, Progress
from ..run.runner import Runner
from ..run.signals import Interrupts
from ..telemetry.propagation import current_trace
from ..telemetry.spans import OUTCOME, TracingProgress, process_span
from .client import ChangeRequest, RequestCodec, Stages, UndoTo, Units

__all__ = ["RequestService", "ServeStats", "serve"]

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
    dead_letters: int = 0
    """Requests refused before anything was recorded: undecodable or not authenticated."""
    request_ids: list[str] = field(default_factory=list)


class RequestService:
    """Executes the requests of one workflow's namespace on one open backend."""

    def __init__(self, workflow: Workflow, backend: Backend, progress: Progress,
                 allow: Sequence[str] = (), interrupts: Interrupts | None = None, *,
                 trust: TrustStore | None = None, signer: Signer | None = None,
                 require_signed: bool = False) -> None:
        self.workflow, self.backend, self.progress = workflow, backend, progress
        self.interrupts = interrupts or Interrupts(workflow.config.grace_period)
        self.allow = frozenset(allow)
        self.trust, self.signer = trust, signer
        self.require_signed = require_signed or trust is not None
        self.codec = RequestCodec()
        self.stats = ServeStats()
        self.state = State()
        """The namespace's folded log, kept across requests: each reads only what is new."""

    def handle(self, delivery: Delivery, group: str) -> None:
        """Answer one request in the audit log (run, skip as duplicate, or reject), or send
        it to the dead letters when who sent it cannot be established."""
        try:
            request = self.codec.decode(delivery.value, delivery.position)
        except DecodeError as exc:
            self._dead_letter(delivery, f"undecodable: {exc}")
            return
        requester, refusal = self._authenticate(request)
        if requester is None:
            self._dead_letter(delivery, str(refusal))
            return
        with process_span(self.backend.requests.messaging, delivery.headers, group=group,
                          offset=delivery.position, key=delivery.key,
                          request_id=request.request_id, namespace=request.namespace,
                          fallback=request.trace) as span:
            outcome = self._handle(request, requester)
            if span is not None:
                span.set_attribute(OUTCOME, outcome)
        self.stats.handled += 1
        self.stats.request_ids.append(request.request_id)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.backend.requests.dead_letter(delivery, reason)
        log.warning("request at offset %d sent to the dead letters of %s: %s",
                    delivery.position, self.backend.requests.destination, reason)
        self.stats.dead_letters += 1
        self.stats.handled += 1

    def _authenticate(self, request: ChangeRequest) -> tuple[Requester | None, str | None]:
        """Who asked (from the verified key, never from what the request says), or why that
        cannot be established."""
        if request.expires is not None and datetime.now(UTC) > request.expires:
            return None, (f"request {request.request_id} expired at "
                          f"{request.expires:%Y-%m-%d %H:%M:%S} UTC; publish a new one")
        if self.trust is None:
            if self.require_signed and request.signature is None:
                return None, f"request {request.request_id} is unsigned; this runner requires " \
                             "signed requests"
            return Requester(principal=request.requested_by, key_id=None,
                             reason=request.reason, service=request.service), None
        why = self.trust.check(request.key_id, request.signature, request.signed,
                               namespace=request.namespace, role="request")
        if why is not None:
            return None, f"request {request.request_id}: {why}"
        principal = self.trust.principal(request.key_id)
        assert principal is not None
        return Requester(principal=principal, key_id=request.key_id, reason=request.reason,
                         service=request.service), None

    def _handle(self, request: ChangeRequest, requester: Requester) -> str:
        runner = self._runner(request.request_id, requester)
        state = runner.refresh()
        rid = request.request_id
        if any(r.request_id == rid and r.outcome is not None for r in state.runs.values()):
            log.info("request %s was already answered: not run again", rid)
            self.stats.duplicates += 1
            return "DUPLICATE"
        error = self._refusal(request, requester)
        if error is not None:
            self._answer(runner, RunOutcome.REJECTED,
                         ErrorInfo(type="RequestRejected", message=error))
            self.stats.rejected += 1
            return RunOutcome.REJECTED.value
        return self._execute(runner, request)

    def _runner(self, rid: str, requester: Requester) -> Runner:
        return Runner(self.workflow, self.backend,
                      TracingProgress.wrap(self.progress, self.workflow.namespace),
                      trigger="request", request_id=rid, requester=requester,
                      trace=current_trace, interrupts=self.interrupts, trust=self.trust,
                      signer=self.signer, state=self.state)

    def _refusal(self, request: ChangeRequest, requester: Requester) -> str | None:
        """Why ``request`` may not run here, or None."""
        wf = self.workflow
        if request.namespace != wf.namespace:
            return (f"this runner serves namespace {wf.namespace!r}, not "
                    f"{request.namespace!r}")
        if self.allow and requester.principal not in self.allow:
            return f"{requester.principal!r} is not allowed to request changes here"
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
                result = runner.undo(target.unit_id)
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
            self._answer(self._runner(rid, runner.requester or _anonymous(request)),
                         RunOutcome.REJECTED, ErrorInfo.of(exc))
            self.stats.rejected += 1
            return RunOutcome.REJECTED.value
        finally:
            if isinstance(runner.progress, TracingProgress):
                runner.progress.close()
        if result.run_id is None:  # nothing to do: no run was recorded; answer anyway
            self._answer(self._runner(rid, runner.requester or _anonymous(request)),
                         RunOutcome.SUCCEEDED, None)
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


def _anonymous(request: ChangeRequest) -> Requester:
    return Requester(principal=request.requested_by, reason=request.reason,
                     service=request.service)


def serve(
    workflow: Workflow,
    *,
    progress: Progress | None = None,
    allow: Sequence[str] = (),
    stop: threading.Event | None = None,
    max_requests: int | None = None,
    group: str | None = None,
    handle_signals: bool = False,
    require_signed: bool = False,
) -> ServeStats:
    """Execute change requests for ``workflow``'s namespace until ``stop`` is set.

    ``max_requests`` ends the service after that many requests (tests, one-shot jobs).
    With ``handle_signals`` (the CLI; main thread only), a first SIGTERM or SIGINT sets
    ``stop``: the current unit finishes within the grace period (or is compensated), the
    run's outcome is recorded, the lock is released, and ``serve`` returns; a second signal,
    or the end of the grace period, interrupts the unit and records it as interrupted.
    ``require_signed`` refuses unsigned requests even without a trust store.
    """
    interrupts = Interrupts(workflow.config.grace_period, stop)
    stop = interrupts.stop
    trust, signer = writer_for(workflow.config)
    with open_backend(workflow.bus, workflow.namespace, workflow.bus_options) as backend, \
            (interrupts.installed() if handle_signals else nullcontext()):
        service = RequestService(workflow, backend, progress or LogProgress(), allow,
                                 interrupts, trust=trust, signer=signer,
                                 require_signed=require_signed)
        group = group or backend.requests.group
        consumer = backend.requests.consumer(group)
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
