"""Keys and trust: who may write a namespace's audit log, and who may ask for changes.

Signatures are Ed25519 (the ``cryptography`` package). A key's id is the first 16 hex digits
of the SHA-256 of its raw 32-byte public key, so anyone can compute it from the public key.
A runner signs the last event of each append; one signature vouches for every event before it,
because each event's hash chains its predecessor. A requester signs its change request.

The trust store says which keys may do what: which principal each stands for, which
namespaces it may write, which it may request changes for. How a workflow file writes it is
:mod:`flamingock_es.definition.trust_config`'s; this module only checks signatures.

Keys rotate and can be revoked. A trusted key may have a validity window (``not_before``,
``not_after``) and a revocation (:class:`Revocation`: from a log position, or from a time,
with a reason). Each signature is judged where and when it was made: the position of the
signed event in the log, and its time (never earlier than the latest time the log showed
before it, so a thief of a key cannot date a signature into the past). History signed
before a revocation, or inside the window, still verifies; anything signed after is refused,
and the refusal names the key, the revocation and its reason. Rotating a key (a new entry,
the old one given a ``not_after``) so never breaks the verification of old history.

The store also holds the rest of what a reader trusts about a log's evidence
(docs/compliance.md): the witnesses whose cosignatures count (:class:`TrustedWitness`), how
many a head needs (``require_cosignatures``), the time-stamping authority to ask and its CA
(:class:`TimestampAuthority`), and the log's checkpoint origin.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import ConfigError, Remedy, RemedyKind

__all__ = [
    "Revocation",
    "Role",
    "Signer",
    "TimestampAuthority",
    "TrustStore",
    "TrustedKey",
    "TrustedWitness",
    "check_writer",
    "generate_key",
    "key_id",
    "load_signer",
    "principals",
    "public_pem",
]

Role = Literal["write", "request"]


def key_id(public_key: Ed25519PublicKey) -> str:
    """16 hex digits of the SHA-256 of the raw public key: short, and derived, not chosen."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    """The public key as PEM text (SubjectPublicKeyInfo), for trust stores and sharing."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class Signer:
    """A private key in use: signs audit appends (a runner) or change requests (a requester)."""

    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def load_signer(path: str | os.PathLike[str], passphrase: str | None = None) -> Signer:
    """The private key in the PEM file ``path`` (decrypted with ``passphrase``, if given)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"signing key {file}: cannot read it ({exc.strerror or exc}). "
                          "Create one with the keys command.",
                          remedies=(Remedy(RemedyKind.KEYS),)) from exc
    try:
        key = serialization.load_pem_private_key(
            data, passphrase.encode() if passphrase else None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"signing key {file}: not a readable PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key {file}: an Ed25519 key is needed, not "
                          f"{type(key).__name__}")
    return Signer(key_id(key.public_key()), key)


def generate_key(name: str, directory: Path) -> tuple[Path, Path, str]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.pub`` in ``directory``; never
    overwrite. Returns both paths and the key id."""
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    existing = [str(p) for p in (private, public) if p.exists()]
    if existing:
        raise ConfigError(f"keys generate would overwrite {', '.join(existing)}; nothing was "
                          "written")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public.write_text(public_pem(key.public_key()))
    return private, public, key_id(key.public_key())


@dataclass(frozen=True)
class Revocation:
    """A key is refused for what it signed from ``position`` on (a log position), or from
    ``at`` on (a time): one of the two, and why."""

    reason: str
    position: int | None = None
    at: datetime | None = None

    def describe(self) -> str:
        where = f"from offset {self.position}" if self.position is not None else \
            f"from {self.at.isoformat() if self.at else '?'}"
        return f"revoked {where} ({self.reason})"


@dataclass(frozen=True)
class TrustedKey:
    """One entry of the trust store: a public key, the principal it stands for, its rights,
    and when it may sign (a validity window, a revocation)."""

    key_id: str
    principal: str
    public_key: Ed25519PublicKey = field(repr=False)
    write: frozenset[str] = frozenset()
    request: frozenset[str] = frozenset()
    source: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    revoked: Revocation | None = None

    def may(self, role: Role, namespace: str) -> bool:
        """Whether this key may ``role`` in ``namespace``: named, or covered by ``*`` (any)
        or ``NS.*`` (the namespaces under ``NS``: its tenants and its rollouts)."""
        allowed = self.write if role == "write" else self.request
        return "*" in allowed or namespace in allowed or any(
            f"{parent}.*" in allowed for parent in _parents(namespace))

    def refuses(self, position: int | None, time: datetime | None) -> str | None:
        """Why a signature made at log ``position`` and ``time`` is outside what this key
        may sign (``None``: inside). Unknown position or time (a snapshot, a request): judged
        as of now, where only a revocation or an expiry already past refuses it."""
        who = f"key {self.key_id} ({self.principal})"
        when = time if time is not None else datetime.now(UTC)
        revoked = self.revoked
        if revoked is not None:
            if revoked.position is not None and (position is None or position >= revoked.position):
                return (f"{who} was {revoked.describe()}: a signature at offset "
                        f"{position if position is not None else '?'} is after it")
            if revoked.at is not None and when >= revoked.at:
                return (f"{who} was {revoked.describe()}: this signature, made "
                        f"{time.isoformat() if time else 'now'}, is after it")
        if self.not_after is not None and when > self.not_after:
            return (f"{who} may sign only until {self.not_after.isoformat()} (it was rotated or "
                    f"expired); this signature was made {time.isoformat() if time else 'now'}")
        if self.not_before is not None and time is not None and time < self.not_before:
            return (f"{who} may sign only from {self.not_before.isoformat()}; this signature "
                    f"claims {time.isoformat()}")
        return None


