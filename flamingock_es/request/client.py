"""The requester's side: publish a change request, then follow the log for its answer.

The answer is the ``RunFinished`` that carries the request's id, or, for a request the
runners refused before recording anything (undecodable, not authenticated, expired, a
reused id), its dead letter: the requester learns the refusal and its reason within the
round trip, not at the end of its timeout. With a trust store, a refusal counts only when
a runner trusted for the namespace signed it. The follower reads the log
like every other reader, through the namespace's
:class:`~flamingock_es.core.reading.LogReader`: an undecodable record is noted and passed, a
quarantined one is skipped, and, with a trust store, an answer counts only once a trusted
runner's signature covers it and nothing before it is a finding. It starts where an answer
can be: at the log's end as it was just before the request was published (from the latest
snapshot on), not at offset 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..core import snapshots
from ..core.backend import Backend
from ..core.ports import StoredRecord
from ..core.state import RunState, State
from ..errors import RequestConflictError, RequestRefusedError, RequestTimeoutError
from .model import ChangeRequest, RequestCodec, refusal_message

__all__ = ["OutcomeFollower", "Request", "publish"]

_DEAD_LETTER_POLL = 0.25
"""Seconds between two looks at the dead letters while an answer is awaited."""


@dataclass(frozen=True)
class Request:
    """A published request: its id, where the log ended when it was published (an answer
    can only come after), and its answer when it was waited for."""

    request_id: str
    log_end: int
    answer: RunState | None = None


def publish(backend: Backend, request: ChangeRequest,
            headers: Mapping[str, str] | None = None) -> int:
    """Make ``request`` durable on the namespace's request channel (signed with the
    backend's key, when it has one); its position."""
    codec, signer = RequestCodec(), backend.signer
    data = codec.encode(request, signer.sign, signer.key_id) if signer else codec.encode(request)
    return backend.requests.publish(request.request_id, data, headers)


class OutcomeFollower:
    """Follows a namespace's log from where it is now, through the namespace's reader, and
    finds the runs that answer requests."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        reader = backend.reader
        self._dead_from = backend.requests.dead_letter_end()
        self._dead_checked = 0.0
        if backend.log.exists():
            self.state = snapshots.read(backend.log, backend.snapshots, backend.namespace,
                                        reader)
        else:
            self.state = State()
        self._stop = threading.Event()
        self._records: Iterator[StoredRecord | None] | None = None

    @property
    def position(self) -> int:
        """The last position folded: an answer to a request published now comes after it."""
        return self.state.position

    def answer(self, request_id: str, digest: str | None = None) -> RunState | None:
        """The finished run answering ``request_id`` in what was folded so far, if the log
        up to it can be trusted (with a trust store: covered by a trusted signature, and no
        finding at or before it). Raises :class:`RequestConflictError` when that run
        answered another request with the same id (its ``digest`` differs)."""
        found = next((run for run in self.state.runs.values()
                      if run.request_id == request_id and run.outcome is not None), None)
        if found is None or not self._trusted(found.position):
            return None
        if digest is not None and found.request_digest not in (None, digest):
            raise RequestConflictError(
                f"request id {request_id} was answered by run {found.run_id} for another "
                "request; this one was not run. Publish it with a new id.")
        return found

    def refusal(self, position: int) -> str | None:
        """Why the runners refused the request published at ``position``, if a dead letter
        says so (checked at most a few times a second)."""
        if time.monotonic() - self._dead_checked < _DEAD_LETTER_POLL:
            return None
        self._dead_checked = time.monotonic()
        trust = self.backend.reader.trust
        for letter in self.backend.requests.dead_letters(self._dead_from):
            self._dead_from = letter.position + 1
            if letter.source != position:
                continue
            if trust is not None and trust.check(
                    letter.key_id, letter.signature,
                    refusal_message(letter.value, letter.source, letter.reason),
                    namespace=self.backend.namespace, role="write") is not None:
                continue  # not signed by a trusted runner: not an answer
            return letter.reason
        return None

    def _trusted(self, position: int) -> bool:
        """Nothing up to ``position`` is a finding: with a trust store, every event there is
        covered by a trusted runner's signature (or an operator's decision)."""
        return not any(f.position <= position for f in self.backend.reader.findings(self.state))

    def wait(self, request_id: str, timeout: float, *, position: int | None = None,
             digest: str | None = None) -> RunState:
        """Block until the answer to ``request_id`` is in the log; raise
        :class:`RequestRefusedError` as soon as a trusted dead letter says the request
        published at ``position`` was refused, :class:`RequestConflictError` when the id
        answered another request (``digest``), :class:`RequestTimeoutError` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        backend, reader, state = self.backend, self.backend.reader, self.state
        if self._records is None:
            self._records = backend.log.follow(state.position + 1, self._stop)
        while (found := self.answer(request_id, digest)) is None:
            refused = self.refusal(position) if position is not None else None
            if refused is not None:
                raise RequestRefusedError(
                    f"request {request_id} was refused by the runners and will not run: "
                    f"{refused}")
            if time.monotonic() > deadline:
                raise RequestTimeoutError(
                    f"no answer to request {request_id} in the audit log after {timeout:g}s. "
                    "Is the request service (serve) running for this namespace? The request "
                    "stays queued; its history will show the answer.")
            item = next(self._records)
            if item is None:
                reader.settle(state)
                continue
            reader.take(state, *item)
            if state.needs_refold:
                reader.refold(backend.log, state)
            reader.settle(state)
        return found

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._records, "close", None)
        if close is not None:
            close()
