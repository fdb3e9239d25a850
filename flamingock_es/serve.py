"""``serve``: the runner service that executes change requests from the bus.

It consumes the namespace's request channel (its own consumer group) and runs each request
under the lock with ``trigger="request"``, so every audit event of the run carries the
request id and its ``RunFinished`` answers the request. A request's position is committed
only once that answer is durable in the audit log: a runner that dies mid-request gets it
again, and the fold tells it whether the request was already answered (same id: runs once).

Malformed or unauthorized requests (another namespace, a principal not allowed, unknown
stages or units, a namespace that needs a person) are answered ``REJECTED`` with the reason,
under the lock like any run; they never stop the service. A stop (SIGTERM, through ``stop``)
lets the current unit finish (applied, or failed and compensated), records the run's outcome
with the remaining units still pending, releases the lock, and ``serve`` returns.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from .adapters import Backend, open_backend
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
from .ports import Delivery
from .progress import LogProgress, Progress
from .requests import ChangeRequest, RequestCodec, Stages, UndoTo, Units
from .runner import Runner
from .telemetry.propagation import current_trace
from .telemetry.spans import OUTCOME, TracingProgress, process_span
from .workflow import Workflow

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
    request_ids: list[str] = field(default_factory=list)


class RequestService:
    """Executes the requests of one workflow's namespace on one open backend."""

    def __init__(self, workflow: Workflow, backend: Backend, progress: Progress,
                 allow: Sequence[str] = (), stop: threading.Event | None = None) -> None:
        self.workflow, self.backend, self.progress = workflow, backend, progress
        self.stop = stop or threading.Event()
        self.allow = frozenset(allow)
        self.codec = RequestCodec()
        self.stats = ServeStats()

    def handle(self, delivery: Delivery, group: str) -> None:
        """Answer one request in the audit log (run, skip as duplicate, or reject)."""
        request: ChangeRequest | None = None
        error: str | None = None
        try:
            request = self.codec.decode(delivery.value, delivery.position)
        except DecodeError as exc:
            error = f"malformed request: {exc}"
        rid = request.request_id if request else (delivery.key or f"offset-{delivery.position}")
        with process_span(self.backend.requests.messaging, delivery.headers, group=group,
                          offset=delivery.position, key=delivery.key,
                          request_id=request.request_id if request else None,
                          namespace=request.namespace if request else None,
                          fallback=request.trace if request else None) as span:
            outcome = self._handle(request, rid, error)
            if span is not None:
                span.set_attribute(OUTCOME, outcome)
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

    def _runner(self, rid: str) -> Runner:
        return Runner(self.workflow, self.backend,
                      TracingProgress.wrap(self.progress, self.workflow.namespace),
                      trigger="request", request_id=rid, trace=current_trace, stop=self.stop)

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
            self._answer(self._runner(rid), RunOutcome.REJECTED, ErrorInfo.of(exc))
            self.stats.rejected += 1
            return RunOutcome.REJECTED.value
        finally:
            if isinstance(runner.progress, TracingProgress):
                runner.progress.close()
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
    workflow: Workflow,
    *,
    progress: Progress | None = None,
    allow: Sequence[str] = (),
    stop: threading.Event | None = None,
    max_requests: int | None = None,
    group: str | None = None,
    handle_signals: bool = False,
) -> ServeStats:
    """Execute change requests for ``workflow``'s namespace until ``stop`` is set.

    ``max_requests`` ends the service after that many requests (tests, one-shot jobs).
    With ``handle_signals`` (the CLI), SIGTERM and SIGINT set ``stop``: the current unit
    finishes (or is compensated), the run's outcome is recorded, the lock is released, and
    ``serve`` returns.
    """
    stop = stop or threading.Event()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with open_backend(workflow.bus, workflow.namespace, workflow.bus_options) as backend:
        service = RequestService(workflow, backend, progress or LogProgress(), allow, stop)
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
