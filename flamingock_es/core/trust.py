"""Keys and trust: who may write a namespace's audit log, and who may ask for changes.

Signatures are Ed25519 (the ``cryptography`` package). A key's id is the first 16 hex digits
of the SHA-256 of its raw 32-byte public key, so anyone can compute it from the public key.
A runner signs the last event of each append; one signature vouches for every event before it,
because each event's hash chains its predecessor. A requester signs its change request.

The trust store says which keys may do what, in ``flamingock.yaml``::

    signing_key: keys/runner.key          # this runner's private key (or FLAMINGOCK_SIGNING_KEY)
    trust:
      - key: keys/runner.pub              # a public key file (PEM)
        principal: runner@prod            # the name the audit shows for it
        write: [shop]                     # namespaces it may append to ("*": any)
      - key: keys/alice.pub
        principal: alice
        request: [shop]                   # namespaces it may request changes for

or ``trust: trust/`` for a folder holding a ``trust.yaml`` of the same list (and the keys).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..definition.settings import Settings
from ..definition.yamlfile import Located, load_document
from ..errors import ConfigError

__all__ = [
    "Role",
    "Signer",
    "TrustStore",
    "TrustedKey",
    "generate_key",
    "key_id",
    "load_signer",
    "load_trust",
    "public_pem",
    "signer_of",
    "trust_of",
    "writer_for",
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


def load_signer(path: str | os.PathLike[str]) -> Signer:
    """The private key in the PEM file ``path`` (``FLAMINGOCK_KEY_PASSPHRASE`` if encrypted)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"signing key {file}: cannot read it ({exc.strerror or exc}). "
                          "Create one with `flamingock-es keys generate NAME`.") from exc
    passphrase = os.environ.get("FLAMINGOCK_KEY_PASSPHRASE")
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
class TrustedKey:
    """One entry of the trust store: a public key, the principal it stands for, its rights."""

    key_id: str
    principal: str
    public_key: Ed25519PublicKey = field(repr=False)
    write: frozenset[str] = frozenset()
    request: frozenset[str] = frozenset()
    source: str = ""

    def may(self, role: Role, namespace: str) -> bool:
        allowed = self.write if role == "write" else self.request
        return "*" in allowed or namespace in allowed


@dataclass(frozen=True)
class TrustStore:
    """The keys a namespace's readers and runners trust, by id."""

    keys: Mapping[str, TrustedKey]
    source: str = ""

    def check(self, key: str | None, signature: bytes | None, message: bytes, *,
              namespace: str, role: Role) -> str | None:
        """``None`` if ``signature`` of ``message`` is by a key trusted for ``role`` in
        ``namespace``; otherwise why not, in words for a report."""
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
        return None

    def principal(self, key: str | None) -> str | None:
        entry = self.keys.get(key or "")
        return entry.principal if entry is not None else None


def load_trust(spec: str | Sequence[Mapping[str, Any]] | None, base: Path) -> TrustStore | None:
    """The trust store a ``trust:`` setting describes (relative paths from ``base``)."""
    if spec is None:
        return None
    where = str(base)
    if isinstance(spec, str):
        folder = base / spec
        doc = load_document(folder / "trust.yaml")
        if not isinstance(doc, list):
            raise ConfigError(f"{folder / 'trust.yaml'}: expected a list of trusted keys")
        spec, base, where = doc, folder, str(folder / "trust.yaml")
    keys: dict[str, TrustedKey] = {}
    for item in spec:
        entry = _entry(item, base, where)
        keys[entry.key_id] = entry
    return TrustStore(keys, where)


def _entry(item: Any, base: Path, where: str) -> TrustedKey:
    at = item.where() if isinstance(item, Located) else where
    if not isinstance(item, Mapping) or "key" not in item or "principal" not in item:
        raise ConfigError(f"{at}: a trusted key needs key (a public key file) and principal")
    unknown = set(item) - {"key", "principal", "write", "request"}
    if unknown:
        raise ConfigError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}; expected key, "
                          "principal, write, request")
    path = base / str(item["key"])
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{at}: cannot read the public key {path} ({exc})") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError(f"{at}: {path} is not an Ed25519 public key")
    return TrustedKey(key_id(public), str(item["principal"]), public,
                      _names(item.get("write", ())), _names(item.get("request", ())),
                      str(path))


def _names(value: Any) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else [str(v) for v in value])


def principals(store: TrustStore, role: Role, namespace: str) -> Iterable[TrustedKey]:
    """The keys trusted for ``role`` in ``namespace``."""
    return (k for k in store.keys.values() if k.may(role, namespace))


def trust_of(settings: Settings) -> TrustStore | None:
    """The trust store ``settings`` name, loaded; ``None`` when there is none."""
    return load_trust(settings.trust, settings.base)


def signer_of(settings: Settings) -> Signer | None:
    """The signing key ``settings`` name, loaded; ``None`` when there is none."""
    return load_signer(settings.signing_key) if settings.signing_key else None


def writer_for(settings: Settings) -> tuple[TrustStore | None, Signer | None]:
    """The trust store and signing key of a runner that writes ``settings``' namespace.

    With a trust store, a runner must sign, with a key the store trusts to write there:
    anything else would append history that every reader refuses.
    """
    trust, signer = trust_of(settings), signer_of(settings)
    if trust is None:
        return None, signer
    if signer is None:
        raise ConfigError(
            f"namespace {settings.namespace!r} has a trust store ({trust.source}): its runners "
            "sign what they append. Set signing_key in the workflow file or "
            "FLAMINGOCK_SIGNING_KEY (create a key with `flamingock-es keys generate NAME`).")
    entry = trust.keys.get(signer.key_id)
    if entry is None or not entry.may("write", settings.namespace):
        raise ConfigError(
            f"the signing key {signer.key_id} may not write namespace {settings.namespace!r} "
            f"per the trust store {trust.source}: add its public key there with write: "
            f"[{settings.namespace}] (`flamingock-es keys export` prints it).")
    return trust, signer
