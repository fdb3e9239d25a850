"""Change requests: a service asks, over the bus, that a runner apply changes.

A :class:`ChangeRequest` mirrors ``schemas/ChangeRequest.avsc`` and travels as Avro
single-object bytes (the same ``C3 01`` + CRC-64-AVRO framing as the audit events, from
:mod:`flamingock_es.core.codec`) on the namespace's request channel. ``flamingock-es serve``
(:mod:`flamingock_es.request.service`) executes it and answers with a ``RunFinished`` event
carrying the request's id in the audit log; :func:`request_changes` publishes one and, with
``wait=True``, follows the audit log until that answer is there.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from ..adapters import open_backend
from ..core.codec import AuditCodec, Sign, fingerprint, writer_schemas
from ..core.events import TraceContext
from ..core.ports import EventLog, StoredRecord
from ..core.recorder import local_actor
from ..core.state import RunState, State
from ..core.trust import Signer
from ..errors import ConfigError, DecodeError, RequestTimeoutError
from ..telemetry.spans import request_span

__all__ = [
    "DEFAULT_TTL",
    "REQUEST_CONTEXT",
    "ChangeRequest",
    "OutcomeFollower",
    "RequestCodec",
    "Stages",
    "Target",
    "UndoTo",
    "Units",
    "WholeWorkflow",
    "request_changes",
    "wait_for_outcome",
]

_AVRO_NS = "io.flamingock.es"
DEFAULT_TTL = 600.0
"""Seconds a request stays valid by default: long enough for a busy runner, short enough
that a captured request is soon worthless."""


@dataclass(frozen=True, slots=True)
class WholeWorkflow:
    """Run every pending unit of the workflow."""


@dataclass(frozen=True, slots=True)
class Stages:
    """Run the pending units of these stages."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Units:
    """Run these units, if pending."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UndoTo:
    """Compensate every applied unit after ``unit_id``, newest first."""

    unit_id: str


Target = WholeWorkflow | Stages | Units | UndoTo


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRequest:
    """One request, as ``schemas/ChangeRequest.avsc`` describes it."""

    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    namespace: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    target: Target = WholeWorkflow()
    requested_by: str
    """The principal the requester names; with a trust store, the runner records the one its
    key is bound to instead."""
    service: str | None = None
    reason: str
    trace: TraceContext | None = None
    expires: datetime | None = None
    key_id: str | None = None
    signature: bytes | None = None
    signed: bytes = field(default=b"", compare=False, repr=False)
    """What the signature signs (set by the codec when it decodes a request)."""

    def describe(self) -> str:
        """The target in words, for messages and the audit trail."""
        target = self.target
        if isinstance(target, Stages):
            return f"stages {', '.join(target.names)}"
        if isinstance(target, Units):
            return f"units {', '.join(target.ids)}"
        if isinstance(target, UndoTo):
            return f"undo to {target.unit_id}"
        return "the whole workflow"


REQUEST_CONTEXT = b"flamingock-es request "
"""What a request's signature signs, before the SHA-256 of its body (domain separation)."""


