"""Avro single-object encoding of audit events, and the hash chain that seals them.

Wire format (Avro spec, "Single-object encoding"): the two bytes ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the
Avro binary body. Any Avro reader that knows the schema can identify and decode a record with
no registry.

Hash chain: ``hash`` is a ``fixed(32)`` near the end of the envelope, and it covers every byte
of the body before it: ``hash = SHA-256(prev_hash || body up to the hash)``. Verifying an event
needs a slice and a digest, never a re-encoding, for every historical writer schema. After
the hash comes the ``signature`` (writer schema 2): an Ed25519 signature of
:data:`AUDIT_CONTEXT` + hash, set on the last event of each append. It is outside what the
hash covers, so the chain reads the same whether an event is signed or not.

Historical writer schemas live beside the current one (``schemas/AuditEvent.v1.avsc``): a
record names its writer by fingerprint, and fastavro resolves it to the current reader schema
by Avro's rules, so old events stay readable.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, fields
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from ..errors import DecodeError
from ._speedups import avro_reader
from ._speedups.compiled import current_source, is_current
from .events import (
    AVRO_NAMESPACE,
    PAYLOAD_TYPES,
    Actor,
    AuditEvent,
    ErrorInfo,
    MarkedAs,
    Payload,
    Recorded,
    Requester,
    RunOutcome,
    SkipCause,
    TraceContext,
    plain,
)
from .merkle import leaf_hash

__all__ = [
    "AUDIT_CONTEXT",
    "MAGIC",
    "AuditCodec",
    "Recorded",
    "Sign",
    "crc64_avro",
    "load_schema",
    "schema_dir",
    "writer_schemas",
]

MAGIC = b"\xc3\x01"
AUDIT_CONTEXT = b"flamingock-es audit "
"""What an audit signature signs, before the event's hash (domain separation)."""

Sign = Callable[[bytes], bytes]
"""Signs a message with a runner's key: 64 bytes of Ed25519 signature."""

_HEADER = 10
_HASH = 32
_NULL, _SIGNED = b"\x00", b"\x02"  # the signature union's branch: null, or the 64-byte fixed
_EMPTY64 = 0xC15D213AA4D7A795


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _crc_table()


def crc64_avro(data: bytes) -> int:
    """The Rabin CRC-64 fingerprint the Avro spec names ``CRC-64-AVRO``."""
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def schema_dir() -> Path:
    """Where the ``.avsc`` contract lives: ``schemas/`` at the repository's top level,
    installed as the package data ``flamingock_es.schemas`` (setup.py maps it)."""
    return Path(str(resources.files("flamingock_es.schemas")))


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Parse ``schemas/<name>.avsc`` with fastavro; cached."""
    path = schema_dir() / f"{name}.avsc"
    parsed = fastavro.parse_schema(json.loads(path.read_text()))
    assert isinstance(parsed, dict)
    return parsed


def fingerprint(schema: dict[str, Any]) -> bytes:
    """The single-object header for ``schema``: marker plus little-endian CRC-64-AVRO."""
    canonical = to_parsing_canonical_form(schema).encode()
    return MAGIC + crc64_avro(canonical).to_bytes(8, "little")


@cache
def writer_schemas(name: str) -> tuple[dict[str, Any], ...]:
    """Every writer schema of ``name``, oldest first: ``NAME.v1.avsc``, ..., ``NAME.avsc``."""
    older = sorted(schema_dir().glob(f"{name}.v*.avsc"),
                   key=lambda path: int(path.stem.rpartition(".v")[2]))
    return (*(load_schema(path.stem) for path in older), load_schema(name))


def _signed_after_hash(schema: dict[str, Any]) -> bool:
    """True if the schema has the signature field after the hash (writer schema 2 on)."""
    return bool(schema["fields"][-1]["name"] == "signature")


def _slots(cls: type[Any]) -> dict[str, tuple[Callable[[Any, Any], None], Any]]:
    """Each field of a frozen slots dataclass: its slot's setter, and its default (or
    ``MISSING``). Refuses classes that could not be built faithfully that way
    (``__post_init__``, default factories)."""
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: not a plain slots dataclass")
    out = {}
    for f in fields(cls):
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: a default factory")
        slot = next(k.__dict__[f.name] for k in cls.__mro__ if f.name in k.__dict__)
        out[f.name] = (slot.__set__, f.default)
    return out


def _builder(cls: type[Any]) -> Callable[..., Any]:
    """``cls(**fields)`` for a frozen slots dataclass, without its ``__init__``.

    A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``; this
    calls each slot's descriptor directly, which makes decoding an event about 3x cheaper (a
    replay decodes 100k+). It builds the same object: every field set, defaults applied.
    """
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    params, lines = [], []
    for name, (setter, default) in _slots(cls).items():
        namespace[f"set_{name}"] = setter
        if default is MISSING:
            params.append(name)
        else:
            namespace[f"default_{name}"] = default
            params.append(f"{name}=default_{name}")
        lines.append(f"    set_{name}(self, {name})\n")
    source = (f"def build(*, {', '.join(params)}):\n    self = new(cls)\n{''.join(lines)}"
              "    return self\n")
    exec(source, namespace)  # as dataclasses itself builds __init__
    return namespace["build"]  # type: ignore[no-any-return]


_PAYLOADS: dict[str, Callable[..., Payload]] = {
    cls.avro_name: _builder(cls) for cls in PAYLOAD_TYPES}
_EVENT, _ACTOR, _RECORDED = _builder(AuditEvent), _builder(Actor), _builder(Recorded)


def _fields(value: Any) -> dict[str, Any]:
    """A record's fields: a record inside a union is read as ``(name, fields)``."""
    return value[1] if type(value) is tuple else value  # type: ignore[no-any-return]


