"""Signed by default: the runner's key and trust entry for a project, and their rotation.

``init`` (and ``keys init`` for an existing project) writes the runner's private key outside
the repository's tracked files (``.flamingock/keys/runner.key``, mode 0600, with a
``.gitignore`` line), its public key and trust entry in ``trust/`` (to commit and publish), and
names both in the workflow file, so the first event is signed. ``keys rotate`` gives the runner
a new key: the old entry gets ``not_after`` (what it signed before still verifies), the new
one ``not_before``. ``keys revoke`` refuses what a key signed from a position or a time on.
Both edit ``trust/trust.yaml``, the file ``init`` wrote (an inline ``trust:`` list is the
person's to edit: the commands say what to write there).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..core.trust import generate_key, load_signer
from ..errors import ConfigError
from .settings import Settings

__all__ = ["KEY_DIR", "TRUST_DIR", "revoke_key", "rotate_key", "set_up_signing"]

KEY_DIR = Path(".flamingock") / "keys"
TRUST_DIR = Path("trust")
_IGNORE = "/.flamingock/keys/"


def set_up_signing(directory: Path, namespace: str, principal: str = "runner") -> list[Path]:
    """Make the project in ``directory`` signed; returns the files written or changed."""
    workflow = directory / "flamingock.yaml"
    text = workflow.read_text() if workflow.exists() else ""
    if any(line.startswith(("signing_key:", "trust:")) for line in text.splitlines()):
        raise ConfigError(f"{workflow} already names a signing_key or a trust store; nothing "
                          "was written")
    private, public, _ = generate_key(principal, directory / KEY_DIR)
    trust = directory / TRUST_DIR
    trust.mkdir(parents=True, exist_ok=True)
    shared = trust / public.name
    shutil.move(public, shared)
    store = trust / "trust.yaml"
    if store.exists():
        raise ConfigError(f"{store} exists already; nothing more was written")
    # NAMESPACE.*: the workflow's tenants and rollouts too, once it declares tenants.
    _dump(store, [{"key": shared.name, "principal": principal,
                   "write": [namespace, f"{namespace}.*"]}])
    ignore = directory / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    if _IGNORE not in lines:
        with ignore.open("a") as out:
            out.write(("\n" if lines and lines[-1] else "") +
                      "# the runner's private key: never committed\n" + _IGNORE + "\n")
    with workflow.open("a") as out:
        out.write(("" if text.endswith("\n") or not text else "\n") +
                  "# signed by default: the runner signs every append (docs/compliance.md)\n"
                  f"signing_key: {KEY_DIR / private.name}\ntrust: {TRUST_DIR}/\n")
    return [private, shared, store, ignore, workflow]


def _store(settings: Settings) -> Path:
    if not isinstance(settings.trust, str):
        raise ConfigError("keys rotate and keys revoke edit a trust folder's trust.yaml (what "
                          "init writes); this workflow's trust store is a list inside it: edit "
                          "it there (docs/compliance.md shows the fields)")
    return Path(settings.trust) / "trust.yaml"


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, list):
        raise ConfigError(f"{path}: expected a list of trusted keys")
    return doc


def _dump(path: Path, entries: list[dict[str, Any]]) -> None:
    aside = path.with_suffix(".tmp")
    aside.write_text("# trusted keys (docs/compliance.md); keys rotate and keys revoke edit "
                     "this file\n" + yaml.safe_dump(entries, sort_keys=False))
    os.replace(aside, path)


def _now() -> str:
    """Now, to the microsecond, as a window's end or a revocation's time: cut to the second,
    it would refuse what the key signed earlier in that same second (a run just before a
    rotation), and history would stop verifying."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def rotate_key(settings: Settings) -> tuple[str, str, Path]:
    """A new runner key in place of the settings' signing key: the old trust entry ends now,
    the new one starts now. Returns the old and new key ids and the new public key file."""
    if not settings.signing_key:
        raise ConfigError("keys rotate replaces the signing key the settings name; there is "
                          "none (flamingock-es keys init makes one)")
    old = load_signer(settings.signing_key, settings.key_passphrase)
    path = _store(settings)
    entries = _load(path)
    from .trust_config import load_trust

    trust = load_trust(settings.trust, settings.base)
    entry = trust.keys.get(old.key_id) if trust is not None else None
    if entry is None:
        raise ConfigError(f"the signing key {old.key_id} is not in {path}: nothing to rotate")
    key_file = Path(settings.signing_key)
    staged = key_file.parent / f".rotating-{os.getpid()}"
    private, public, new_id = generate_key(f"{key_file.stem}-{_now()[:10]}", staged)
    shared = path.parent / f"{entry.principal}-{new_id}.pub"
    shutil.move(public, shared)
    now = _now()
    for item in entries:
        if str(path.parent / str(item.get("key"))) == entry.source or \
                Path(str(item.get("key"))).resolve() == Path(entry.source).resolve():
            item["not_after"] = now
    entries.append({"key": shared.name, "principal": entry.principal,
                    "write": sorted(entry.write), **({"request": sorted(entry.request)}
                                                     if entry.request else {}),
                    "not_before": now})
    _dump(path, entries)
    os.replace(private, key_file)  # the old private key is gone: it may sign nothing more
    staged.rmdir()
    return old.key_id, new_id, shared


def revoke_key(settings: Settings, key: str, reason: str, *, position: int | None = None,
               at: datetime | None = None) -> Path:
    """Refuse what key ``key`` (an id) signed from log ``position`` (or time ``at``, default
    now) on; what it signed before still verifies. Returns the trust file edited."""
    if not reason.strip():
        raise ConfigError("keys revoke needs a --reason: every reader shows it")
    path = _store(settings)
    entries = _load(path)
    from .trust_config import load_trust

    trust = load_trust(settings.trust, settings.base)
    entry = trust.keys.get(key) if trust is not None else None
    if entry is None:
        raise ConfigError(f"no key {key} in {path} (flamingock-es keys list shows the ids)")
    revocation: dict[str, Any] = {"reason": reason}
    if position is not None:
        revocation["position"] = position
    else:
        revocation["at"] = at.isoformat() if at is not None else _now()
    for item in entries:
        if Path(path.parent / str(item.get("key"))).resolve() == Path(entry.source).resolve():
            item["revoked"] = revocation
    _dump(path, entries)
    return path
