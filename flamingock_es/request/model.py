"""Change requests: what a service asks of a runner, and its bytes on the bus.

A :class:`ChangeRequest` mirrors ``schemas/ChangeRequest.avsc`` and travels as Avro
single-object bytes (the same ``C3 01`` + CRC-64-AVRO framing as the audit events, from
:mod:`flamingock_es.core.codec`) on the namespace's request channel. The service
(:mod:`.service`) executes it and answers with a ``RunFinished`` event carrying the request's
id in the audit log; the client (:mod:`.client`) publishes one and follows the log for that
answer.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import fastavro

from ..core.codec import Sign, fingerprint, writer_schemas
from ..core.events import TraceContext
from ..errors import ConfigError, DecodeError

__all__ = [
    "DEFAULT_TTL",
    "REFUSAL_CONTEXT",
    "REQUEST_CONTEXT",
    "ChangeRequest",
    "RequestCodec",
    "Stages",
    "Target",
    "UndoTo",
    "Units",
    "WholeWorkflow",
    "refusal_message",
    "target_of",
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

    def digest(self) -> str:
        """SHA-256 of what the request asks (its namespace and target): the runs it starts
        record it, so a request id used again for something else is told apart."""
        target = self.target
        asked = {"namespace": self.namespace, "target": type(target).__name__,
                 "names": list(getattr(target, "names", ())),
                 "ids": list(getattr(target, "ids", ())),
                 "unit_id": getattr(target, "unit_id", None)}
        return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


REQUEST_CONTEXT = b"flamingock-es request "
REFUSAL_CONTEXT = b"flamingock-es refusal "
"""What a runner's signature of a refused request signs (domain separation)."""


def refusal_message(value: bytes, source: int, reason: str) -> bytes:
    """What a runner signs when it refuses a request: the request's bytes (by digest),
    where it was on the channel, and why."""
    return (REFUSAL_CONTEXT + hashlib.sha256(value).digest() + source.to_bytes(8, "big")
            + reason.encode())
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


def target_of(stages: Sequence[str] | None, units: Sequence[str] | None,
              undo_to: str | None) -> Target:
    """The target the options name (at most one; none: the whole workflow)."""
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