def _payload(name: str, data: dict[str, Any]) -> Payload:
    # Avro already typed every field; only nested records, enums and arrays need turning
    # into their Python types, which keeps decoding close to fastavro's own speed.
    if name not in _PLAIN_PAYLOADS:
        for key in ("error", "original_error"):
            value = data.get(key)
            if value is not None:
                data[key] = ErrorInfo(**_fields(value))
        if "marked_as" in data:
            data["marked_as"] = MarkedAs(data["marked_as"])
        elif "outcome" in data:
            data["outcome"] = RunOutcome(data["outcome"])
            data["applied"] = tuple(data["applied"])
            data["not_started"] = tuple(data["not_started"])
        elif "planned" in data:
            data["planned"] = tuple(data["planned"])
            data["labels"] = tuple(data["labels"])
            requester = data["requester"]
            if requester is not None:
                data["requester"] = Requester(**_fields(requester))
        elif "cause" in data:
            data["cause"] = SkipCause(data["cause"])
        elif "through" in data and "applied" in data:
            data["applied"] = tuple(data["applied"])
        elif "tenants" in data:  # a rollout's tenants, and a wave's
            data["tenants"] = tuple(data["tenants"])
    return _PAYLOADS[name](**data)


_PLAIN_PAYLOADS = frozenset(  # payloads whose fields Avro already reads as their Python types
    cls.avro_name for cls in PAYLOAD_TYPES
    if not {"error", "original_error", "marked_as", "outcome", "planned", "cause", "applied",
            "tenants"}
    & {f.name for f in fields(cls)})


# The compiled reader (avro_reader.py) builds the events itself, several times faster than
# fastavro and the conversion above; only for the current writer schema, and only compiled.

_RECORD_TYPES: dict[str, type[Any]] = {
    f"{AVRO_NAMESPACE}.{cls.__name__}": cls
    for cls in (AuditEvent, Actor, TraceContext, ErrorInfo, Requester, *PAYLOAD_TYPES)}
_ENUM_TYPES: dict[str, Callable[[str], Any]] = {
    f"{AVRO_NAMESPACE}.{cls.__name__}": cls for cls in (MarkedAs, RunOutcome, SkipCause)}


