"""Proving what a log holds against its published checkpoints, and checking those checkpoints.

:func:`prove` finds the events (a unit's, a run's, a position's), proves each in the tree of
the latest published checkpoint from the tree kept on disk (O(log n) reads once it is caught
up), checks every proof before anyone sees it, and returns a bundle
(:mod:`flamingock_es.audit.proofs`). :func:`prove_consistency` proves that one published
checkpoint extends another. :func:`check_published` is what ``verify`` adds to a replay: the
published checkpoints hold against the log (signed by a key trusted where and when it
signed, of the same tree), and the latest carries the cosignatures the trust policy needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..core import evidence
from ..core.backend import Backend
from ..core.evidence import Published, checkpoint_signers, log_verifiers, origin_of
from ..core.merkle import Frontier, leaf_hash, verify_inclusion
from ..core.note import Checkpoint, NoteError, open_checkpoint
from ..core.ports import EventLog
from ..core.reading import LogReader
from ..core.state import Finding, State
from ..core.trust import TrustStore
from ..errors import ConfigError, EvidenceError, Remedy, RemedyKind
from .proofs import TokenCheck, consistency_bundle, cosigners, inclusion_bundle

__all__ = ["check_published", "positions_of", "prove", "prove_consistency", "published_of",
           "trusted_latest"]


def _trust(backend: Backend) -> TrustStore:
    if backend.trust is None:
        raise ConfigError(f"namespace {backend.namespace!r} has no trust store: a proof is "
                          "against a checkpoint signed by a trusted key, and without one no "
                          "key is trusted (docs/compliance.md)",
                          remedies=(Remedy(RemedyKind.KEYS),))
    return backend.trust


def trusted_latest(backend: Backend) -> Published:
    """The latest published checkpoint, once a key trusted to write the namespace signed it."""
    trust = _trust(backend)
    store = backend.checkpoints
    published = evidence.latest(store) if store is not None else None
    if published is None:
        raise EvidenceError(f"namespace {backend.namespace!r} has no published checkpoint yet: "
                            "runners publish one at the end of every run",
                            remedies=(Remedy(RemedyKind.CHECKPOINT),))
    _opened(published, trust, backend.namespace)
    return published


def _opened(published: Published, trust: TrustStore, namespace: str,
            position: int | None = None) -> Checkpoint:
    """The checkpoint, once a key trusted to write ``namespace`` signed it, inside that key's
    validity window and before its revocation: by the log position of the tree's last leaf
    (``position``, as the log gives it; else as the record says) and the time the checkpoint
    says it was signed."""
    origin = origin_of(trust, namespace)
    verifiers = log_verifiers(trust, origin, namespace)
    try:
        checkpoint = open_checkpoint(published.note, verifiers, origin)
    except NoteError as exc:
        raise EvidenceError(f"the checkpoint of size {published.size} is not signed by a key "
                            f"trusted to write {namespace!r}: {exc}") from exc
    when = datetime.fromisoformat(published.time) if published.time else None
    at = published.position if position is None else position
    signers = checkpoint_signers(published.note, trust, verifiers, at, when)
    if not any(refused is None for _, refused in signers):
        raise EvidenceError(f"the checkpoint of size {published.size} (offset {at}) was "
                            "signed by a key that may not sign it then: "
                            f"{'; '.join(str(refused) for _, refused in signers)}",
                            remedies=(Remedy(RemedyKind.KEYS),))
    return checkpoint


def positions_of(backend: Backend, state: State, *, unit: str | None = None,
                 run_id: str | None = None, every: bool = False) -> list[int]:
    """The positions to prove: a unit's event that set its status (``every``: each event of
    it, found by reading the log), or a run's events."""
    if unit is not None and not every:
        found = state.units.get(unit)
        if found is None:
            raise ConfigError(f"unit {unit!r} has no event in namespace {backend.namespace!r}")
        return [found.position]
    out = []
    replayed = backend.reader.replay(backend.log.read())
    for record in replayed.records:
        event = record.event
        if (unit is not None and getattr(event.payload, "unit_id", None) == unit) or \
                (run_id is not None and event.run_id == run_id):
            out.append(record.position)
    if not out:
        raise ConfigError(f"no event of {'unit ' + repr(unit) if unit else 'run ' + repr(run_id)}"
                          f" in namespace {backend.namespace!r}")
    return out


def prove(backend: Backend, positions: Sequence[int]) -> dict[str, Any]:
    """A bundle proving the records at ``positions`` in the latest published checkpoint."""
    trust = _trust(backend)
    published = trusted_latest(backend)
    tree = backend.proofs
    assert tree is not None, "open the namespace with proofs=True"
    checkpoint = published.checkpoint
    tree.holding(backend.log, checkpoint.size, checkpoint.root_hash,
                 f"size {checkpoint.size}")
    leaves = []
    for position in positions:
        index = tree.index_of(position)
        if index is None:
            raise ConfigError(f"no record starts at offset {position} of {backend.log.name}")
        if index >= checkpoint.size:
            raise EvidenceError(
                f"the record at offset {position} was appended after the latest published "
                f"checkpoint (size {checkpoint.size}): publish a newer one first",
                remedies=(Remedy(RemedyKind.CHECKPOINT),))
        record = backend.log.record_at(position)
        if record is None:
            raise EvidenceError(f"the record at offset {position} cannot be read back")
        proof = tree.inclusion(index, checkpoint.size)
        if not verify_inclusion(leaf_hash(record), index, checkpoint.size, proof,
                                checkpoint.root_hash):
            raise EvidenceError(f"the proof of offset {position} does not verify: the tree on "
                                f"disk ({tree.folder}) is damaged; delete it and prove again")
        leaves.append((index, position, record, proof))
    return inclusion_bundle(published, trust, backend.namespace, leaves)


