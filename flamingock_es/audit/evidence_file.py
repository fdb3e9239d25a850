"""One file for the auditor: events, checkpoints, cosignatures, time-stamps, proofs, keys and
the HTML report, in a zip archive that is checked offline from itself alone.

Layout (every name fixed, so a person or a script finds each piece)::

    README.txt                   how to check it, step by step (docs/compliance.md)
    manifest.json                namespace, origin, range, what each file is
    proof.json                   every event of the range with its inclusion proof in the
                                 latest checkpoint (a proof bundle: verify-proof, tlog-verify)
    consistency/OLD-NEW.json     that each checkpoint of the range extends the one before it
    checkpoints/SIZE.note        the checkpoint as its runner signed it (what a token is over)
    checkpoints/SIZE.cosigned.note   the same with the witnesses' cosignatures
    checkpoints/SIZE.tsr         its RFC 3161 token (openssl ts -verify -data SIZE.note ...)
    keys/trust.json, keys/KEYID.pub, keys/vkeys.txt   the public keys and the witness policy
    tsa/ca.pem                   the TSA's CA certificate, when one is configured
    report.html                  the compliance report of the range
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import EvidenceError
from .proofs import FORMAT, ProofCheck, check_bundle

__all__ = ["README", "check_evidence", "write_evidence"]

README = """\
Evidence of the audit log of namespace {namespace} (origin {origin}), {since}, made {made}.

Check it offline, with this file alone (and, to be sure the keys are the right ones, the
public keys and witness keys you were given by other means):

  1. flamingock-es verify-proof {name} [--trust YOUR-TRUST-FOLDER] [--tsa-ca YOUR-TSA-CA.pem]
     checks every checkpoint's signature (and each key's validity where and when it signed),
     the witness cosignatures against the policy, the time-stamps, every event's inclusion
     proof and every consistency proof. Exit 0: everything holds.
  2. With your own tools: unzip it, then
       openssl ts -verify -data checkpoints/SIZE.note -in checkpoints/SIZE.tsr \\
           -CAfile tsa/ca.pem
     proves when each checkpoint existed; proof.json and consistency/*.json are read by any
     RFC 6962 verifier (Go: golang.org/x/mod/sumdb/tlog CheckRecord and CheckTree, with the
     leaf hash tlog.RecordHash(record)) and the notes by any c2sp.org/signed-note verifier
     (golang.org/x/mod/sumdb/note, with the keys in keys/vkeys.txt).
  3. Read report.html: every run and change step of the range, who, when, what.

Compare the key ids in keys/trust.json with the ones your organisation published.
"""


def write_evidence(*, namespace: str, origin: str, since: datetime | None,
                   proof: dict[str, Any], consistency: list[dict[str, Any]],
                   checkpoints: list[Mapping[str, Any]], report_html: str,
                   tsa_ca: bytes | None, name: str) -> bytes:
    """The zip archive's bytes. ``checkpoints``: each published checkpoint of the range as
    ``{"size", "note", "cosigned", "timestamp", "record"}``."""
    out = io.BytesIO()
    made = datetime.now(UTC).isoformat(timespec="seconds")
    files: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        def put(path: str, data: bytes | str, what: str) -> None:
            archive.writestr(path, data)
            files[path] = what

        put("proof.json", json.dumps(proof, indent=1), "events with inclusion proofs")
        for bundle in consistency:
            old = bundle["old_signed_checkpoint"].split("\n")[1]
            new = bundle["signed_checkpoint"].split("\n")[1]
            put(f"consistency/{old}-{new}.json", json.dumps(bundle, indent=1),
                f"the tree of size {new} extends the one of size {old}")
        for cp in checkpoints:
            size = cp["size"]
            put(f"checkpoints/{size}.note", cp["note"], "as the runner signed it")
            put(f"checkpoints/{size}.cosigned.note", cp["cosigned"], "with cosignatures")
            put(f"checkpoints/{size}.json", cp["record"], "as published beside the log")
            if cp["timestamp"]:
                put(f"checkpoints/{size}.tsr", cp["timestamp"], "RFC 3161 token over .note")
        trust = {k: proof[k] for k in ("keys", "witnesses", "require_cosignatures")}
        put("keys/trust.json", json.dumps(trust, indent=1), "keys and witness policy")
        for key in proof["keys"]:
            put(f"keys/{key['key_id']}.pub", key["public_key"], f"{key['principal']}'s key")
        put("keys/vkeys.txt", "".join(v + "\n" for v in proof["verifier_keys"]) +
            "".join(w["vkey"] + "\n" for w in proof["witnesses"]), "signed-note keys")
        if tsa_ca:
            put("tsa/ca.pem", tsa_ca, "the TSA's CA certificate")
        put("report.html", report_html, "the compliance report")
        since_text = f"events since {since.isoformat()}" if since else "every event"
        put("README.txt", README.format(namespace=namespace, origin=origin, since=since_text,
                                        made=made, name=name), "how to check it")
        archive.writestr("manifest.json", json.dumps({
            "format": "flamingock-es/evidence/v1", "namespace": namespace, "origin": origin,
            "since": since.isoformat() if since else None, "made": made, "files": files},
            indent=1))
    return out.getvalue()


def check_evidence(data: bytes, *, trust: Any = None,
                   tokens: Callable[[bytes, bytes], datetime] | None = None,
                   ca_check: Callable[[bytes], Callable[[bytes, bytes], datetime]] | None = None
                   ) -> ProofCheck:
    """Check an evidence archive from itself: its proof bundle, every consistency bundle, and
    (with the archive's TSA CA, unless ``tokens`` is given) every checkpoint's token."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        proof = json.loads(archive.read("proof.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise EvidenceError(f"not a flamingock-es evidence file: {exc}") from exc
    if tokens is None and ca_check is not None and "tsa/ca.pem" in names:
        tokens = ca_check(archive.read("tsa/ca.pem"))
    result = check_bundle(proof, trust=trust, tokens=tokens)
    for name in sorted(n for n in names if n.startswith("consistency/")):
        sub = check_bundle(json.loads(archive.read(name)), trust=trust, tokens=tokens)
        result.held += [f"{name}: {line}" for line in sub.held if "extends" in line]
        result.failed += [f"{name}: {line}" for line in sub.failed]
    for name in sorted(n for n in names if n.endswith(".tsr")):
        note = name.removesuffix(".tsr") + ".note"
        if tokens is None:
            result.held.append(f"{name}: not checked (no TSA CA)")
            continue
        import hashlib

        try:
            when = tokens(archive.read(name), hashlib.sha256(archive.read(note)).digest())
        except Exception as exc:  # a token that does not verify is a finding
            result.failed.append(f"{name}: {exc}")
            continue
        result.held.append(f"{name}: time-stamped {when.isoformat()} over {note}")
    if proof.get("format") != FORMAT:
        result.failed.append("proof.json is not a proof bundle")
    return result