def compiled_reader() -> bool:
    """True if the compiled reader is installed and current (see :mod:`._speedups.compiled`):
    then a codec decodes with it unless told otherwise (``pure_python`` in the settings)."""
    return is_current(avro_reader)


def _construction(name: str, field_names: list[str]) -> avro_reader.Construction:
    """How the reader makes record ``name``: as :func:`_builder` does, from compiled code."""
    cls = _RECORD_TYPES[name]
    slots = _slots(cls)
    unknown = set(field_names) - slots.keys()
    if unknown:
        raise TypeError(f"{cls.__name__}: no field(s) {', '.join(sorted(unknown))}")
    defaults = []
    for field_name, (setter, default) in slots.items():
        if field_name not in field_names:
            if default is MISSING:
                raise TypeError(f"{cls.__name__}.{field_name}: neither given nor defaulted")
            defaults.append((setter, default))
    return current_source(avro_reader).Construction(  # type: ignore[no-any-return]
        cls, [slots[f][0] for f in field_names], defaults, shared=cls is Actor)


@cache
@cache
def _writers_by_fingerprint(schema_name: str) -> dict[bytes, tuple[dict[str, Any], bool]]:
    """Each writer schema of ``schema_name`` by its fingerprint, with whether it has the
    signature field after the hash; once a process (CRC-64 in Python costs ~1 ms a schema)."""
    return {fingerprint(w): (w, _signed_after_hash(w)) for w in writer_schemas(schema_name)}


def _reader_tree(schema_name: str) -> avro_reader.Node:
    return current_source(avro_reader).compile_schema(  # type: ignore[no-any-return]
        load_schema(schema_name), _construction, lambda name, symbol: _ENUM_TYPES[name](symbol))


class AuditCodec:
    """Encodes and decodes :class:`AuditEvent` records; knows every historical writer schema."""

    def __init__(self, schema_name: str = "AuditEvent", *, reader: bool | None = None) -> None:
        """``reader``: decode the current writer schema's records with
        :mod:`~flamingock_es.core._speedups.avro_reader` (default: where it is compiled and
        current), else with fastavro; older writer schemas always go through fastavro."""
        # fingerprint -> (writer schema, whether it has the signature field after the hash)
        self._writers = dict(_writers_by_fingerprint(schema_name))
        self.header = next(reversed(self._writers))  # the current one's, the last writer's
        self.schema = self._writers[self.header][0]
        use_reader = compiled_reader() if reader is None else reader
        self._tree = _reader_tree(schema_name) if use_reader else None
        self._read_tree = current_source(avro_reader).read
        # Every event of a run has the same actor: build it once (a replay decodes 100k+).
        self._actors: dict[tuple[Any, ...], Actor] = {}

    def seal(self, event: AuditEvent, sign: Sign | None = None) -> tuple[AuditEvent, bytes]:
        """Hash ``event`` over its ``prev_hash`` and body (and sign the hash with ``sign``);
        return it with its bytes."""
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.schema, _to_avro(event))
        body = buf.getvalue()[:-_HASH - 1]  # the placeholder hash, and a null signature
        digest = hashlib.sha256(event.prev_hash + body).digest()
        if sign is None:
            return event.replace(hash=digest), self.header + body + digest + _NULL
        signature = sign(AUDIT_CONTEXT + digest)
        return (event.replace(hash=digest, signature=signature),
                self.header + body + digest + _SIGNED + signature)

    def decode(self, data: bytes, position: int = -1) -> Recorded:
        """Decode one record. Raises :class:`DecodeError` naming ``position`` if it cannot."""
        header = data[:_HEADER]
        found = self._writers.get(header)
        if found is None:
            if not data.startswith(MAGIC):
                raise DecodeError(
                    f"record at offset {position} is not an Avro single-object event "
                    f"(starts with {data[:4].hex() or 'nothing'}); it was not written by "
                    "flamingock-es.",
                    position,
                )
            raise DecodeError(
                f"record at offset {position} was written with an unknown schema "
                f"(fingerprint {header[2:].hex()}); upgrade flamingock-es to read it.",
                position,
            )
        writer, signed_schema = found
        if writer is self.schema and self._tree is not None:
            event = self._read(data, position)
        else:
            event = self._read_with_fastavro(data, position, writer)
        tail = (1 if event.signature is None else 65) if signed_schema else 0
        digest = hashlib.sha256(event.prev_hash)
        digest.update(memoryview(data)[_HEADER:len(data) - _HASH - tail])
        intact = digest.digest() == event.hash
        return _RECORDED(position=position, event=event, intact=intact,  # type: ignore[no-any-return]
                         leaf=leaf_hash(data))

    def _read(self, data: bytes, position: int) -> AuditEvent:
        assert self._tree is not None
        try:
            event, end = self._read_tree(self._tree, data, _HEADER)
            if end != len(data):
                raise ValueError(f"{len(data) - end} bytes after the record")
        except (ValueError, IndexError, OverflowError) as exc:  # the reader's corrupt input
            raise _corrupt(position, exc) from exc
        return event  # type: ignore[no-any-return]

    def _read_with_fastavro(self, data: bytes, position: int,
                            writer: dict[str, Any]) -> AuditEvent:
        stream = io.BytesIO(data)
        stream.seek(_HEADER)
        try:
            raw = fastavro.schemaless_reader(
                stream,
                writer,
                None if writer is self.schema else self.schema,
                # Names only where a union needs them (the payload); ``_override`` would
                # also unwrap ["null", record] unions, but costs a third of the decode.
                return_record_name=True,
            )
            if stream.tell() != len(data):
                raise ValueError(f"{len(data) - stream.tell()} bytes after the record")
        except Exception as exc:  # fastavro raises several types on truncated/corrupt input
            raise _corrupt(position, exc) from exc
        return _from_avro(raw, self._actors)  # type: ignore[arg-type]  # a record reads a dict

    def decode_all(self, records: Iterable[tuple[int, bytes]]) -> Iterator[Recorded]:
        """Decode ``(position, bytes)`` pairs in order."""
        decode = self.decode
        for position, data in records:
            yield decode(data, position)


