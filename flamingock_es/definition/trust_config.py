"""The trust store as a workflow file writes it: a list of trusted keys, or a folder with a
``trust.yaml`` of the same list (see :mod:`flamingock_es.core.trust` for what it means)::

    trust:
      - key: keys/runner.pub              # a public key file (PEM)
        principal: runner@prod            # the name the audit shows for it
        write: [shop]                     # namespaces it may append to ("*": any)
      - key: keys/alice.pub
        principal: alice
        request: [shop]                   # namespaces it may request changes for

A key may carry a validity window and a revocation (judged by where and when each signature
was made; see :mod:`flamingock_es.core.trust`)::

      - key: keys/runner-2025.pub
        principal: runner@prod
        write: [shop]
        not_after: 2026-03-01T00:00:00Z   # rotated: its successor signs from then on
        revoked: {position: 48211, reason: "laptop stolen"}   # or {at: TIME, reason: ...}

and the other entries say what else a reader trusts about the log's evidence
(docs/compliance.md)::

      - witness: witness.example/w1+1a2b3c4d+BASE64    # a c2sp.org/signed-note vkey (0x04)
        url: https://witness.example/w1                # where runners submit checkpoints
      - require_cosignatures: 1                        # witnesses a head needs for verify
      - timestamp_authority: http://tsa.example/       # RFC 3161, asked after each checkpoint
        ca: tsa/ca.pem                                 # the CA its tokens are checked against
      - origin: example.com/flamingock/shop            # the checkpoints' origin line
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.trust import (
    Revocation,
    TimestampAuthority,
    TrustedKey,
    TrustedWitness,
    TrustStore,
    key_id,
)
from ..errors import ConfigError
from .yamlfile import Located, load_document

__all__ = ["load_trust"]


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
    witnesses: list[TrustedWitness] = []
    required, tsa, origin = 0, None, None
    for item in spec:
        at = item.where() if isinstance(item, Located) else where
        if isinstance(item, Mapping) and "witness" in item:
            witnesses.append(_witness(item, at))
        elif isinstance(item, Mapping) and "require_cosignatures" in item:
            _only(item, {"require_cosignatures"}, at)
            required = _count(item["require_cosignatures"], at)
        elif isinstance(item, Mapping) and "timestamp_authority" in item:
            _only(item, {"timestamp_authority", "ca"}, at)
            if "ca" not in item:
                raise ConfigError(f"{at}: a timestamp_authority needs ca (its CA certificate)")
            tsa = TimestampAuthority(str(item["timestamp_authority"] or ""), base / str(item["ca"]))
        elif isinstance(item, Mapping) and "origin" in item:
            _only(item, {"origin"}, at)
            origin = str(item["origin"])
        else:
            entry = _entry(item, base, at)
            keys[entry.key_id] = entry
    if required > len(witnesses):
        raise ConfigError(f"{where}: require_cosignatures is {required}, but only "
                          f"{len(witnesses)} witness(es) are trusted")
    return TrustStore(keys, where, tuple(witnesses), required, tsa, origin)


def _only(item: Mapping[str, Any], allowed: set[str], at: str) -> None:
    unknown = set(item) - allowed
    if unknown:
        raise ConfigError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}; expected "
                          f"{', '.join(sorted(allowed))}")


def _count(value: Any, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{at}: require_cosignatures is a number of witnesses, not {value!r}")
    return value


def _witness(item: Mapping[str, Any], at: str) -> TrustedWitness:
    from ..core.note import ALG_COSIGNATURE_V1, NoteError, Verifier

    _only(item, {"witness", "url"}, at)
    vkey = str(item["witness"])
    try:
        verifier = Verifier.from_vkey(vkey)
    except NoteError as exc:
        raise ConfigError(f"{at}: witness {vkey!r} is not a signed-note verifier key ({exc})"
                          ) from exc
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise ConfigError(f"{at}: witness {vkey!r} is not a cosignature key (type 0x04, "
                          "c2sp.org/tlog-cosignature): a witness's vkey has that type")
    return TrustedWitness(verifier.name, vkey, str(item.get("url") or ""))


def _time(value: Any, at: str, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day)
    else:
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise ConfigError(f"{at}: {name} {value!r} is not an ISO time, e.g. "
                              "2026-03-01T00:00:00Z") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _revocation(value: Any, at: str) -> Revocation | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or "reason" not in value or \
            ("position" in value) == ("at" in value):
        raise ConfigError(f"{at}: revoked is {{position: OFFSET, reason: ...}} or "
                          "{at: TIME, reason: ...}: one of position and at, and a reason")
    _only(value, {"position", "at", "reason"}, at)
    position = value.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)
                                 or position < 0):
        raise ConfigError(f"{at}: revoked position is a log offset, not {position!r}")
    return Revocation(str(value["reason"]), position, _time(value.get("at"), at, "revoked at"))


def _entry(item: Any, base: Path, at: str) -> TrustedKey:
    if not isinstance(item, Mapping) or "key" not in item or "principal" not in item:
        raise ConfigError(f"{at}: a trusted key needs key (a public key file) and principal "
                          "(or the entry is a witness, require_cosignatures, "
                          "timestamp_authority or origin)")
    unknown = set(item) - {"key", "principal", "write", "request", "not_before", "not_after",
                           "revoked"}
    if unknown:
        raise ConfigError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}; expected key, "
                          "principal, write, request, not_before, not_after, revoked")
    path = base / str(item["key"])
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{at}: cannot read the public key {path} ({exc})") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError(f"{at}: {path} is not an Ed25519 public key")
    return TrustedKey(key_id(public), str(item["principal"]), public,
                      _names(item.get("write", ())), _names(item.get("request", ())),
                      str(path), _time(item.get("not_before"), at, "not_before"),
                      _time(item.get("not_after"), at, "not_after"),
                      _revocation(item.get("revoked"), at))


def _names(value: Any) -> frozenset[str]:
    return frozenset([value] if isinstance(value, str) else [str(v) for v in value])
