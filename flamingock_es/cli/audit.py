"""The compliance flow's commands: ``history``, ``verify`` and ``replay`` read the log only
(no unit code is imported; a namespace that was never written is an error); ``quarantine``
and ``vouch`` record an operator's decision about records the readers refuse."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import api
from ..audit import FORMATS, Checkpoint, ReplayReport, parse_head, render
from ..core.events import RunStarted
from ..core.state import Finding
from .output import jsonable, parse_time, print_json, reason, settings, table

if TYPE_CHECKING:
    from ..core.evidence import Published

__all__ = ["register"]


def cmd_history(args: argparse.Namespace) -> int:
    """List audit events, oldest first; filter by unit, run or time."""
    entries = api.history(settings(args), unit=args.unit, run_id=args.run,
                          since=parse_time(args.since), until=parse_time(args.until, "--until"))
    if args.json:
        print_json([{**jsonable(e.event), "position": e.position, "verified": e.verified,
                     "quarantined": e.quarantined} for e in entries])
        return 0
    rows = []
    for entry in entries:
        event, payload = entry.event, entry.event.payload
        extra = next((f"{name}={value}" for name in ("outcome", "error", "reason", "holder")
                      if (value := getattr(payload, name, None))), "")
        if isinstance(payload, RunStarted) and payload.requester is not None:
            extra = f"requested by {payload.requester.principal}: {payload.requester.reason}"
        marker = "QUARANTINED" if entry.quarantined else "" if entry.verified else "UNVERIFIED"
        rows.append((str(event.seq), f"{event.time:%Y-%m-%d %H:%M:%S}", event.kind,
                     getattr(payload, "unit_id", None) or "", f"run={event.run_id}",
                     f"by={event.actor.principal}@{event.actor.host}", marker, extra))
    table(rows)
    if any(not e.verified for e in entries):
        print("UNVERIFIED: at or after a record the readers refuse (`verify` names each); "
              "QUARANTINED: excluded by an operator's decision", file=sys.stderr)
    return 0


def _expected(args: argparse.Namespace) -> list[Checkpoint]:
    expected = [Checkpoint.from_json(text, path) for path, text in _checkpoint_files(args)
                if text.lstrip().startswith("{")]
    return expected + [parse_head(text) for text in args.expect_head or ()]


def _checkpoint_files(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [(path, Path(path).read_text()) for path in args.checkpoint or ()]


def _notes(args: argparse.Namespace) -> list[Published]:
    """The C2SP checkpoints given (a signed note, or the JSON `checkpoint --json` writes)."""
    from ..core.evidence import Published, published_note  # the evidence flow, when asked

    out = []
    for path, text in _checkpoint_files(args):
        if text.lstrip().startswith("{"):
            if '"note"' in text:
                out.append(Published.parse(text.encode(), path))
            continue
        out.append(published_note(text, path))
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    """Replay the log with the shared fold; check its hash chain, its signatures (with a
    trust store) and the checkpoints given; report every finding with its offset."""
    expected = _expected(args)
    report = api.verify(settings(args), expect=expected, notes=_notes(args), strict=args.strict)
    if args.json:
        print_json({"log": report.log, "ok": report.ok, "events": report.events,
                    "position": report.state.position, "head_hash": report.head_hash,
                    "breaks": report.breaks, "findings": report.findings,
                    "quarantined": report.quarantined,
                    "signatures_checked": report.signatures_checked,
                    "signed_through": report.state.signed_through,
                    "evidence": report.evidence,
                    "counts": report.state.counts()})
        return 0 if report.ok else 4
    print(f"{report.log}: {report.events} events, head "
          f"{report.state.position}:{report.head_hash}")
    _print_integrity(report, sys.stdout)
    for line in report.evidence:
        print(f"  {line}")
    if not report.signatures_checked and not args.strict:
        print(f"  UNSIGNED: {api.UNSIGNED_LOG}; --strict refuses such a log")
    failed = {f.position for f in report.findings if f.kind == "checkpoint"}
    for checkpoint in expected:
        if checkpoint.position not in failed:
            signed = f", signed by key {checkpoint.key_id}" if checkpoint.signature else ""
            print(f"  checkpoint at offset {checkpoint.position} holds{signed}")
    print("chain intact" if report.ok else _summary(report.findings))
    return 0 if report.ok else 4


def _summary(findings: list[Finding]) -> str:
    """``3 findings: 1 break, 2 unsigned events (in 1 range)``: each kind counted once."""
    kinds: dict[str, int] = {}
    for finding in findings:
        kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
    if set(kinds) == {"break"}:
        return f"{_count(len(findings), 'break')} found"
    ranges = sum(1 for line in _finding_lines(findings) if line.startswith("UNSIGNED"))
    parts = [f"{_count(count, _NOUNS.get(kind, kind))}"
             + (f" (in {_count(ranges, 'range')})" if kind == "unsigned" else "")
             for kind, count in kinds.items()]
    return f"{_count(len(findings), 'finding')}: {', '.join(parts)}"


_NOUNS = {"unsigned": "unsigned event", "untrusted": "untrusted event",
          "unreadable": "unreadable record", "checkpoint": "checkpoint not held"}


def _count(n: int, noun: str) -> str:
    """``1 break``, ``2 breaks``; ``2 checkpoints not held``."""
    head, _, tail = noun.partition(" not ")
    plural = head if n == 1 else f"{head}s"
    return f"{n} {plural}" + (f" not {tail}" if tail else "")


def _print_integrity(report: ReplayReport, out: Any) -> None:
    if report.signatures_checked:
        through = report.state.signed_through
        print(f"  signatures: checked against the trust store; trusted through "
              f"offset {through}" if through >= 0 else
              "  signatures: checked against the trust store; none is trusted", file=out)
    for line in _finding_lines(report.findings):
        print(f"  {line}", file=out)
    for q in report.quarantined:
        print(f"  QUARANTINED offset {q.position} by {q.by} at {q.at:%Y-%m-%d %H:%M:%S} UTC: "
              f"{q.reason} (it was {q.finding})", file=out)


def _finding_lines(findings: list[Finding]) -> list[str]:
    """One line per finding; a run of unsigned events is one line."""
    lines: list[str] = []
    unsigned: list[int] = []
    for finding in [*findings, Finding(-1, "end", "")]:
        if finding.kind == "unsigned":
            unsigned.append(finding.position)
            continue
        if unsigned:
            lines.append(f"UNSIGNED offsets {unsigned[0]}..{unsigned[-1]} ({len(unsigned)} "
                         "event(s)): no trusted signature covers them")
            unsigned = []
        if finding.kind == "break":
            lines.append(f"BREAK at offset {finding.position} (seq {finding.seq}): "
                         f"{finding.reason}")
        elif finding.kind != "end":
            lines.append(f"{finding.kind.upper()} at offset {finding.position}: "
                         f"{finding.reason}")
    return lines


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the audit log, verify it, and export a compliance report."""
    report = api.replay(settings(args), since=parse_time(args.since),
                        until=parse_time(args.until, "--until"), expect=_expected(args))
    text = render(report, args.format)
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        if not args.quiet:  # the report is in the file: this is what stdout gets
            print(f"{args.output}: {len(report.changes)} change(s), {len(report.runs)} run(s), "
                  f"chain {'intact' if report.ok else 'BROKEN'}")
    else:
        sys.stdout.write(text)
    for line in _finding_lines(report.findings):
        print(line, file=sys.stderr)
    return 0 if report.ok else 4


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write a snapshot of the whole log now (runners write one after every run that
    appended): start-ups then fold only what follows it. Verifies the log first."""
    position = api.snapshot(settings(args))
    if args.json:
        print_json({"written": position is not None, "position": position})
    elif not args.quiet:
        print(f"snapshot written at offset {position}" if position is not None else
              "no snapshot written: the latest one is as new")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    """Record, under the lock, that the record at --offset is not part of the history
    (undecodable, not a valid event, or not covered by a trusted signature). Audited."""
    excluded = api.quarantine(settings(args), args.offset, reason(args), through=args.through)
    if args.json:
        print_json({"quarantined": excluded})
    elif not args.quiet:
        for finding in excluded:
            print(f"quarantined the record at offset {finding.position} ({finding.kind}: "
                  f"{finding.reason})")
        print("every reader now skips them, and shows that it did")
    return 0


def cmd_vouch(args: argparse.Namespace) -> int:
    """Record, under the lock, that the unsigned history up to --through (written before
    signing was configured) is authentic; this run's signature then covers it. Audited."""
    count = api.vouch(settings(args), args.through, reason(args))
    if args.json:
        print_json({"vouched": count, "through": args.through})
    elif not args.quiet:
        print(f"vouched for {count} unsigned event(s) up to offset {args.through}")
    return 0


