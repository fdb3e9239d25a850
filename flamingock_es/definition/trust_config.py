"""The trust store as a workflow file writes it: a list of trusted keys, or a folder with a
``trust.yaml`` of the same list (see :mod:`flamingock_es.core.trust` for what it means)::

    trust:
      - key: keys/runner.pub              # a public key file (PEM)
        principal: runner@prod            # the name the audit shows for it
        write: [shop]                     # namespaces it may append to ("*": any)
      - key: keys/alice.pub
        principal: alice
        request: [shop]                   # namespaces it may request changes for
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.trust import TrustedKey, TrustStore, key_id
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
