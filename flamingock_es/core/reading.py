"""The one way a log is read: decode, fold, check the chain and the signatures, refuse.

Every reader of a namespace's log goes through a :class:`LogReader` (the composition root
builds one per namespace, with its codec and trust store): the runner to plan, the
compliance replay and ``verify``, the projection worker, and the request follower that waits
for an answer. So they all see the same history:

* a record that cannot be decoded is noted (``State.unreadable``) and never applied;
* the fold checks the hash chain and the sequence as it goes (:meth:`State.apply`);
* a quarantine decision that excludes a record already applied makes the fold start over
  without it (rare: only the read after the decision pays for it);
* with a trust store, the signatures the fold collected are checked (:meth:`settle`);
* :meth:`check` is the fail-closed rule: nothing is decided on a log with a finding an
  operator has not decided about; the error names the position and the remedy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import ChainBrokenError, DecodeError, Remedy, RemedyKind
from .codec import AUDIT_CONTEXT, AuditCodec
from .events import Recorded, RecordQuarantined
from .merkle import leaf_hash
from .ports import EventLog, StoredRecord
from .state import Finding, Quarantine, State, effective_skip
from .trust import TrustStore

__all__ = ["Apply", "LogReader", "Replayed"]

Apply = Callable[[Recorded], object]
"""What folding one record means to a reader: ``state.apply`` by default; the projection
folds through its own, which also notes the documents a record changed."""


@dataclass
class Replayed:
    """A whole log folded at once (``verify``, ``replay``): the state and every record."""

    state: State
    records: list[Recorded] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Unreadable:
    position: int
    why: str
    leaf: bytes


class LogReader:
    """Reads a namespace's log into state, with its codec and (optionally) trust store."""

    def __init__(self, codec: AuditCodec | None = None, trust: TrustStore | None = None) -> None:
        self.codec = codec or AuditCodec()
        self.trust = trust

    # Decoding --------------------------------------------------------------------------------

    def decoded(self, stored: Iterable[StoredRecord], state: State) -> Iterator[Recorded]:
        """The records of ``stored`` decoded; the ones that cannot be are noted in ``state``."""
        decode = self.codec.decode
        for position, data in stored:
            try:
                yield decode(data, position)
            except DecodeError as exc:
                state.note_unreadable(position, str(exc), leaf_hash(data))

    def take(self, state: State, position: int, data: bytes,
             apply: Apply | None = None) -> Recorded | None:
        """Fold one stored record (a follower's loop); ``None`` if it could not be decoded.
        After it, ``state.needs_refold`` says whether :meth:`refold` is due."""
        try:
            record = self.codec.decode(data, position)
        except DecodeError as exc:
            state.note_unreadable(position, str(exc), leaf_hash(data))
            return None
        (apply or state.apply)(record)
        return record

    # Folding ---------------------------------------------------------------------------------

    def catch_up(self, log: EventLog, state: State | None = None, *,
                 apply: Apply | None = None) -> State:
        """Fold what ``log`` gained since ``state`` (a fresh state by default), check the
        signatures, and return it."""
        state = state if state is not None else State()
        fold = apply or state.apply
        for record in self.decoded(log.read(state.position + 1), state):
            fold(record)
        if state.needs_refold:
            self.refold(log, state, apply)
        self.settle(state)
        return state

    def refold(self, log: EventLog, state: State, apply: Apply | None = None, *,
               exclude: frozenset[int] = frozenset()) -> None:
        """Fold the whole log again, without the records quarantine decisions (and
        ``exclude``) leave out; the state object stays the same: holders keep it."""
        state.start_over(exclude)
        fold = apply or state.apply
        for record in self.decoded(log.read(0), state):
            fold(record)

    def replay(self, stored: Iterable[StoredRecord], *,
               on_record: Callable[[State, Recorded], None] | None = None) -> Replayed:
        """Fold a whole log at once, calling ``on_record`` after each record is applied.

        The records are decoded first, so the quarantine decisions are known before the fold
        and it never starts over; every signature is checked (what ``verify`` reports)."""
        decode = self.codec.decode
        read: list[Recorded | _Unreadable] = []
        for position, data in stored:
            try:
                read.append(decode(data, position))
            except DecodeError as exc:  # noted in its place: it is a leaf of the tree
                read.append(_Unreadable(position, str(exc), leaf_hash(data)))
        records = [r for r in read if isinstance(r, Recorded)]
        state = State(skip=effective_skip(
            Quarantine(r.event.payload.position, "", "", "", r.event.time, r.position)
            for r in records if isinstance(r.event.payload, RecordQuarantined)))
        for item in read:
            if isinstance(item, _Unreadable):
                state.note_unreadable(item.position, item.why, item.leaf)
                continue
            state.apply(item)
            if on_record is not None:
                on_record(state, item)
        self.settle(state)
        return Replayed(state, records)

    # Trust -----------------------------------------------------------------------------------

    def settle(self, state: State) -> None:
        """Check every signature the fold collected since the last check (nothing without a
        trust store). Each vouches for exactly the events of its own append: one that does
        not verify leaves those events unsigned, and is named itself."""
        trust = self.trust
        seals, state.seals = state.seals, []
        if trust is None:
            return
        for seal in seals:
            why = trust.check(seal.key_id, seal.signature, AUDIT_CONTEXT + seal.hash,
                              namespace=seal.namespace, role="write", position=seal.position,
                              time=seal.time)
            if why is None:
                state.signed_through = max(state.signed_through, seal.position)
                continue
            state.untrusted[seal.position] = why
            for position in seal.covers:
                if position != seal.position:
                    state.uncovered[position] = (f"the signature that claims it (offset "
                                                 f"{seal.position}) is refused: {why}")

    def findings(self, state: State) -> list[Finding]:
        """What a reader must not decide on in ``state``, with this reader's trust rules."""
        return state.findings(signatures=self.trust is not None)

    def check(self, state: State, where: str) -> State:
        """``state``, if nothing in the log it was folded from is a finding; else raise
        :class:`ChainBrokenError` naming the first finding and the remedy."""
        findings = self.findings(state)
        if findings:
            raise refusal(state, findings, where)
        return state


def refusal(state: State, findings: list[Finding], where: str) -> ChainBrokenError:
    """The error that refuses to decide on a log with ``findings``."""
    first = findings[0]
    more = f" ({len(findings) - 1} more finding(s) after it)" if len(findings) > 1 else ""
    if all(f.kind == "unsigned" for f in findings) and state.signed_through < 0:
        return ChainBrokenError(
            f"the audit log {where} has {len(findings)} event(s) and no trusted signature "
            "covers any of them (it was written before signing was configured, or by someone "
            "without a trusted key). Nothing was run. If this history is authentic, an "
            "operator vouches for it with an audited decision.",
            remedies=(Remedy(RemedyKind.VOUCH, position=state.position),
                      Remedy(RemedyKind.VERIFY)))
    return ChainBrokenError(
        f"the audit log {where} is inconsistent at offset {first.position}: {first.reason}"
        f"{more}. Nothing was run. If that record was not written by flamingock-es (a "
        "foreign or forged record), an operator excludes it with an audited decision; if "
        "events were altered or dropped, restore the log (docs/recovery.md).",
        remedies=(Remedy(RemedyKind.QUARANTINE, position=first.position),
                  Remedy(RemedyKind.VERIFY)))
