"""Appending audit events: envelope, chain, seal, durable append, fold, tell. In that order.

Every writer of the log (the runner, ``mark``, ``undo``, the request service) goes through a
:class:`Recorder`, so each event is chained to the state it was decided on. What a run tells
a person and what it tells a tracing backend both come from here: an :class:`Observer` hears
of each step just before it is recorded and once it is durable, so a new kind of step is an
event and the observers that care about it, nothing else.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .._version import __version__
from ..errors import ForeignRecordError
from .codec import AuditCodec, Recorded, Sign
from .events import Actor, AuditEvent, Payload, TraceContext
from .merkle import leaf_hash
from .ports import LogWriter
from .state import State

__all__ = [
    "LockGone",
    "NoRollback",
    "Notice",
    "Observer",
    "OutOfOrder",
    "Planned",
    "Recorder",
    "RunIdentity",
    "Stopping",
    "UpToDate",
    "Waiting",
    "local_actor",
    "new_run_id",
]


def new_run_id() -> str:
    """A fresh run id: time-ordered, so that listings sort by start."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def local_actor(service_version: str | None = None, principal: str | None = None) -> Actor:
    """The actor for this process: ``principal`` (default: the OS user), host, pid."""
    if not principal:
        try:
            principal = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            principal = str(os.getuid())
    return Actor(
        principal=principal,
        host=socket.gethostname(),
        pid=os.getpid(),
        service_version=service_version,
        tool_version=__version__,
    )


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What every event of one run shares."""

    namespace: str
    run_id: str
    actor: Actor
    request_id: str | None = None


# What a run tells its observers besides its events: what the log does not hold.

@dataclass(frozen=True, slots=True)
class Waiting:
    """The lock is another runner's; waited ``seconds`` so far."""

    seconds: float
    holder: str
    """Who holds it, in words (from the audit log)."""


@dataclass(frozen=True, slots=True)
class UpToDate:
    """Nothing to apply among ``units``; ``after_wait``: another runner applied them while
    this one waited for the lock."""

    units: int
    after_wait: bool = False


@dataclass(frozen=True, slots=True)
class Planned:
    """Run ``run_id`` applies ``to_apply`` units; ``skipped`` are applied already."""

    run_id: str
    to_apply: int
    skipped: int


@dataclass(frozen=True, slots=True)
class NoRollback:
    """``unit_id`` would be compensated, but has no rollback: it is left as it is."""

    unit_id: str


@dataclass(frozen=True, slots=True)
class LockGone:
    """The lock was lost; a fenced writer can no longer record that, so it is told."""

    why: str


@dataclass(frozen=True, slots=True)
class OutOfOrder:
    """``units`` were asked for, and are applied before ``pending``, which come before them
    in the workflow and are not applied yet (allowed explicitly)."""

    units: tuple[str, ...]
    pending: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stopping:
    """The first SIGTERM or SIGINT arrived: the run stops once ``unit_id`` (the step in
    progress, if any) finishes, within ``grace`` seconds; a second signal interrupts it."""

    signal: str
    grace: float
    unit_id: str | None


Notice = Waiting | UpToDate | Planned | NoRollback | LockGone | OutOfOrder | Stopping


class Observer(Protocol):
    """Hears of every step a run records (progress output, spans), and its notices."""

    def recording(self, payload: Payload) -> None:
        """``payload`` is about to be recorded (what the step is written in starts here: a
        span opened now is the one the event names)."""

    def recorded(self, event: AuditEvent) -> None:
        """``event`` is durable, and folded into the recorder's state."""

    def notice(self, notice: Notice) -> None:
        """Something the log does not hold: a wait, nothing to do, a missing rollback."""

    def close(self) -> None:
        """The run is over, however it ended (spans still open end here)."""


class Recorder:
    """Seals payloads into chained events, appends them durably, folds them in, and tells its
    observers. Safe to share between threads: appends are made one batch at a time.

    With a signing key, every event names it and the last event of each append carries its
    signature, which covers that append's events (``signed_from`` names the first) and
    nothing before them.
    """

    def __init__(
        self,
        writer: LogWriter,
        state: State,
        identity: RunIdentity,
        codec: AuditCodec | None = None,
        trace: Callable[[], TraceContext | None] = lambda: None,
        sign: Sign | None = None,
        key_id: str | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.writer = writer
        self.state = state
        self.identity = identity
        self.codec = codec or AuditCodec()
        self.observers = list(observers)
        self._trace = trace
        self._sign, self._key_id = sign, key_id
        self._lock = threading.Lock()
        self.appended = 0
        """How many events this recorder made durable."""
        self.foreign: list[int] = []
        """Positions of records others appended among this recorder's: its state does not
        hold them, so it is not the log's (no snapshot may be taken of it)."""

    def record(self, *payloads: Payload) -> list[AuditEvent]:
        """Append ``payloads`` as one batch; returns once they are durable."""
        with self._lock:
            return self._record(payloads)

    def _record(self, payloads: Sequence[Payload]) -> list[AuditEvent]:
        ident = self.identity
        seq, prev = self.state.next_seq, self.state.head_hash
        sealed: list[AuditEvent] = []
        blobs: list[bytes] = []
        trace: TraceContext | None = None
        for offset, payload in enumerate(payloads):
            for observer in self.observers:
                observer.recording(payload)
            trace = self._trace()
            event = AuditEvent(
                event_id=str(uuid.uuid4()),
                seq=seq + offset,
                time=datetime.now(UTC),
                namespace=ident.namespace,
                run_id=ident.run_id,
                actor=ident.actor,
                trace=trace,
                request_id=ident.request_id,
                payload=payload,
                prev_hash=prev,
                key_id=self._key_id,
            )
            last = offset == len(payloads) - 1
            if last and self._sign is not None:
                event = event.replace(signed_from=seq)
            event, blob = self.codec.seal(event, self._sign if last else None)
            prev = event.hash
            sealed.append(event)
            blobs.append(blob)
        headers = {"traceparent": trace.traceparent} if trace else None
        foreign: ForeignRecordError | None = None
        try:
            positions = self.writer.append(blobs, headers)
        except ForeignRecordError as exc:  # ours are durable: fold them, then say so
            positions, foreign = exc.appended, exc
            self.foreign += exc.foreign
        self.appended += len(blobs)
        for position, event, blob in zip(positions, sealed, blobs, strict=True):
            self.state.apply(Recorded(position, event, True, leaf_hash(blob)))
        for event in sealed:
            for observer in self.observers:
                observer.recorded(event)
        if foreign is not None:
            raise foreign
        return sealed
