"""``serve``: the runner service that executes change requests from the bus.

It consumes the namespace's request channel (its own consumer group) and runs each request
under the lock with ``trigger="request"``, so every audit event of the run carries the
request id and its ``RunFinished`` answers the request. A request's position is committed
only once that answer is durable in the audit log: a runner that dies mid-request gets it
again, and the fold tells it whether the request was already answered (same id: runs once).

Who asked is established before anything else: a request that cannot be decoded, is
unsigned where a trust store wants a signature, is signed by a key not
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..core.backend import Backend
from ..core.events import ErrorInfo, Requester, RunOutcome, TraceContext
from ..core.ports import Delivery
from ..core.recorder import Observer
from ..core.state import State
from ..definition.workflow import Workflow
from ..errors import (
    ChecksumDriftError,
    ConfigError,
    DecodeError,
    FlamingockError,
    ManualInterventionRequired,
    RunInterrupted,
    UnitFailedError,
    retryable,
)
from ..run.runner import Runner, RunOptions
from ..run.signals import Interrupts
from .model import ChangeRequest, RequestCodec, Stages, UndoTo, Units, refusal_message

__all__ = ["Observers", "ProcessSpan", "RequestService", "ServeStats"]

log = logging.getLogger(__name__)

Observers = Callable[[], Sequence[Observer]]
"""Who hears of one run's steps: fresh for each run (spans keep state per run)."""
ProcessSpan = Callable[[Delivery, ChangeRequest, str],
                       AbstractContextManager[Callable[[str], None]]]
"""Around the handling of one request (delivery, request, group); yields a function that
records its outcome. The composition root's span, when tracing is on."""


@contextmanager
def _untraced(delivery: Delivery, request: ChangeRequest,
              group: str) -> Iterator[Callable[[str], None]]:
    yield lambda outcome: None


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

    def __init__(self, workflow: Workflow, backend: Backend, *,
                 observers: Observers = lambda: (), interrupts: Interrupts | None = None,
                 allow: Sequence[str] = (), require_signed: bool = False,
                 process_span: ProcessSpan = _untraced,
                 trace: Callable[[], TraceContext | None] = lambda: None) -> None:
        self.workflow, self.backend = workflow, backend
        self._observers, self._process_span, self._trace = observers, process_span, trace
        self.interrupts = interrupts or Interrupts(workflow.settings.grace_period)
        self.allow = frozenset(allow)
        self.trust = backend.trust
        if require_signed and self.trust is None:
            raise ConfigError(
                "serve --require-signed: there is no trust store to check signatures against, "
                "and a signature nobody checks proves nothing (any key would do). Name the "
                "requesters' keys under `trust:` in the settings (docs/compliance.md); with a "
                "trust store every request must be signed by one of them.")
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
        reused = self._reused(request, requester)
        if reused is not None:
            self._dead_letter(delivery, reused)
            return
        with self._process_span(delivery, request, group) as done:
            done(self._handle(request, requester))
        self.stats.handled += 1
        self.stats.request_ids.append(request.request_id)

    def _reused(self, request: ChangeRequest, requester: Requester) -> str | None:
        """Why ``request`` reuses the id of an earlier, different request, or ``None``. An
        answer already in the log for the same request is a duplicate, answered once."""
        state = self._runner(request.request_id, requester).refresh(check=False)
        earlier = next((run for run in state.runs.values()
                        if run.request_id == request.request_id and run.outcome is not None),
                       None)
        if earlier is None or earlier.request_digest in (None, request.digest()):
            return None
        return (f"request id {request.request_id} was used before, by run {earlier.run_id} "
                "for another request; this one asks for something else. Publish it with a new "
                "id")

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Refuse a request before anything is recorded about it: kept, with why, where its
        requester learns of it (signed, when this runner has a key)."""
        channel, signer = self.backend.requests, self.backend.signer
        signature = signer.sign(refusal_message(delivery.value, delivery.position, reason)) \
            if signer is not None else None
        channel.dead_letter(delivery, reason, signer.key_id if signer else None, signature)
        log.warning("request at offset %d sent to the dead letters (%s): %s",
                    delivery.position, channel.dead_letter_destination, reason)
        self.stats.dead_letters += 1
        self.stats.handled += 1

    def _authenticate(self, request: ChangeRequest) -> tuple[Requester | None, str | None]:
        """Who asked (from the verified key, never from what the request says), or why that
        cannot be established."""
        if request.expires is not None and datetime.now(UTC) > request.expires:
            return None, (f"request {request.request_id} expired at "
                          f"{request.expires:%Y-%m-%d %H:%M:%S} UTC; publish a new one")
        if self.trust is None:
            return Requester(principal=request.requested_by, key_id=None,
                             reason=request.reason, service=request.service,
                             request_digest=request.digest()), None
        why = self.trust.check(request.key_id, request.signature, request.signed,
                               namespace=request.namespace, role="request")
        if why is not None:
            return None, f"request {request.request_id}: {why}"
        principal = self.trust.principal(request.key_id)
        assert principal is not None
        return Requester(principal=principal, key_id=request.key_id, reason=request.reason,
                         service=request.service, request_digest=request.digest()), None

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
                      RunOptions(trigger="request", request_id=rid, requester=requester),
                      observers=self._observers(), interrupts=self.interrupts,
                      trace=self._trace, state=self.state)

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
            for observer in runner.observers:
                observer.close()
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

    def serve(self, stop: threading.Event, max_requests: int | None = None,
              group: str | None = None) -> ServeStats:
        """Consume the request channel in ``group`` (default: the namespace's runners') and
        answer each request until ``stop`` is set, or ``max_requests`` were handled. A
        request is committed only once its answer is durable."""
        group = group or self.backend.requests.group
        consumer = self.backend.requests.consumer(group)
        try:
            while not stop.is_set():
                if max_requests is not None and self.stats.handled >= max_requests:
                    break
                delivery = consumer.poll(0.2)
                if delivery is None:
                    continue
                if self._handle_with_retry(delivery, group, stop):
                    consumer.commit(delivery)  # only now: the answer is durable
        finally:
            consumer.close()
        return self.stats

    def _handle_with_retry(self, delivery: Delivery, group: str,
                           stop: threading.Event) -> bool:
        """Handle ``delivery``; retry what may succeed later, with backoff. False if
        stopped before it was handled."""
        delay = 0.5
        while True:
            try:
                self.handle(delivery, group)
                return True
            except FlamingockError as exc:
                level = logging.WARNING if retryable(exc) else logging.ERROR
                log.log(level, "request at offset %d not answered yet (%s); retrying in %.1fs",
                        delivery.position, exc, delay)
            if stop.wait(delay):
                return False  # not committed: the next runner gets it again
            delay = min(delay * 2, 10.0)


def _anonymous(request: ChangeRequest) -> Requester:
    return Requester(principal=request.requested_by, reason=request.reason,
                     service=request.service)
