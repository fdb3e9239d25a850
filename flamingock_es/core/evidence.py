"""Checkpoints: the log's tree head, signed in the C2SP formats, published beside the log.

At the end of every run a runner signs a c2sp.org/tlog-checkpoint of its state's tree (the
origin line, the tree size, the root hash) as a c2sp.org/signed-note with its Ed25519 key,
the key name being the origin, and publishes it in the namespace's :class:`CheckpointStore`
(a folder beside the local log; a compacted topic on Kafka): :func:`publish`, the one call
the runner makes. Where the trust store names witnesses, it then submits the checkpoint to
each (c2sp.org/tlog-witness: the size the witness last cosigned and a consistency proof from
it) and keeps the cosignatures that verify; where it names a time-stamping authority, it asks
for an RFC 3161 token over the SHA-256 of the signed note. A witness or a TSA that does not
answer costs a warning, never the run: the checkpoint is published without what it did not
get, and the next run's checkpoint asks again.

What is kept per checkpoint (:class:`Published`, one JSON object): the note as the runner
signed it, the cosignature lines, the token, the log position of the tree's last leaf, the
tree's frontier (so that the next run proves consistency from it without the whole tree),
and the size each witness last cosigned.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import EvidenceError, FlamingockError, WitnessConflictError
from .backend import Backend
from .logtree import leaves_after
from .merkle import (
    Frontier,
    MemoryHashStore,
    SparseHashStore,
    append_leaves,
    consistency_proof,
    stored_size,
    tree_hash,
)
from .note import (
    ALG_ED25519,
    Checkpoint,
    Note,
    NoteError,
    NoteSigner,
    Signature,
    Verifier,
    open_note,
    sign_note,
)
from .ports import CheckpointStore, Cosigner, EventLog, Timestamper
from .state import State
from .trust import Signer, TrustedKey, TrustStore, principals

__all__ = [
    "Published",
    "checkpoint_signers",
    "default_origin",
    "history",
    "keep_evidence",
    "latest",
    "log_verifiers",
    "origin_of",
    "publish",
    "published_note",
    "sign_checkpoint",
]

log = logging.getLogger(__name__)

_FORMAT = 1


def default_origin(namespace: str) -> str:
    """The origin line when the trust store names none: ``flamingock-es/NAMESPACE``. A public
    witness tells logs apart by origin: give yours one under a name you control."""
    return f"flamingock-es/{namespace}"


def origin_of(trust: TrustStore | None, namespace: str) -> str:
    """The namespace's checkpoint origin: the trust store's, or the default."""
    return (trust.origin if trust is not None and trust.origin else None) or \
        default_origin(namespace)


def log_verifiers(trust: TrustStore, origin: str, namespace: str) -> list[Verifier]:
    """The note verifier keys of every key trusted to write ``namespace`` (named ``origin``,
    as their checkpoints are), for signed-note tools (Go's ``note.NewVerifier`` reads them)."""
    from cryptography.hazmat.primitives import serialization

    return [Verifier(origin, ALG_ED25519, k.public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        for k in principals(trust, "write", namespace)]


def checkpoint_signers(note: str, trust: TrustStore, verifiers: Sequence[Verifier],
                       position: int | None, when: datetime | None
                       ) -> list[tuple[TrustedKey, str | None]]:
    """Each key of ``trust`` whose signature on the checkpoint ``note`` verifies, with why it
    may not have signed it at log ``position`` (the tree's last leaf) and time ``when``
    (``None``: it may): its validity window and revocation, as for the events it signs.
    ``NoteError`` when none of ``verifiers`` verifies the note."""
    from cryptography.hazmat.primitives import serialization

    raw = {v.verifier.public_key for v in open_note(note, verifiers).verified}
    return [(entry, entry.refuses(position, when)) for entry in trust.keys.values()
            if entry.public_key.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw) in raw]


@dataclass(frozen=True)
class Published:
    """One published checkpoint and what came with it."""

    note: str
    """The checkpoint as the runner signed it: a signed note with the runner's line only
    (what the time-stamp token is over, byte for byte)."""
    position: int
    """The log position of the tree's last leaf (-1 for an empty tree)."""
    frontier: Frontier
    time: str
    cosignatures: tuple[str, ...] = ()
    """Witnesses' cosignature lines (``— NAME BASE64``), each verified when it was added."""
    timestamp: bytes | None = None
    """The RFC 3161 ``TimeStampResp`` (DER) over ``SHA-256(note)``, when a TSA gave one."""
    witnessed: dict[str, int] = field(default_factory=dict)
    """The size each witness (by name) last cosigned, this checkpoint included."""

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint.parse(Note.parse(self.note).text)

    @property
    def size(self) -> int:
        return self.frontier.size

    @property
    def digest(self) -> bytes:
        """What the time-stamp token is over: ``SHA-256`` of the signed note's bytes."""
        return hashlib.sha256(self.note.encode()).digest()

    def cosigned(self) -> str:
        """The note with the witnesses' cosignature lines after the runner's."""
        note = Note.parse(self.note)
        lines = tuple(Signature.parse_line(line) for line in self.cosignatures)
        return str(note.with_signatures(lines))

    def to_bytes(self) -> bytes:
        return json.dumps({
            "format": _FORMAT, "note": self.note, "position": self.position,
            "frontier": self.frontier.to_json(), "time": self.time,
            "cosignatures": list(self.cosignatures),
            "timestamp": base64.b64encode(self.timestamp).decode() if self.timestamp else None,
            "witnessed": self.witnessed}, indent=1).encode() + b"\n"

    @classmethod
    def parse(cls, data: bytes, where: str = "a published checkpoint") -> Published:
        """The record :meth:`to_bytes` wrote; ``EvidenceError`` for anything else."""
        try:
            raw: Any = json.loads(data)
            if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
                raise ValueError("not a published checkpoint of format 1")
            token = raw.get("timestamp")
            published = cls(str(raw["note"]), int(raw["position"]),
                            Frontier.from_json(raw["frontier"]), str(raw.get("time", "")),
                            tuple(str(line) for line in raw.get("cosignatures", ())),
                            base64.b64decode(token) if token else None,
                            {str(k): int(v) for k, v in dict(raw.get("witnessed", {})).items()})
            if published.checkpoint.size != published.size or \
                    published.checkpoint.root_hash != published.frontier.root():
                raise ValueError("its frontier is not the tree its note names")
        except (ValueError, KeyError, TypeError, NoteError) as exc:
            raise EvidenceError(f"{where} cannot be read: {exc}") from exc
        return published


def published_note(text: str, where: str = "a checkpoint") -> Published:
    """A signed checkpoint note given by hand (``verify --checkpoint``), as a record to check:
    only its tree size and root are known (no frontier nodes, no position)."""
    try:
        checkpoint = Checkpoint.parse(Note.parse(text).text)
    except NoteError as exc:
        raise EvidenceError(f"{where} is not a signed checkpoint: {exc}") from exc
    return Published(text, -1, _RootOnly(checkpoint.size, checkpoint.root_hash), "")


class _RootOnly(Frontier):
    """A tree known by its size and root only (a checkpoint given by hand)."""

    def __init__(self, size: int, root: bytes) -> None:
        super().__init__()
        self._size, self._root = size, root

    def root(self) -> bytes:
        return self._root


def sign_checkpoint(state: State, origin: str, signer: Signer) -> Published:
    """A checkpoint of ``state``'s tree, signed by ``signer`` under the key name ``origin``."""
    tree = state.tree.copy()
    body = Checkpoint(origin, tree.size, tree.root()).body()
    note = sign_note(body, [NoteSigner(origin, signer.private_key)])
    return Published(note, state.position if tree.size else -1, tree,
                     datetime.now(UTC).isoformat(timespec="microseconds"))


def latest(store: CheckpointStore) -> Published | None:
    """The latest published checkpoint, if one can be read (an unreadable one: a warning)."""
    data = store.latest()
    if data is None:
        return None
    try:
        return Published.parse(data, f"the latest checkpoint in {store.where}")
    except EvidenceError as exc:
        log.warning("%s; the next one is published as if none were", exc)
        return None


def history(store: CheckpointStore) -> list[Published]:
    """Every published checkpoint that can be read, by tree size."""
    out: dict[int, Published] = {}
    for data in store.history():
        try:
            published = Published.parse(data, f"a checkpoint in {store.where}")
        except EvidenceError as exc:
            log.warning("%s", exc)
            continue
        out[published.size] = published
    return [out[size] for size in sorted(out)]


def publish(store: CheckpointStore | None, log_: EventLog, state: State, *,
            signer: Signer | None, trust: TrustStore | None, namespace: str,
            witnesses: Sequence[Cosigner] = (), timestamper: Timestamper | None = None,
            force: bool = False) -> Published | None:
    """Sign a checkpoint of ``state``'s tree and publish it, cosigned and time-stamped where
    the trust store says so: what a runner does at the end of every run (and the
    ``checkpoint`` command). ``None`` when there is nothing to sign with or nothing new
    (``force``: publish again all the same, to ask the witnesses and the TSA again)."""
    if store is None or signer is None or state.position < 0:
        return None
    previous = latest(store)
    if previous is not None and previous.size == state.tree.size and not force and \
            previous.frontier == state.tree:
        return previous
    published = sign_checkpoint(state, origin_of(trust, namespace), signer)
    if previous is not None:
        published = replace(published, witnessed=dict(previous.witnessed))
    for witness in witnesses:
        try:
            published = _cosigned(published, witness, store, log_, previous)
        except FlamingockError as exc:
            log.warning("the witness %s did not cosign the checkpoint of size %d: %s",
                        witness.name, published.size, exc)
    if timestamper is not None:
        try:
            published = replace(published, timestamp=timestamper.timestamp(published.digest))
        except FlamingockError as exc:
            log.warning("no time-stamp on the checkpoint of size %d: %s", published.size, exc)
    store.publish(published.size, published.to_bytes())
    return published


def keep_evidence(backend: Backend, state: State) -> Published | None:
    """What a runner leaves at the end of a run, beside the snapshot and the head: a signed
    checkpoint of its state's tree, published (cosigned and time-stamped where configured),
    and the proof cache caught up where the backend keeps one. Raises only what publishing
    the checkpoint itself raises (``AppendError``): witnesses and TSAs cost warnings."""
    published = publish(backend.checkpoints, backend.log, state, signer=backend.signer,
                        trust=backend.trust, namespace=backend.namespace,
                        witnesses=backend.witnesses, timestamper=backend.timestamper)
    if backend.proofs is not None and published is not None:
        backend.proofs.catch_up(backend.log)
    return published


def _cosigned(published: Published, witness: Cosigner, store: CheckpointStore,
              log_: EventLog, previous: Published | None) -> Published:
    """``published`` with ``witness``'s verified cosignature added."""
    old = published.witnessed.get(witness.name, 0)
    for _ in range(2):
        proof = _consistency(old, published, store, log_, previous)
        try:
            lines = witness.cosign(published.note.encode(), old, proof)
            break
        except WitnessConflictError as conflict:  # it knows another size: prove from there
            if conflict.witness_size > published.size or conflict.witness_size == old:
                raise
            old = conflict.witness_size
    else:  # pragma: no cover - the loop breaks or raises
        raise AssertionError
    verifier = Verifier.from_vkey(witness.vkey)
    text = published.note + "".join(line + "\n" for line in lines)
    try:  # keep only lines that verify with the witness's key (and the note with them)
        open_note(text, [verifier])
    except NoteError as exc:
        raise EvidenceError(f"the witness {witness.name} answered with a cosignature that "
                              f"does not verify with its key ({exc}); it was not kept") from exc
    mine = [line for line in lines if Signature.parse_line(line).name == verifier.name]
    return replace(published, cosignatures=(*published.cosignatures, *mine),
                   witnessed={**published.witnessed, witness.name: published.size})


def _consistency(old: int, published: Published, store: CheckpointStore, log_: EventLog,
                 previous: Published | None) -> list[bytes]:
    """The consistency proof from size ``old`` to ``published``'s tree: from the frontier of
    a published checkpoint of that size and the records since (O(records since)), else from
    the whole log (a witness that last saw a size no checkpoint here has)."""
    size = published.size
    if old in (0, size):
        return []
    base = previous if previous is not None and previous.size == old else \
        next((p for p in history(store) if p.size == old), None)
    if base is not None:
        sparse = SparseHashStore(base.frontier)
        append_leaves(sparse, _first(size - old, leaves_after(log_, base.position)))
        store_: SparseHashStore | MemoryHashStore = sparse
    else:
        log.info("proving consistency from size %d with the whole log: no checkpoint of that "
                 "size is published", old)
        store_ = MemoryHashStore()
        append_leaves(store_, _first(size, leaves_after(log_, -1)))
    if stored_size(store_) != size or tree_hash(store_, size) != published.frontier.root():
        raise EvidenceError(f"the log's records do not give the tree of size {size} that was "
                              "just signed: it changed meanwhile")
    return consistency_proof(store_, old, size)


def _first(count: int, pairs: Iterable[tuple[int, bytes]]) -> Iterable[bytes]:
    for n, (_, leaf) in enumerate(pairs):
        if n >= count:
            return
        yield leaf