class RequestCodec:
    """Encodes (and signs) and decodes :class:`ChangeRequest` as Avro single-object bytes.

    The signature is the last field, so it signs the SHA-256 of every body byte before it;
    requests of the first writer schema (unsigned) stay readable.
    """

    def __init__(self) -> None:
        writers = writer_schemas("ChangeRequest")
        self.schema = writers[-1]
        self.header = fingerprint(self.schema)
        self._writers = {fingerprint(w): w for w in writers}

    def encode(self, request: ChangeRequest, sign: Sign | None = None,
               key_id: str | None = None) -> bytes:
        """The request's bytes; signed with ``sign`` (naming ``key_id``) when given."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.schema, _to_avro(replace(
            request, key_id=key_id if sign else request.key_id, signature=None)))
        body = buf.getvalue()[:-1]  # the signature union's null branch
        if sign is None:
            return self.header + body + b"\x00"
        signature = sign(REQUEST_CONTEXT + hashlib.sha256(body).digest())
        return self.header + body + b"\x02" + signature

    def decode(self, data: bytes, position: int = -1) -> ChangeRequest:
        """Raises :class:`DecodeError` (naming ``position``) for anything but a valid request."""
        writer = self._writers.get(data[:10])
        if writer is None:
            raise DecodeError(
                f"request at offset {position} is not a ChangeRequest in Avro single-object "
                f"encoding (header {data[:10].hex() or 'empty'}, expected {self.header.hex()})",
                position)
        stream = io.BytesIO(data)
        stream.seek(10)
        try:
            raw = fastavro.schemaless_reader(stream, writer,
                                             None if writer is self.schema else self.schema,
                                             return_record_name=True,
                                             return_record_name_override=True)
            assert isinstance(raw, dict)
            if stream.tell() != len(data):
                raise ValueError(f"{len(data) - stream.tell()} bytes after the request")
            request = _from_avro(raw)
        except Exception as exc:  # fastavro raises several types on corrupt input
            raise DecodeError(f"request at offset {position} is corrupt: {exc!r}",
                              position) from exc
        if request.signature is None:
            return request
        body = data[10:len(data) - 1 - len(request.signature)]
        return replace(request, signed=REQUEST_CONTEXT + hashlib.sha256(body).digest())


def _to_avro(request: ChangeRequest) -> dict[str, Any]:
    target = request.target
    name = f"{_AVRO_NS}.{type(target).__name__}"
    body: dict[str, Any] = {}
    if isinstance(target, Stages):
        body = {"names": list(target.names)}
    elif isinstance(target, Units):
        body = {"ids": list(target.ids)}
    elif isinstance(target, UndoTo):
        body = {"unit_id": target.unit_id}
    trace = request.trace
    return {
        "request_id": request.request_id, "namespace": request.namespace,
        "time": request.time, "target": (name, body), "requested_by": request.requested_by,
        "service": request.service, "reason": request.reason,
        "trace": {"traceparent": trace.traceparent, "tracestate": trace.tracestate}
        if trace else None,
        "expires": request.expires, "key_id": request.key_id, "signature": request.signature,
    }


def _from_avro(raw: dict[str, Any]) -> ChangeRequest:
    name, body = raw["target"]
    short = name.rsplit(".", 1)[-1]
    target: Target
    if short == "Stages":
        target = Stages(tuple(body["names"]))
    elif short == "Units":
        target = Units(tuple(body["ids"]))
    elif short == "UndoTo":
        target = UndoTo(body["unit_id"])
    else:
        target = WholeWorkflow()
    trace = raw["trace"]
    return ChangeRequest(
        request_id=raw["request_id"], namespace=raw["namespace"], time=raw["time"],
        target=target, requested_by=raw["requested_by"], service=raw["service"],
        reason=raw["reason"], trace=TraceContext(**trace) if trace else None,
        expires=raw["expires"], key_id=raw["key_id"], signature=raw["signature"])


def _target(stages: Sequence[str] | None, units: Sequence[str] | None,
            undo_to: str | None) -> Target:
    given = [x for x in (stages, units, undo_to) if x]
    if len(given) > 1:
        raise ConfigError("a request targets stages, units or an undo, not several at once")
    if stages:
        return Stages(tuple(stages))
    if units:
        return Units(tuple(units))
    if undo_to:
        return UndoTo(undo_to)
    return WholeWorkflow()


def request_changes(
    bus: str,
    namespace: str,
    *,
    stages: Sequence[str] | None = None,
    units: Sequence[str] | None = None,
    undo_to: str | None = None,
    reason: str = "",
    requested_by: str | None = None,
    service: str | None = None,
    request_id: str | None = None,
    wait: bool = False,
    timeout: float = 300.0,
    options: Mapping[str, str] | None = None,
    signer: Signer | None = None,
    ttl: float | None = DEFAULT_TTL,
) -> str | RunState:
    """Publish a change request for ``namespace``; return its id.

    ``signer`` (the requester's key) signs it; a runner with a trust store accepts only
    signed requests by keys it trusts to request changes there. After ``ttl`` seconds a
    runner refuses it, so that a captured request cannot be replayed later.
    With ``wait=True``, block until the runner's answer (the ``RunFinished`` carrying the
    request id) is in the audit log and return that run's folded :class:`RunState` instead;
    raise :class:`~flamingock_es.errors.RequestTimeoutError` after ``timeout`` seconds.
    """
    now = datetime.now(UTC)
    request = ChangeRequest(
        request_id=request_id or str(uuid.uuid4()), namespace=namespace, time=now,
        target=_target(stages, units, undo_to),
        requested_by=requested_by or local_actor().principal, service=service,
        reason=reason or "requested over the bus",
        expires=now + timedelta(seconds=ttl) if ttl is not None else None)
    codec = RequestCodec()
    with open_backend(bus, namespace, options) as backend:
        follower = OutcomeFollower(backend.log) if wait else None
        try:
            channel = backend.requests
            with request_span(channel.messaging, request.request_id, namespace) as (trace,
                                                                                     headers):
                traced = replace(request, trace=trace) if trace else request
                data = codec.encode(traced, signer.sign, signer.key_id) if signer \
                    else codec.encode(traced)
                channel.publish(request.request_id, data, headers)
            if follower is None:
                return request.request_id
            return follower.wait(request.request_id, timeout)
        finally:
            if follower is not None:
                follower.close()


def wait_for_outcome(bus: str, namespace: str, request_id: str, timeout: float = 300.0,
                     options: Mapping[str, str] | None = None) -> RunState:
    """Block until the run answering ``request_id`` is finished in the audit log."""
    with open_backend(bus, namespace, options) as backend:
        follower = OutcomeFollower(backend.log)
        try:
            return follower.wait(request_id, timeout)
        finally:
            follower.close()


class OutcomeFollower:
    """Follows an audit log with the shared fold and finds the runs that answer requests."""

    def __init__(self, log: EventLog) -> None:
        self.state = State()
        self._codec = AuditCodec()
        self._stop = threading.Event()
        self._records: Iterator[StoredRecord | None] = log.follow(0, self._stop)

    def answer(self, request_id: str) -> RunState | None:
        """The finished run answering ``request_id`` in what was folded so far."""
        return next((run for run in self.state.runs.values()
                     if run.request_id == request_id and run.outcome is not None), None)

    def wait(self, request_id: str, timeout: float) -> RunState:
        deadline = time.monotonic() + timeout
        while (found := self.answer(request_id)) is None:
            if time.monotonic() > deadline:
                raise RequestTimeoutError(
                    f"no answer to request {request_id} in the audit log after {timeout:g}s. "
                    "Is `flamingock-es serve` running for this namespace? The request stays "
                    "queued; check later with `flamingock-es history`.")
            item = next(self._records)
            if item is not None:
                self.state.apply(self._codec.decode(item[1], item[0]))
        return found

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._records, "close", None)
        if close is not None:
            close()
