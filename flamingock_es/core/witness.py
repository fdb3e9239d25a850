"""What this runner saw of the log, kept where the bus cannot reach: its own evidence that a
namespace existed, so that it cannot silently start over.

Deleting a namespace's topics and its lock group (or a local log) leaves an empty log that
reads as a new namespace: every unit would be applied a second time, and ``verify`` would
find nothing wrong with a log that holds nothing. A runner remembers the last head it saw
(position and hash) in a file beside its workflow, and refuses a log that no longer holds
it: one that ends before it, or has another event there. ``verify --expect-head`` does the
same for anyone holding a head they were given, and a witness (docs/compliance.md) from
outside.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import ChainBrokenError, Remedy, RemedyKind
from .ports import EventLog, SnapshotStore
from .reading import LogReader
from .snapshots import event_hash_at
from .state import State

__all__ = ["HeadMemory"]


@dataclass(frozen=True, slots=True)
class Head:
    """A position of a log, the hash of the event there, and when it was seen."""

    position: int
    hash: bytes
    seen: str


@dataclass(frozen=True)
class HeadMemory:
    """The last head a runner saw of one namespace, in ``store`` (the file ``where``)."""

    store: SnapshotStore
    where: str

    def remember(self, state: State) -> None:
        """Keep ``state``'s head (the caller checked it has no findings). Raises
        ``AppendError`` if it cannot: only a warning's worth, the log decides."""
        if state.position < 0:
            return
        self.store.save(json.dumps({
            "position": state.position, "hash": state.head_hash.hex(),
            "seen": datetime.now(UTC).isoformat(timespec="seconds")}).encode())

    def recalled(self) -> Head | None:
        """The head remembered, if any (an unreadable file counts as none)."""
        data = self.store.latest()
        if data is None:
            return None
        try:
            found = json.loads(data)
            return Head(int(found["position"]), bytes.fromhex(found["hash"]), str(found["seen"]))
        except (ValueError, KeyError, TypeError):
            return None

    def check(self, log: EventLog, reader: LogReader, state: State) -> None:
        """Refuse ``log`` unless it still holds the head remembered: a log that ends before
        it, or has another event there, was cut, rewritten, or deleted and created again.
        ``state`` is what was just read of it (when it ends at that head, nothing is read)."""
        head = self.recalled()
        if head is None or (state.position, state.head_hash) == (head.position, head.hash):
            return
        found = None if state.position < head.position else \
            event_hash_at(log, head.position, reader.codec)
        if found == head.hash:
            return
        what = "the log ends before it" if found is None else \
            f"the event there has hash {found.hex()[:16]}..."
        raise ChainBrokenError(
            f"the audit log {log.name} no longer holds the event this runner saw at offset "
            f"{head.position} on {head.seen} (hash {head.hash.hex()[:16]}...): {what}. Events "
            "were cut off or rewritten, or the namespace was deleted and created again; "
            "running now could apply units a second time. Nothing was run: restore the "
            "log (docs/recovery.md). If the namespace was started over on purpose, forget the "
            f"head {self.where} remembers.",
            remedies=(self.forgetting(),))

    def forgetting(self) -> Remedy:
        """What makes this runner forget the head (a namespace started over on purpose)."""
        return Remedy(RemedyKind.FORGET_HEAD, topic=self.where)

