"""``keys``: create signing keys, list the trust store, export a public key to share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..core.trust import generate_key, key_id, load_signer, public_pem
from ..definition.signing import revoke_key, rotate_key, set_up_signing
from ..errors import ConfigError
from ..namespace import signer_of, trust_of
from .output import parse_time, print_json, settings, table

__all__ = ["register"]


def cmd_keys(args: argparse.Namespace) -> int:
    """Signing keys: `init`, `generate NAME`, `list`, `export [FILE]`, `rotate`, `revoke ID`.

    init makes an existing project signed (what `init` does for a new one); rotate gives the
    runner a new key (the old one's trust entry ends now: what it signed still verifies);
    revoke refuses what a key signed from --position OFFSET (or --at TIME, default now) on,
    with a --reason that every reader shows."""
    if args.action == "init":
        s = settings(args)
        for path in set_up_signing(s.base, s.namespace):
            print(f"wrote {path}")
        return 0
    if args.action == "rotate":
        old, new, public = rotate_key(settings(args))
        print(f"rotated: key {old} signs no more (its trust entry ends now; what it signed "
              f"still verifies); key {new} signs from now on\ncreated {public} (publish it)")
        return 0
    if args.action == "revoke":
        if not args.name:
            raise ConfigError("keys revoke needs a key id (flamingock-es keys list shows them)")
        path = revoke_key(settings(args), args.name, args.reason or "",
                          position=args.position, at=parse_time(args.at, "--at"))
        print(f"revoked key {args.name} in {path}: what it signed "
              f"{'from offset ' + str(args.position) if args.position is not None else 'from then'}"
              " on is refused and named by every reader")
        return 0
    if args.action == "generate":
        return _generate(args)
    if args.action == "list":
        return _list(args)
    return _export(args)


def _generate(args: argparse.Namespace) -> int:
    if not args.name:
        raise ConfigError("keys generate needs a NAME, e.g. `flamingock-es keys generate "
                          "runner-prod`")
    private, public, ident = generate_key(args.name, Path(args.dir))
    ns = settings(args).namespace
    print(f"created {private} (the private key: keep it secret; readable by you only)")
    print(f"created {public} (the public key: share it)")
    print(f"key id {ident}\n\nto trust it, add to flamingock.yaml (write: a runner; request: "
          "a requester):\n"
          f"  trust:\n    - key: {public}\n      principal: {args.name}\n      write: [{ns}]\n"
          f"and, on the machine that signs with it: signing_key: {private}")
    return 0


def _list(args: argparse.Namespace) -> int:
    s = settings(args)
    store = trust_of(s)
    entries = sorted(store.keys.values(), key=lambda k: k.principal) if store else []
    if args.json:
        print_json([{"key_id": k.key_id, "principal": k.principal, "write": sorted(k.write),
                     "request": sorted(k.request), "key": k.source,
                     "not_before": k.not_before, "not_after": k.not_after,
                     "revoked": k.revoked} for k in entries])
        return 0
    if store is None:
        print("no trust store: signatures are not checked (see docs/compliance.md)")
    else:
        print(f"trust store {store.source}:")
        table([("key id", "principal", "write", "request", "public key"),
               *((k.key_id, k.principal, ",".join(sorted(k.write)) or "-",
                  ",".join(sorted(k.request)) or "-", k.source) for k in entries)],
              indent="  ")
    if s.signing_key:
        signer = signer_of(s)
        print(f"this runner signs with {s.signing_key} (key id "
              f"{signer.key_id if signer else '?'})")
    return 0


def _export(args: argparse.Namespace) -> int:
    path = args.name or settings(args).signing_key
    if not path:
        raise ConfigError("keys export needs a key file, or a signing_key in the settings")
    data = Path(path).read_bytes() if Path(path).exists() else b""
    if b"PRIVATE KEY" in data:
        public = load_signer(path, settings(args).key_passphrase).public_key
    else:
        try:
            loaded = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(f"{path}: not a PEM key file ({exc})") from exc
        if not isinstance(loaded, Ed25519PublicKey):
            raise ConfigError(f"{path}: not an Ed25519 key")
        public = loaded
    print(f"# key id {key_id(public)}")
    print(public_pem(public), end="")
    return 0


def register(add: Any) -> None:
    p = add("keys", cmd_keys)
    p.add_argument("action", choices=["init", "generate", "list", "export", "rotate", "revoke"])
    p.add_argument("name", nargs="?", help="generate: the key's name; export: a key file "
                                           "(default: the signing key in the settings)")
    p.add_argument("--dir", default="keys", help="generate: where to write the key files "
                                                 "(default: ./keys)")
    p.add_argument("--reason", help="revoke: why (every reader shows it)")
    p.add_argument("--position", type=int, metavar="OFFSET",
                   help="revoke: refuse what it signed from this log offset on")
    p.add_argument("--at", metavar="TIME", help="revoke: refuse what it signed from this "
                                                "time on (ISO; default: now)")
