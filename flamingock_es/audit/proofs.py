"""Proof bundles: an event and its inclusion in a signed checkpoint, checked with nothing else.

A bundle (one JSON object, ``format: flamingock-es/proof/v1``) holds what an outsider needs
and nothing they must take on trust from us:

* ``checkpoint``: the c2sp.org/tlog-checkpoint the proofs are against, a signed note with the
  runner's signature and any witnesses' cosignatures; ``signed_checkpoint``: the same note
  with the runner's line only (what ``timestamp``, an RFC 3161 token, is over: its SHA-256);
* ``verifier_keys``: the signed-note verifier keys (``origin+keyid+base64``) of the keys
  trusted to write the namespace; ``keys``: those keys' trust entries (PEM, validity,
  revocation); ``witnesses`` and ``require_cosignatures``: the witness policy;
* ``leaves``: each event as stored (``record``: the Avro single-object bytes, base64), its
  leaf index and log position, and its RFC 6962 audit path (``inclusion_proof``);
* optionally ``old_checkpoint`` and ``consistency_proof``: that the checkpoint's tree extends
  an earlier one.

A leaf hash is ``SHA-256(0x00 || record)`` (Go: ``tlog.RecordHash(record)``); the audit path
and the consistency proof are what ``tlog.CheckRecord`` and ``tlog.CheckTree`` take. The
bundle's keys are its claim: an auditor pins the keys they got elsewhere (``verify-proof
--trust``), or compares the printed key ids with the published ones.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.codec import AuditCodec
from ..core.evidence import Published, checkpoint_signers, log_verifiers
from ..core.merkle import leaf_hash, verify_consistency, verify_inclusion
from ..core.note import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    Note,
    NoteError,
    Verifier,
    open_checkpoint,
    open_note,
)
from ..core.trust import Revocation, TrustedKey, TrustedWitness, TrustStore, key_id, public_pem
from ..errors import DecodeError, EvidenceError

__all__ = [
    "FORMAT",
    "ProofCheck",
    "check_bundle",
    "consistency_bundle",
    "cosigners",
    "inclusion_bundle",
    "trust_from_bundle",
    "trust_json",
]

FORMAT = "flamingock-es/proof/v1"

TokenCheck = Callable[[bytes, bytes], datetime]
"""Checks an RFC 3161 token over a digest; its genTime (raises ``TimestampInvalidError``)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def trust_json(trust: TrustStore, namespace: str) -> dict[str, Any]:
    """What a bundle says about trust: the writers' keys and the witness policy."""
    keys = []
    for entry in trust.keys.values():
        if not entry.may("write", namespace):
            continue
        keys.append({
            "key_id": entry.key_id, "principal": entry.principal,
            "public_key": public_pem(entry.public_key), "write": sorted(entry.write),
            "not_before": entry.not_before.isoformat() if entry.not_before else None,
            "not_after": entry.not_after.isoformat() if entry.not_after else None,
            "revoked": None if entry.revoked is None else {
                "reason": entry.revoked.reason, "position": entry.revoked.position,
                "at": entry.revoked.at.isoformat() if entry.revoked.at else None}})
    return {"keys": keys,
            "witnesses": [{"name": w.name, "vkey": w.vkey} for w in trust.witnesses],
            "require_cosignatures": trust.require_cosignatures}