def published_of(backend: Backend, spec: str) -> Published:
    """A published checkpoint by tree size (``1234``) or by file (a record ``checkpoint
    --json`` or the store wrote)."""
    store = backend.checkpoints
    if spec.isdigit():
        found = next((p for p in evidence.history(store) if p.size == int(spec)), None) \
            if store is not None else None
        if found is None:
            raise ConfigError(f"no checkpoint of tree size {spec} is published for "
                              f"{backend.namespace!r}")
        return found
    return Published.parse(Path(spec).read_bytes(), spec)


def prove_consistency(backend: Backend, old: Published, new: Published) -> dict[str, Any]:
    """A bundle proving that ``new``'s tree extends ``old``'s (both signed by trusted keys)."""
    trust = _trust(backend)
    if old.size > new.size:
        old, new = new, old
    for published in (old, new):
        _opened(published, trust, backend.namespace)
    tree = backend.proofs
    assert tree is not None, "open the namespace with proofs=True"
    tree.holding(backend.log, new.size, new.frontier.root(), f"size {new.size}")
    if tree.root(old.size) != old.frontier.root():
        raise EvidenceError(f"the log's tree of size {old.size} is not the one the checkpoint "
                            f"of that size signed: the log was rewritten in between")
    return consistency_bundle(old, new, trust, backend.namespace,
                              tree.consistency(old.size, new.size))


def _stamp(item: Published, tokens: TokenCheck | None) -> tuple[str, str | None]:
    """What a line says of a checkpoint's RFC 3161 token, and why it is refused (if it is):
    a token is checked against the TSA's CA over the SHA-256 of the signed note."""
    if not item.timestamp:
        return "", None
    if tokens is None:
        return ", time-stamped (the token is not checked: no TSA CA in the trust store)", None
    try:
        when = tokens(item.timestamp, hashlib.sha256(item.note.encode()).digest())
    except Exception as exc:  # any refusal of the token is a finding
        return "", (f"the checkpoint of size {item.size} carries an RFC 3161 token that "
                    f"does not verify against the trust store's TSA: {exc}")
    return f", time-stamped {when.isoformat()} (RFC 3161, checked)", None


def _roots(log: EventLog, sizes: Iterable[int]) -> dict[int, tuple[bytes, int]]:
    """The log's tree root at each of ``sizes`` (that it reaches), from its stored bytes, and
    the position of that tree's last record (-1 for the empty tree)."""
    wanted = set(sizes)
    tree, out = Frontier(), {}
    if 0 in wanted:
        out[0] = (tree.root(), -1)
    for position, data in log.read(0):
        if len(out) == len(wanted):
            break
        tree.append(leaf_hash(data))
        if tree.size in wanted:
            out[tree.size] = (tree.root(), position)
    return out


def check_published(log: EventLog, reader: LogReader, store: Any, namespace: str,
                    extra: Sequence[Published] = (), tokens: TokenCheck | None = None,
                    ) -> tuple[list[Finding], list[str]]:
    """Findings for published checkpoints that do not hold (the latest, and ``extra``), and a
    line per one that does, with its cosignatures and its RFC 3161 token (checked with
    ``tokens``, the trust store's TSA CA, where there is one)."""
    trust = reader.trust
    latest = evidence.latest(store) if store is not None else None
    published = [*([latest] if latest is not None else []), *extra]
    findings: list[Finding] = []
    lines: list[str] = []
    if trust is not None and trust.require_cosignatures and latest is None:
        findings.append(Finding(-1, "checkpoint", f"the trust policy requires "
                                f"{trust.require_cosignatures} witness cosignature(s) on the "
                                "head, and no checkpoint is published"))
    if not published:
        return findings, lines
    roots = _roots(log, {p.size for p in published})
    for item in published:
        where = item.position
        if item.size not in roots:
            findings.append(Finding(where, "checkpoint", f"the checkpoint of tree size "
                                    f"{item.size} counts more records than the log holds: "
                                    "records were cut off its end"))
            continue
        root, where = roots[item.size]  # where the log has the tree's last record
        if root != item.frontier.root():
            findings.append(Finding(where, "checkpoint", f"the log's first {item.size} records "
                                    "do not give the root the checkpoint signed: rewritten"))
            continue
        if trust is None:
            lines.append(f"checkpoint of size {item.size} holds (its signature is not checked: "
                         "no trust store)")
            continue
        try:
            _opened(item, trust, namespace, where)
        except EvidenceError as exc:
            findings.append(Finding(where, "checkpoint", str(exc)))
            continue
        names = cosigners(item.cosigned(), trust.witnesses)
        stamp, refused = _stamp(item, tokens)
        if refused is not None:
            findings.append(Finding(where, "checkpoint", refused))
        lines.append(f"checkpoint of size {item.size} (offset {where}) holds, signed"
                     f"{stamp}; cosigned by {len(names)} witness(es)"
                     f"{': ' + ', '.join(names) if names else ''}")
        if item is latest and len(names) < trust.require_cosignatures:
            findings.append(Finding(where, "checkpoint", f"the head checkpoint (size "
                                    f"{item.size}) has {len(names)} valid witness "
                                    f"cosignature(s); the trust policy requires "
                                    f"{trust.require_cosignatures}"))
    return findings, lines