def register(add: Any) -> None:
    """Add the compliance flow's commands through ``add(name, handler) -> parser``."""
    p = add("history", cmd_history)
    p.add_argument("--unit", help="only events of this unit")
    p.add_argument("--run", help="only events of this run id")
    p.add_argument("--since", help="ISO time, e.g. 2026-11-27T10:00 (UTC unless an offset)")
    p.add_argument("--until", help="ISO time")
    for name, handler in (("verify", cmd_verify), ("replay", cmd_replay)):
        p = add(name, handler)
        p.add_argument("--checkpoint", action="append", metavar="FILE",
                       help="a checkpoint the log must still hold (the signed note "
                            "`flamingock-es checkpoint` prints, or its --json); repeatable")
        p.add_argument("--expect-head", action="append", metavar="OFFSET:HASH",
                       help="an event the log must still hold, as `verify` prints its head")
        if name == "verify":
            p.add_argument("--strict", action="store_true",
                           help="fail (exit 4) on a log no trusted signature covers: no trust "
                                "store, so anyone with write access could have written it")
        p.add_argument("--every-signature", action="store_true",
                       help="kept for scripts: every signature is always checked (each vouches "
                            "only for the events its signer appended)")
    p.add_argument("--since", help="ISO time: report changes from then on")
    p.add_argument("--until", help="ISO time")
    p.add_argument("--format", choices=FORMATS, default="json")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    add("snapshot", cmd_snapshot)
    p = add("quarantine", cmd_quarantine)
    p.add_argument("--offset", type=int, required=True,
                   help="the record's offset, as the error or `verify` names it")
    p.add_argument("--through", type=int, metavar="OFFSET",
                   help="the last offset of a range (`verify` prints UNSIGNED offsets A..B): "
                        "every record the readers refuse in it is excluded, one decision each")
    p.add_argument("--reason", required=True, help="why; written to the audit log")
    p = add("vouch", cmd_vouch)
    p.add_argument("--through", type=int, required=True,
                   help="the log's head offset as you checked it (`verify` prints it)")
    p.add_argument("--reason", required=True, help="why; written to the audit log")