@dataclass(frozen=True)
class TrustedWitness:
    """A witness whose cosignatures count: its c2sp.org/signed-note verifier key (type 0x04,
    ``NAME+KEYID+BASE64``), and where runners submit checkpoints to it (``url``: its
    tlog-witness submission prefix; empty for a witness a reader only checks)."""

    name: str
    vkey: str
    url: str = ""


@dataclass(frozen=True)
class TimestampAuthority:
    """An RFC 3161 time-stamping authority: where to ask (``url``: empty for one a reader
    only checks) and the CA certificate(s) its tokens are checked against (a PEM file)."""

    url: str
    ca: Path


@dataclass(frozen=True)
class TrustStore:
    """The keys a namespace's readers and runners trust, by id, and what else they trust
    about its evidence: witnesses, how many cosignatures a head needs, a TSA, an origin."""

    keys: Mapping[str, TrustedKey]
    source: str = ""
    witnesses: tuple[TrustedWitness, ...] = ()
    require_cosignatures: int = 0
    """How many of ``witnesses`` must have cosigned the latest checkpoint for ``verify`` to
    accept the log's head."""
    timestamp_authority: TimestampAuthority | None = None
    origin: str | None = None
    """The log's checkpoint origin line (default: ``flamingock-es/NAMESPACE``)."""

    def check(self, key: str | None, signature: bytes | None, message: bytes, *,
              namespace: str, role: Role, position: int | None = None,
              time: datetime | None = None) -> str | None:
        """``None`` if ``signature`` of ``message`` is by a key trusted for ``role`` in
        ``namespace``, made at log ``position`` and ``time`` inside what the key may sign;
        otherwise why not, in words for a report."""
        if signature is None:
            return "unsigned"
        entry = self.keys.get(key or "")
        if entry is None:
            return f"signed by unknown key {key} (not in the trust store {self.source})"
        if not entry.may(role, namespace):
            return (f"key {key} ({entry.principal}) may not {role} namespace {namespace!r} "
                    f"per the trust store {self.source}")
        try:
            entry.public_key.verify(signature, message)
        except InvalidSignature:
            return f"bad signature: it does not verify with key {key} ({entry.principal})"
        return entry.refuses(position, time)

    def principal(self, key: str | None) -> str | None:
        entry = self.keys.get(key or "")
        return entry.principal if entry is not None else None


def principals(store: TrustStore, role: Role, namespace: str) -> Iterable[TrustedKey]:
    """The keys trusted for ``role`` in ``namespace``."""
    return (k for k in store.keys.values() if k.may(role, namespace))


def check_writer(trust: TrustStore | None, signer: Signer | None, namespace: str) -> None:
    """Refuse a runner that would append history every reader refuses: with a trust store,
    a runner signs, with a key the store trusts to write ``namespace``."""
    if trust is None:
        return
    if signer is None:
        raise ConfigError(
            f"namespace {namespace!r} has a trust store ({trust.source}): its runners sign what "
            "they append. Set signing_key in the workflow file or FLAMINGOCK_SIGNING_KEY.",
            remedies=(Remedy(RemedyKind.KEYS),))
    entry = trust.keys.get(signer.key_id)
    refused = entry.refuses(None, None) if entry is not None else None
    if refused is not None:
        raise ConfigError(
            f"the signing key {signer.key_id} may not sign any more: {refused}. Sign with its "
            "successor (`flamingock-es keys rotate` makes one).",
            remedies=(Remedy(RemedyKind.KEYS),))
    if entry is None or not entry.may("write", namespace):
        raise ConfigError(
            f"the signing key {signer.key_id} may not write namespace {namespace!r} per the "
            f"trust store {trust.source}: add its public key there with write: "
            f"[{_covering(namespace)}] (the keys command exports it).")


def _parents(namespace: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the namespaces a ``NS.*`` entry may name for it."""
    parts = namespace.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _covering(namespace: str) -> str:
    """What a trust entry's ``write`` needs for ``namespace``: a tenant's or a rollout's
    (``shop.acme``, ``shop._rollouts``) is best covered with its workflow's ``shop.*``."""
    parent = _parents(namespace)
    return f'"{parent[0]}.*"' if parent else namespace