def trust_from_bundle(bundle: dict[str, Any]) -> TrustStore:
    """The trust store a bundle claims (an auditor compares it with what they were given)."""
    keys: dict[str, TrustedKey] = {}
    try:
        for item in bundle.get("keys", []):
            public = serialization.load_pem_public_key(str(item["public_key"]).encode())
            if not isinstance(public, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            revoked = item.get("revoked")
            keys[key_id(public)] = TrustedKey(
                key_id(public), str(item["principal"]), public, frozenset(item.get("write", ())),
                frozenset(), "the bundle", _time(item.get("not_before")),
                _time(item.get("not_after")),
                None if not revoked else Revocation(str(revoked["reason"]),
                                                    revoked.get("position"),
                                                    _time(revoked.get("at"))))
        witnesses = tuple(TrustedWitness(str(w["name"]), str(w["vkey"]))
                          for w in bundle.get("witnesses", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise EvidenceError(f"the bundle's keys cannot be read: {exc}") from exc
    return TrustStore(keys, "the bundle", witnesses, int(bundle.get("require_cosignatures", 0)),
                      origin=str(bundle.get("origin", "")) or None)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _head(published: Published, trust: TrustStore, namespace: str) -> dict[str, Any]:
    checkpoint = published.checkpoint
    return {
        "format": FORMAT, "namespace": namespace, "origin": checkpoint.origin,
        "verifier_keys": [v.vkey() for v in log_verifiers(trust, checkpoint.origin, namespace)],
        "checkpoint": published.cosigned(), "signed_checkpoint": published.note,
        "checkpoint_position": published.position, "checkpoint_time": published.time,
        "timestamp": _b64(published.timestamp) if published.timestamp else None,
        **trust_json(trust, namespace)}


def inclusion_bundle(published: Published, trust: TrustStore, namespace: str,
                     leaves: Sequence[tuple[int, int, bytes, list[bytes]]]) -> dict[str, Any]:
    """A bundle proving each of ``leaves`` (index, position, record, audit path) in the tree
    of ``published``."""
    return {**_head(published, trust, namespace),
            "leaves": [{"index": index, "position": position, "record": _b64(record),
                        "inclusion_proof": [_b64(h) for h in proof]}
                       for index, position, record, proof in leaves]}


def consistency_bundle(old: Published, new: Published, trust: TrustStore, namespace: str,
                       proof: list[bytes]) -> dict[str, Any]:
    """A bundle proving that ``new``'s tree extends ``old``'s."""
    return {**_head(new, trust, namespace), "leaves": [],
            "old_checkpoint": old.cosigned(), "old_signed_checkpoint": old.note,
            "consistency_proof": [_b64(h) for h in proof]}


@dataclass
class ProofCheck:
    """What checking a bundle found: each check that held, and each that did not."""

    held: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def cosigners(note: str, witnesses: Sequence[TrustedWitness]) -> list[str]:
    """The names of ``witnesses`` whose cosignature on ``note`` verifies."""
    good = []
    for witness in witnesses:
        try:
            verifier = Verifier.from_vkey(witness.vkey)
            if verifier.alg != ALG_COSIGNATURE_V1:
                continue
            open_note(note, [verifier])
        except NoteError:
            continue
        good.append(witness.name)
    return good


def check_bundle(bundle: dict[str, Any], *, trust: TrustStore | None = None,
                 tokens: TokenCheck | None = None) -> ProofCheck:
    """Check a proof bundle with nothing but itself (and ``trust``, the keys an auditor
    pins, which then replace the bundle's own; ``tokens``, a TSA CA's check)."""
    out = ProofCheck()
    if bundle.get("format") != FORMAT:
        raise EvidenceError(f"not a flamingock-es proof bundle (format {bundle.get('format')!r}"
                            f", expected {FORMAT})")
    claimed = trust_from_bundle(bundle)
    store = trust or claimed
    namespace = str(bundle.get("namespace", ""))
    origin = str(bundle.get("origin", ""))
    verifiers = log_verifiers(store, origin, namespace)
    if not verifiers:
        out.failed.append(f"no key is trusted to write namespace {namespace!r}")
        return out
    try:
        current = open_checkpoint(str(bundle["checkpoint"]), verifiers, origin)
    except (NoteError, KeyError) as exc:
        out.failed.append(f"checkpoint: {exc}")
        return out
    out.held.append(f"checkpoint {current.origin} size {current.size} root "
                    f"{current.root_hash.hex()[:16]}... signed by a trusted key")
    when = _checkpoint_time(bundle, tokens, out)
    _check_signer(bundle, store, verifiers, namespace, when, out)
    cosigned = cosigners(str(bundle["checkpoint"]), store.witnesses)
    if cosigned or store.require_cosignatures:
        line = (f"{len(cosigned)} witness cosignature(s) ({', '.join(cosigned) or 'none'}); "
                f"the policy requires {store.require_cosignatures}")
        (out.held if len(cosigned) >= store.require_cosignatures else out.failed).append(line)
    codec = AuditCodec()
    for leaf in bundle.get("leaves", []):
        _check_leaf(leaf, current, codec, namespace, out)
    if "old_checkpoint" in bundle:
        _check_consistency(bundle, current, verifiers, origin, out)
    return out


def _checkpoint_time(bundle: dict[str, Any], tokens: TokenCheck | None,
                     out: ProofCheck) -> datetime | None:
    """When the checkpoint was signed: the RFC 3161 token's time where it verifies (trusted
    time), else the time the bundle claims."""
    claimed = _time(bundle.get("checkpoint_time"))
    token = bundle.get("timestamp")
    if not token:
        return claimed
    signed = str(bundle.get("signed_checkpoint", ""))
    try:
        same = Note.parse(signed).text == Note.parse(str(bundle["checkpoint"])).text
    except NoteError:
        same = False
    if not same:
        out.failed.append("timestamp: signed_checkpoint is not the checkpoint's note")
        return claimed
    if tokens is None:
        out.held.append("timestamp: present, not checked (give the TSA's CA: --tsa-ca)")
        return claimed
    import hashlib

    try:
        gen_time = tokens(base64.b64decode(token), hashlib.sha256(signed.encode()).digest())
    except Exception as exc:  # any refusal of the token is a failed check here
        out.failed.append(f"timestamp: {exc}")
        return claimed
    out.held.append(f"timestamp: an RFC 3161 token of {gen_time.isoformat()} over the signed "
                    "checkpoint, by the given TSA")
    return gen_time


def _check_signer(bundle: dict[str, Any], store: TrustStore, verifiers: list[Verifier],
                  namespace: str, when: datetime | None, out: ProofCheck) -> None:
    """The key that signed the checkpoint was allowed to sign it, where and when."""
    position = bundle.get("checkpoint_position")
    for entry, refused in checkpoint_signers(str(bundle["checkpoint"]), store, verifiers,
                                             position if isinstance(position, int) else None,
                                             when):
        if refused:
            out.failed.append(f"checkpoint signature: {refused}")
        else:
            out.held.append(f"checkpoint signed by key {entry.key_id} ({entry.principal}), "
                            "valid where and when it signed")


def _check_leaf(leaf: dict[str, Any], current: Checkpoint, codec: AuditCodec, namespace: str,
                out: ProofCheck) -> None:
    try:
        record = base64.b64decode(leaf["record"], validate=True)
        proof = [base64.b64decode(h, validate=True) for h in leaf["inclusion_proof"]]
        index, position = int(leaf["index"]), int(leaf["position"])
    except (KeyError, TypeError, ValueError) as exc:
        out.failed.append(f"a leaf cannot be read: {exc}")
        return
    if not verify_inclusion(leaf_hash(record), index, current.size, proof, current.root_hash):
        out.failed.append(f"leaf {index} (offset {position}): its inclusion proof does not "
                          f"give the checkpoint's root")
        return
    try:
        recorded = codec.decode(record, position)
    except DecodeError as exc:
        out.failed.append(f"leaf {index} (offset {position}) is in the tree but not an audit "
                          f"event: {exc}")
        return
    event = recorded.event
    if not recorded.intact:
        out.failed.append(f"leaf {index} (offset {position}): the event's own hash does not "
                          "hold")
    if namespace and event.namespace != namespace:
        out.failed.append(f"leaf {index}: an event of namespace {event.namespace!r}")
    out.held.append(f"leaf {index} (offset {position}, seq {event.seq}) {event.kind} is in the "
                    f"tree of size {current.size} ({len(proof)} hashes)")
    out.events.append({"index": index, "position": position, "seq": event.seq,
                       "kind": event.kind, "unit_id": getattr(event.payload, "unit_id", None),
                       "run_id": event.run_id, "time": event.time.isoformat(),
                       "principal": event.actor.principal, "host": event.actor.host,
                       "hash": event.hash.hex(), "payload": json.loads(json.dumps(
                           event.payload.to_dict(), default=str))})


def _check_consistency(bundle: dict[str, Any], current: Checkpoint, verifiers: list[Verifier],
                       origin: str, out: ProofCheck) -> None:
    try:
        old = open_checkpoint(str(bundle["old_checkpoint"]), verifiers, origin)
        proof = [base64.b64decode(h, validate=True) for h in bundle["consistency_proof"]]
    except (NoteError, KeyError, ValueError) as exc:
        out.failed.append(f"old checkpoint: {exc}")
        return
    if verify_consistency(old.size, current.size, old.root_hash, current.root_hash, proof):
        out.held.append(f"the tree of size {current.size} extends the tree of size {old.size} "
                        f"({len(proof)} hashes)")
    else:
        out.failed.append(f"the tree of size {current.size} does not extend the one of size "
                          f"{old.size}: the consistency proof fails (a fork, or a rewrite)")
