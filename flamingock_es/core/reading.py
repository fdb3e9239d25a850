"""Reading a namespace's log into state: decode, fold, check, and refuse what is not to be trusted.

Every reader of the log (the runner, the read-only commands, the compliance replay, the
projection worker) folds it through here, so they all see the same history:

* a record that cannot be decoded is noted (``State.unreadable``) and never applied;
* a quarantine decision that excludes a record already applied makes the fold start over
  without it (rare: only the read after the decision pays for it);
* with a trust store, the signatures the fold collected are checked (:func:`settle`).

:func:`check_integrity` is the fail-closed rule: a runner decides nothing on a log with a
finding an operator has not decided about, and the error names the position and the command.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import ChainBrokenError, DecodeError
from .codec import AUDIT_CONTEXT, AuditCodec
from .events import Recorded
from .ports import EventLog, StoredRecord
from .state import Finding, State, fold
from .trust import TrustStore

__all__ = ["check_integrity", "decoded", "read_log", "settle"]


def decoded(stored: Iterable[StoredRecord], state: State,
            codec: AuditCodec | None = None) -> Iterator[Recorded]:
    """The records of ``stored`` decoded; the ones that cannot be are noted in ``state``."""
    decode = (codec or AuditCodec()).decode
    for position, data in stored:
        try:
            yield decode(data, position)
        except DecodeError as exc:
            state.note_unreadable(position, str(exc))


def read_log(log: EventLog, state: State | None = None, codec: AuditCodec | None = None,
             trust: TrustStore | None = None, *, every_signature: bool = False) -> State:
    """Fold what ``log`` gained since ``state`` (a fresh state by default) and return it.

    ``every_signature`` checks every signature, not only the last one (compliance replay).
    """
    codec = codec or AuditCodec()
    state = state if state is not None else State()
    fold(decoded(log.read(state.position + 1), state, codec), state)
    if state.needs_refold:
        state.start_over()
        fold(decoded(log.read(0), state, codec), state)
    if trust is not None:
        settle(state, trust, every=every_signature)
    return state


def settle(state: State, trust: TrustStore, *, writers: bool = False,
           every: bool = False) -> None:
    """Check the signatures the fold collected since the last check.

    The last one is enough where it verifies: it signs a hash that chains every event before
    it, and no runner signs a history it did not verify. Where it does not, the ones before
    it are checked until one does. ``writers`` also checks each key's latest signature, so
    that every writer is named and checked (what ``verify`` does); ``every`` checks them all
    (an auditor's thorough pass: a signature whose bytes alone were altered is named too).
    """
    seals, state.seals = state.seals, []
    latest_of_each: dict[str | None, int] = {}
    if writers:
        for index, seal in enumerate(seals):
            latest_of_each[seal.key_id] = index
    wanted = set(latest_of_each.values())
    trusted_found = False
    for index in range(len(seals) - 1, -1, -1) if not every else range(len(seals)):
        seal = seals[index]
        if trusted_found and not every and index not in wanted:
            continue
        why = trust.check(seal.key_id, seal.signature, AUDIT_CONTEXT + seal.hash,
                          namespace=seal.namespace, role="write")
        if why is not None:
            state.untrusted[seal.position] = why
            continue
        state.signed_through = max(state.signed_through, seal.position)
        trusted_found = True
        if not every and not wanted:
            return


def check_integrity(state: State, where: str, trust: TrustStore | None = None) -> State:
    """``state``, if nothing in the log it was folded from is a finding; else raise."""
    findings = state.findings(signatures=trust is not None)
    if findings:
        raise ChainBrokenError(_refusal(state, findings, where))
    return state


def _refusal(state: State, findings: list[Finding], where: str) -> str:
    first = findings[0]
    more = f" ({len(findings) - 1} more finding(s) after it)" if len(findings) > 1 else ""
    if all(f.kind == "unsigned" for f in findings) and state.signed_through < 0:
        return (f"the audit log {where} has {len(findings)} event(s) and no trusted signature "
                "covers any of them (it was written before signing was configured, or by "
                "someone without a trusted key). Nothing was run. If this history is "
                "authentic, an operator vouches for it with an audited decision: "
                f'flamingock-es vouch --through {state.position} --reason "..."; '
                "`flamingock-es verify` lists the events.")
    return (f"the audit log {where} is inconsistent at offset {first.position}: "
            f"{first.reason}{more}. Nothing was run. If that record was not written by "
            "flamingock-es (a foreign or forged record), an operator excludes it with an "
            f'audited decision: flamingock-es quarantine --offset {first.position} --reason '
            '"..."; if events were altered or dropped, restore the log (docs/recovery.md). '
            "`flamingock-es verify` reports every finding.")
