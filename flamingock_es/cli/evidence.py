"""Evidence an outsider checks with their own tools: ``checkpoint``, ``prove``, ``verify-proof``
and ``evidence`` (docs/compliance.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import api
from ..definition.trust_config import load_trust
from ..errors import ConfigError, EvidenceError
from .output import jsonable, parse_time, print_json, settings

if TYPE_CHECKING:
    from ..audit.proofs import ProofCheck

__all__ = ["register"]


def _write(text: str | bytes, output: str | None, what: str, quiet: bool) -> None:
    if output and output != "-":
        data = text.encode() if isinstance(text, str) else text
        Path(output).write_bytes(data)
        if not quiet:
            print(f"{output}: {what}", file=sys.stderr)
    elif isinstance(text, bytes):
        sys.stdout.buffer.write(text)
    else:
        sys.stdout.write(text)


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """Sign a C2SP checkpoint of the log's tree now and publish it beside the log.

    Prints the signed note (c2sp.org/tlog-checkpoint: origin, tree size, root hash, then the
    runner's signature and any witnesses' cosignatures): keep it where the log's writers
    cannot change it; `verify --checkpoint FILE` later proves the log still holds it. Runners
    publish one at the end of every run; this one also asks the witnesses and the TSA again.
    --json: the published record, with the latest signed event's position and hash."""
    published = api.checkpoint(settings(args))
    if args.json:
        point = api.signed_event(settings(args))
        record = json.loads(published.to_bytes())
        _write(json.dumps({**json.loads(point.to_json()), **record,
                           "size": published.size, "cosigned": published.cosigned()},
                          indent=2) + "\n", args.output, "the checkpoint, as JSON", args.quiet)
        return 0
    _write(published.cosigned(), args.output, f"checkpoint of tree size {published.size}",
           args.quiet)
    return 0


def cmd_prove(args: argparse.Namespace) -> int:
    """Write an offline proof bundle: the event(s), their inclusion proofs, the checkpoint.

    UNIT proves the event that set the unit's status (--all: each of its events); --run a
    run's events; --position one record. The proofs are against the latest published
    checkpoint; the bundle holds the public keys, and `verify-proof` checks it with nothing
    else (so does Go's sumdb/tlog). --consistency OLD NEW proves instead that the checkpoint
    of tree size NEW extends OLD's (sizes, or files `checkpoint --json` wrote)."""
    s = settings(args)
    if args.consistency:
        bundle = api.prove_consistency(s, args.consistency[0], args.consistency[1])
        what = "a consistency proof"
    else:
        bundle = api.prove(s, unit=args.unit, run_id=args.run, position=args.position,
                           every=args.all)
        what = f"{len(bundle['leaves'])} event(s) with their inclusion proofs"
    _write(json.dumps(bundle, indent=1) + "\n", args.output, what, args.quiet)
    return 0


def _pinned(args: argparse.Namespace) -> Any:
    if not args.trust:
        return None
    path = Path(args.trust)
    spec = str(path) if path.is_dir() else None
    if spec is None:  # a trust.yaml file: its folder, read as a trust folder
        if path.name != "trust.yaml":
            raise ConfigError(f"--trust {path}: give a trust folder (with a trust.yaml) or its "
                              "trust.yaml")
        spec = str(path.parent)
    return load_trust(spec, Path.cwd())


def cmd_verify_proof(args: argparse.Namespace) -> int:
    """Check a proof bundle (`prove`) or an evidence file (`evidence`) with nothing else.

    No log and no workflow file: the checkpoint's signature by a key valid where and when it
    signed, the witness cosignatures against the policy, the time-stamp (with --tsa-ca, or
    the evidence file's own CA), each event's inclusion proof and each consistency proof.
    --trust pins the keys you were given (a trust folder) instead of the bundle's own.
    Exit 0 when everything holds, 4 when anything does not."""
    data = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
    trust = _pinned(args)
    if data[:2] == b"PK":
        result = api.verify_evidence(data, trust=trust, tsa_ca=args.tsa_ca)
    else:
        try:
            bundle = json.loads(data)
        except ValueError as exc:
            raise EvidenceError(f"{args.file}: neither a proof bundle (JSON) nor an evidence "
                                f"file (zip): {exc}") from exc
        result = api.verify_proof(bundle, trust=trust, tsa_ca=args.tsa_ca)
    return _report(result, args)


def _report(result: ProofCheck, args: argparse.Namespace) -> int:
    if args.json:
        print_json({"ok": result.ok, "held": result.held, "failed": result.failed,
                    "events": jsonable(result.events)})
        return 0 if result.ok else 4
    for line in result.held:
        print(f"ok   {line}")
    for line in result.failed:
        print(f"FAIL {line}")
    print("proof holds" if result.ok else f"{len(result.failed)} check(s) failed")
    return 0 if result.ok else 4


def cmd_evidence(args: argparse.Namespace) -> int:
    """Write one file for an auditor: events, checkpoints, proofs, keys and the report.

    A zip archive: every event since --since with its inclusion proof, the checkpoints of
    the range with cosignatures, time-stamps and consistency proofs between them, the public
    keys, the TSA's CA and the HTML report; `verify-proof FILE` checks it offline from itself
    alone, and its README.txt says how to with openssl and Go's tlog (docs/compliance.md)."""
    name = Path(args.output).name
    data = api.evidence(settings(args), since=parse_time(args.since), name=name)
    _write(data, args.output, "evidence file", args.quiet)
    return 0


def register(add: Any) -> None:
    """Add the evidence commands through ``add(name, handler) -> parser``."""
    p = add("checkpoint", cmd_checkpoint)
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p = add("prove", cmd_prove)
    p.add_argument("unit", nargs="?", help="a unit id: the event that set its status")
    p.add_argument("--all", action="store_true", help="with a unit: each of its events")
    p.add_argument("--run", metavar="RUN_ID", help="the events of this run")
    p.add_argument("--position", type=int, metavar="OFFSET", help="the record at this offset")
    p.add_argument("--consistency", nargs=2, metavar=("OLD", "NEW"),
                   help="prove that checkpoint NEW extends OLD (tree sizes, or files)")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p = add("verify-proof", cmd_verify_proof)
    p.add_argument("file", help="a proof bundle or an evidence file ('-': stdin)")
    p.add_argument("--trust", metavar="FOLDER",
                   help="the trust folder you were given: pins the keys instead of the "
                        "bundle's own")
    p.add_argument("--tsa-ca", metavar="PEM", help="the TSA's CA certificate, to check the "
                                                   "time-stamp tokens")
    p = add("evidence", cmd_evidence)
    p.add_argument("--since", help="ISO time: events from then on (default: all)")
    p.add_argument("--output", "-o", required=True, help="the file to write (a zip archive)")
