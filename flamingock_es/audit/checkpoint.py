"""Checkpoints: a signed point of a log that an auditor keeps elsewhere, to prove later that the
log still holds it (nothing cut off its end, nothing rewritten before it).

A checkpoint is the last signed event of a log: its position, sequence number and hash, and
the runner's signature of that hash. Published out of band (a ticket, a release note, another
system), it lets anyone check a copy of the log offline, like a transparency log's signed tree
head: ``flamingock-es checkpoint > cp.json`` today, ``flamingock-es verify --checkpoint
cp.json`` any day after. ``--expect-head POSITION:HASH`` is the same check without the
signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from ..core.codec import AUDIT_CONTEXT
from ..core.events import Recorded
from ..core.state import Finding
from ..core.trust import TrustStore
from ..errors import ConfigError

__all__ = ["Checkpoint", "check_expectations", "latest_checkpoint", "parse_head"]


@dataclass(frozen=True)
class Checkpoint:
    """A position of a namespace's log, the hash of the event there, and who signed it."""

    namespace: str
    position: int
    seq: int
    hash: str
    """Hex of the event's SHA-256 hash."""
    key_id: str | None = None
    signature: str | None = None
    """Hex of the Ed25519 signature of ``flamingock-es audit `` + the hash bytes."""
    time: str = ""
    log: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "checkpoint") -> Checkpoint:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{where}: not a flamingock-es checkpoint ({exc})") from exc


def latest_checkpoint(records: Sequence[Recorded], log: str) -> Checkpoint | None:
    """The last signed event of ``records`` as a checkpoint (``None`` if none is signed)."""
    for record in reversed(records):
        event = record.event
        if event.signature is not None:
            return Checkpoint(event.namespace, record.position, event.seq, event.hash.hex(),
                              event.key_id, event.signature.hex(), _iso(event.time), log)
    return None


def parse_head(text: str) -> Checkpoint:
    """``POSITION:HASH`` (the form ``verify`` prints) as an unsigned checkpoint."""
    position, sep, digest = text.partition(":")
    if not sep or not position.isdigit() or len(digest) != 64:
        raise ConfigError(f"--expect-head {text!r}: expected POSITION:HASH, e.g. "
                          "1234:3f5a...(64 hex digits), as `flamingock-es verify` prints them")
    return Checkpoint("", int(position), -1, digest.lower())


def check_expectations(records: Sequence[Recorded], expected: Sequence[Checkpoint],
                       trust: TrustStore | None) -> list[Finding]:
    """Findings for every checkpoint the log no longer holds as it was."""
    at: Mapping[int, Recorded] = {r.position: r for r in records}
    end = records[-1].position if records else -1
    out = []
    for cp in expected:
        record = at.get(cp.position)
        if record is None:
            why = (f"the log ends at offset {end}, before the checkpoint at offset "
                   f"{cp.position}: events were cut off its end" if cp.position > end else
                   f"no event starts at offset {cp.position}, where the checkpoint has one: "
                   "the log was rewritten")
        elif record.event.hash.hex() != cp.hash:
            why = (f"the event at offset {cp.position} has hash {record.event.hash.hex()[:16]}"
                   f"..., not the checkpoint's {cp.hash[:16]}...: the log was rewritten")
        else:
            why = _signature_problem(cp, trust)
        if why:
            out.append(Finding(cp.position, "checkpoint", why))
    return out


def _signature_problem(cp: Checkpoint, trust: TrustStore | None) -> str:
    if cp.signature is None or trust is None:
        return ""
    problem = trust.check(cp.key_id, bytes.fromhex(cp.signature),
                          AUDIT_CONTEXT + bytes.fromhex(cp.hash), namespace=cp.namespace,
                          role="write")
    return f"the checkpoint's own signature: {problem}" if problem else ""


def _iso(value: datetime) -> str:
    return value.isoformat()