def _corrupt(position: int, exc: Exception) -> DecodeError:
    return DecodeError(f"record at offset {position} is corrupt and cannot be decoded "
                       f"({exc!r}); nothing was guessed.", position)


def _to_avro(event: AuditEvent) -> dict[str, Any]:
    payload = event.payload
    return {
        "event_id": event.event_id,
        "seq": event.seq,
        "time": event.time,
        "namespace": event.namespace,
        "run_id": event.run_id,
        "actor": plain(event.actor),
        "trace": plain(event.trace) if event.trace else None,
        "request_id": event.request_id,
        "payload": (payload.avro_name, payload.to_dict()),
        "prev_hash": event.prev_hash,
        "key_id": event.key_id,
        "signed_from": event.signed_from,
        "hash": bytes(_HASH),
        "signature": None,
    }


def _from_avro(raw: dict[str, Any], actors: dict[tuple[Any, ...], Actor]) -> AuditEvent:
    name, payload = raw["payload"]
    trace = raw["trace"]
    time: datetime = raw["time"]
    actor_fields = raw["actor"]
    key = tuple(actor_fields.values())
    actor = actors.get(key)
    if actor is None:
        if len(actors) >= 1024:
            actors.clear()
        actor = actors[key] = _ACTOR(**actor_fields)
    return _EVENT(  # type: ignore[no-any-return]
        event_id=raw["event_id"],
        seq=raw["seq"],
        time=time,
        namespace=raw["namespace"],
        run_id=raw["run_id"],
        actor=actor,
        trace=TraceContext(**_fields(trace)) if trace else None,
        request_id=raw["request_id"],
        payload=_payload(name, payload),
        prev_hash=raw["prev_hash"],
        key_id=raw["key_id"],
        signed_from=raw["signed_from"],
        hash=raw["hash"],
        signature=raw["signature"],
    )
