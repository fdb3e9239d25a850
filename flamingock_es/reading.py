"""Reading a namespace's log into state: decode, fold, and refuse what cannot be trusted.

Every reader of the log (the runner, the read-only commands, the compliance replay) folds it
through :func:`read_log`, so they all see the same history, and the runner refuses to decide
anything on a log whose integrity does not hold (:func:`check_integrity`).
"""

from __future__ import annotations

from .codec import AuditCodec
from .errors import ChainBrokenError
from .ports import EventLog
from .state import State, fold

__all__ = ["check_integrity", "read_log"]


def read_log(log: EventLog, state: State | None = None,
             codec: AuditCodec | None = None) -> State:
    """Fold what ``log`` gained since ``state`` (a fresh state by default) and return it."""
    state = state if state is not None else State()
    return fold((codec or AuditCodec()).decode_all(log.read(state.position + 1)), state)


def check_integrity(state: State, where: str) -> State:
    """``state``, if nothing in the log it was folded from breaks the chain; else raise."""
    if state.breaks:
        first = state.breaks[0]
        raise ChainBrokenError(
            f"the audit log {where} is inconsistent at offset {first.position} "
            f"(seq {first.seq}): {first.reason}. Nothing was run; `flamingock-es verify` "
            "reports every break.")
    return state
