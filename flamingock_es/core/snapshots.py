"""Snapshots: the folded state at a log position, so that a start-up folds only what follows.

A snapshot is the :class:`~flamingock_es.core.state.State` at position ``P`` as decisions need it
(:meth:`~flamingock_es.core.state.State.for_decisions`: without old runs' details, so that its
size does not grow with the history), with the hash of the event there, written by a runner
at the end of a run that appended (and by ``flamingock-es snapshot``), beside the log: a
file for the local log, a compacted topic on Kafka. With a trust store the runner signs it,
like its appends.

A start-up reads the latest snapshot and checks it against the log before it believes it:
the event at ``P`` must have that hash, and, with a trust store, the snapshot must be signed
by a key trusted to write the namespace. Then it folds only what follows ``P``. A snapshot
that does not match is ignored with a warning, never trusted. A *trusted* snapshot is also a
witness: a log that now ends before ``P``, or holds another event there, was cut or rewritten
since, and the runner refuses to decide on it. ``verify`` and ``replay`` never use snapshots:
they read everything.

A snapshot keeps the log's Merkle tree as its frontier (``State.tree``, at most 64 hashes), so
a start-up resumes the tree where the snapshot stopped.
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import hashlib
import io
import json
import logging
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..errors import ChainBrokenError, DecodeError
from .codec import AuditCodec
from .merkle import Frontier
from .ports import EventLog, SnapshotStore
from .reading import LogReader
from .state import State
from .trust import Signer, TrustStore

__all__ = ["FORMAT", "SNAPSHOT_CONTEXT", "decode_state", "encode_state", "event_hash_at",
           "load", "read", "save"]

log = logging.getLogger(__name__)

FORMAT = 6
"""4: units count their applications (``UnitState.application``); 5: the log's Merkle
frontier (``State.tree``); 6: a rollout namespace's rollouts (``State.rollouts``). A
snapshot of another format is ignored: the log is folded from its start once, and the next
snapshot is of this one."""
SNAPSHOT_CONTEXT = b"flamingock-es snapshot "
"""What a snapshot's signature signs, before the SHA-256 of its body's bytes."""

# A snapshot is gzip(header line + body): the header (JSON, one line) holds the format, the
# position (to compare snapshots without reading the body) and the signature; the body (JSON)
# is what the signature covers, byte for byte, so checking it needs no re-encoding.


def save(store: SnapshotStore, state: State, namespace: str, signer: Signer | None) -> bool:
    """Write ``state`` as the namespace's latest snapshot, signed, unless the store has a
    newer one or the state holds a finding (a snapshot vouches for what it holds). True if
    written. Without a signing key nothing is written: no reader believes an unsigned
    snapshot (anyone who can write beside the log could have written it)."""
    if signer is None or state.position < 0 or state.findings() or state.needs_refold:
        return False
    current = _header(store.latest())
    if current is not None and int(current.get("position", -1)) >= state.position:
        return False
    kept = state.for_decisions()
    body = json.dumps({"namespace": namespace, "position": state.position,
                       "head": state.head_hash.hex(), "state": encode_state(kept)},
                      separators=(",", ":")).encode()
    header: dict[str, Any] = {"format": FORMAT, "position": state.position,
                              "key_id": signer.key_id,
                              "signature": signer.sign(_message(body)).hex()}
    store.save(gzip.compress(json.dumps(header).encode() + b"\n" + body, 6))
    return True


def load(store: SnapshotStore, log_: EventLog, namespace: str,
         reader: LogReader) -> State | None:
    """The latest snapshot's state, once its signature and the log hold it; ``None`` if
    there is none, it is not signed by a trusted writer, or it does not hold (with a
    warning): a snapshot never changes a decision the log would not make. Raises
    ``ChainBrokenError`` when a trusted snapshot shows that the log was cut or rewritten
    since."""
    data = store.latest()
    if data is None:
        return None
    trust = reader.trust
    if trust is None:
        log.warning("ignoring the snapshot of %s: without a trust store no snapshot is "
                    "believed (anyone who can write beside the log could have written it); "
                    "the log is read from its start", namespace)
        return None
    try:
        first, _, raw = gzip.decompress(data).partition(b"\n")
        header = json.loads(first)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("written by another version (format "
                             f"{header.get('format') if isinstance(header, dict) else '?'})")
    except (OSError, ValueError, EOFError) as exc:
        log.warning("ignoring the snapshot of %s: it cannot be read (%s)", namespace, exc)
        return None
    trusted = _signed_by_a_writer(header, raw, namespace, trust)
    if not trusted:
        log.warning("ignoring the snapshot of %s at offset %s: no trusted signature covers it",
                    namespace, header.get("position"))
        return None
    try:
        body = json.loads(raw)
        position, head = int(body["position"]), bytes.fromhex(body["head"])
        if body.get("namespace") != namespace:
            raise ValueError(f"it is namespace {body.get('namespace')!r}'s")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the snapshot of %s: it cannot be read (%s)", namespace, exc)
        return None
    found = event_hash_at(log_, position, reader.codec)
    if found != head:
        where = ("the log ends before it" if found is None else
                 f"the event there has hash {found.hex()[:16]}..., not {head.hex()[:16]}...")
        raise ChainBrokenError(
            f"the audit log {log_.name} no longer holds what the signed snapshot at offset "
            f"{position} vouches for: {where}. Events were cut off or rewritten since. "
            "Nothing was run; restore the log (docs/recovery.md).")
    try:
        state = decode_state(body["state"])
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the snapshot of %s: its state cannot be read (%s)", namespace,
                    exc)
        return None
    state.signed_through = position
    return state


def read(log_: EventLog, store: SnapshotStore, namespace: str, reader: LogReader) -> State:
    """The namespace's state: the latest snapshot that holds, and what the log gained since."""
    state = load(store, log_, namespace, reader) or State()
    return reader.catch_up(log_, state)


