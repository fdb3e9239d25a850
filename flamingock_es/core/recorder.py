"""Appending audit events: envelope, chain, seal, durable append, fold. In that order.

Every writer of the log (the runner, ``mark``, ``undo``, the request service) goes through a
:class:`Recorder`, so each event is chained to the state it was decided on.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .._version import __version__
from .codec import AuditCodec, Recorded, Sign
from .events import Actor, AuditEvent, Payload, TraceContext
from .ports import LogWriter
from .state import State

__all__ = ["Recorder", "RunIdentity", "local_actor", "new_run_id"]


def new_run_id() -> str:
    """A fresh run id: time-ordered, so that listings sort by start."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def local_actor(service_version: str | None = None, principal: str | None = None) -> Actor:
    """The actor for this process: OS user (or ``FLAMINGOCK_PRINCIPAL``), host, pid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = str(os.getuid())
    return Actor(
        principal=principal or os.environ.get("FLAMINGOCK_PRINCIPAL") or user,
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


class Recorder:
    """Seals payloads into chained events, appends them durably, then folds them in.

    With a signing key, every event names it and the last event of each append carries its
    signature of the chain's new head: one signature vouches for the whole history before it.
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
    ) -> None:
        self.writer = writer
        self.state = state
        self.identity = identity
        self.codec = codec or AuditCodec()
        self._trace = trace
        self._sign, self._key_id = sign, key_id
        self.appended = 0
        """How many events this recorder made durable."""

    def record(self, *payloads: Payload) -> list[AuditEvent]:
        """Append ``payloads`` as one batch; returns once they are durable."""
        ident, trace = self.identity, self._trace()
        seq, prev = self.state.next_seq, self.state.head_hash
        sealed: list[AuditEvent] = []
        blobs: list[bytes] = []
        for offset, payload in enumerate(payloads):
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
            event, blob = self.codec.seal(event, self._sign if last else None)
            prev = event.hash
            sealed.append(event)
            blobs.append(blob)
        headers = {"traceparent": trace.traceparent} if trace else None
        positions = self.writer.append(blobs, headers)
        self.appended += len(blobs)
        for position, event in zip(positions, sealed, strict=True):
            self.state.apply(Recorded(position, event, True))
        return sealed