def _signed_by_a_writer(header: dict[str, Any], body: bytes, namespace: str,
                        trust: TrustStore) -> bool:
    signature = header.get("signature")
    try:
        signed = bytes.fromhex(signature) if isinstance(signature, str) else None
    except ValueError:
        return False
    position = header.get("position")
    problem = trust.check(header.get("key_id"), signed, _message(body), namespace=namespace,
                          role="write", position=position if isinstance(position, int) else None)
    return problem is None


def _message(body: bytes) -> bytes:
    return SNAPSHOT_CONTEXT + hashlib.sha256(body).digest()


def _header(data: bytes | None) -> dict[str, Any] | None:
    """A snapshot's header line, without reading its body; ``None`` if unreadable."""
    if data is None:
        return None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            header = json.loads(stream.readline())
    except (OSError, ValueError, EOFError):
        return None
    return header if isinstance(header, dict) else None


def event_hash_at(log_: EventLog, position: int, codec: AuditCodec) -> bytes | None:
    """The hash of the event at ``position``, if the log still has one there."""
    for at, data in log_.read(position):
        if at != position:
            return None
        try:
            return codec.decode(data, at).event.hash
        except DecodeError:
            return None
    return None


# State <-> JSON, driven by the dataclasses' own type hints --------------------------------

Convert = Callable[[Any], Any]


def encode_state(state: State) -> Any:
    """``state`` as plain JSON values (no signatures to re-check: ``seals`` is left out)."""
    return _encoder(State)(dataclasses.replace(state, seals=[]))


def decode_state(value: Any) -> State:
    """The :class:`State` that :func:`encode_state` wrote."""
    state: State = _decoder(State)(value)
    return state


_ENCODERS: dict[Any, Convert] = {}
_DECODERS: dict[Any, Convert] = {}


def _encoder(kind: Any) -> Convert:
    if kind not in _ENCODERS:
        _ENCODERS[kind] = _make(kind, encode=True)
    return _ENCODERS[kind]


def _decoder(kind: Any) -> Convert:
    if kind not in _DECODERS:
        _DECODERS[kind] = _make(kind, encode=False)
    return _DECODERS[kind]


def _make(kind: Any, *, encode: bool) -> Convert:
    """A converter for values of ``kind``, one direction."""
    convert = _encoder if encode else _decoder
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        inner = convert(next(a for a in args if a is not type(None)))
        return lambda v: None if v is None else inner(v)
    if origin in (list, tuple, frozenset, set):
        build: Convert = list if encode else (tuple if origin is tuple else origin)
        if args[0] in _PLAIN:  # ids and names: copied whole, not item by item
            return build
        item = convert(args[0])
        return lambda v: build(item(x) for x in v)
    if origin is dict:
        key, val = convert(args[0]), convert(args[1])
        if encode:
            return lambda v: {str(k): val(x) for k, x in v.items()}
        return lambda v: {key(k): val(x) for k, x in v.items()}
    if dataclasses.is_dataclass(kind):
        return _dataclass(kind, encode)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return (lambda v: v.value) if encode else kind
    if kind is bytes:
        return (lambda v: v.hex()) if encode else bytes.fromhex
    if kind is Frontier:
        return (lambda v: v.to_json()) if encode else Frontier.from_json
    if kind is datetime:
        return (lambda v: v.isoformat()) if encode else datetime.fromisoformat
    if kind in (str, int, float, bool):
        return lambda v: v if encode else kind(v)
    raise TypeError(f"no snapshot conversion for {kind!r}")


_PLAIN = (str, int, float, bool, str | None, int | None, float | None, bool | None)


def _dataclass(cls: Any, encode: bool) -> Convert:
    """A dataclass as the list of its fields' values, in declared order: a snapshot of ten
    thousand units is read in milliseconds when only the fields that need it are converted
    (times, enums, nested records) and the rest are passed through."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    keywords = any(f.kw_only for f in fields)
    special = [(i, hints[n]) for i, n in enumerate(names) if hints[n] not in _PLAIN]
    converters: list[tuple[int, Convert]] = []

    def ready() -> list[tuple[int, Convert]]:  # built on first use: types refer to each other
        if len(converters) < len(special):
            converters[:] = [(i, (_encoder if encode else _decoder)(kind))
                             for i, kind in special]
        return converters

    if encode:
        def encode_one(value: Any) -> list[Any]:
            out = [getattr(value, n) for n in names]
            for i, convert in ready():
                out[i] = convert(out[i])
            return out
        return encode_one

    def decode_one(value: Any) -> Any:
        if len(value) != len(names):
            raise ValueError(f"{cls.__name__}: {len(value)} values for {len(names)} fields")
        values = list(value)
        for i, convert in ready():
            values[i] = convert(values[i])
        return cls(**dict(zip(names, values, strict=True))) if keywords else cls(*values)
    return decode_one
