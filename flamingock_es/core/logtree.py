"""The log's Merkle tree kept on disk, so that a proof costs O(log n) reads, not a replay.

The fold keeps only the tree's frontier (``State.tree``): enough for a root, not for a proof.
A proof needs the hashes of inner nodes; :class:`LogTree` keeps every one of them in a
:class:`~flamingock_es.core.merkle.FileHashStore` (Go tlog's layout, about ``2n`` hashes) and,
beside it, the log position of each leaf (8 bytes a leaf, so a position's leaf index is a
binary search). Both are a cache derived from the log's stored bytes: :meth:`LogTree.catch_up`
appends the leaves of the records the log gained since (hashes of bytes, no decoding), and a
cache that does not give the root a signed checkpoint names is thrown away and built again
(:meth:`LogTree.holding`). Nothing in it is trusted: every proof made from it is checked
against a signed root before anyone sees it.

Leaf ``i`` is the ``i``-th record the log stores, in log order, as :class:`State` counts them.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

from ..errors import ChainBrokenError, Remedy, RemedyKind
from .merkle import (
    FileHashStore,
    Frontier,
    append_leaves,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    stored_size,
    tree_hash,
)
from .ports import EventLog

__all__ = ["LogTree", "leaves_after"]

_POSITION = struct.Struct("<q")


def leaves_after(log: EventLog, position: int) -> Iterator[tuple[int, bytes]]:
    """``(position, leaf hash)`` of every record ``log`` stores after ``position``."""
    for at, data in log.read(position + 1):
        yield at, leaf_hash(data)


class LogTree:
    """The tree of one namespace's log, in the folder ``folder`` (``hashes``, ``positions``).
    One writer at a time (the runner that holds the lock, or a tool): a cache, not a log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._hashes: FileHashStore | None = None
        self._positions: int = -1

    # The files -----------------------------------------------------------------------------

    def _open(self) -> FileHashStore:
        if self._hashes is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._hashes = FileHashStore(self.folder / "hashes")
            size = stored_size(self._hashes)
            path = self.folder / "positions"
            self._positions = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            held = os.fstat(self._positions).st_size // _POSITION.size
            if held != size:  # torn by a crash between the two files: keep what both hold
                keep = min(held, size)
                os.ftruncate(self._positions, keep * _POSITION.size)
                self._hashes.truncate(keep)
        return self._hashes

    @property
    def size(self) -> int:
        """How many leaves the cache holds."""
        return stored_size(self._open())

    def position_of(self, index: int) -> int:
        """The log position of leaf ``index``."""
        self._open()
        raw = os.pread(self._positions, _POSITION.size, index * _POSITION.size)
        if len(raw) != _POSITION.size:
            raise IndexError(f"leaf {index} is not in the cached tree of {self.size} leaves")
        return int(_POSITION.unpack(raw)[0])

    def index_of(self, position: int) -> int | None:
        """The leaf index of the record at ``position``, if the cache holds one there."""
        lo, hi = 0, self.size
        while lo < hi:
            mid = (lo + hi) // 2
            if self.position_of(mid) < position:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < self.size and self.position_of(lo) == position else None

    def last_position(self) -> int:
        """The position of the last leaf held, -1 when empty."""
        size = self.size
        return self.position_of(size - 1) if size else -1

    def catch_up(self, log: EventLog) -> int:
        """Append the leaves of what ``log`` stores after the last one held; the new size."""
        store = self._open()
        start = self.last_position()
        positions = bytearray()

        def leaves() -> Iterator[bytes]:
            for at, leaf in leaves_after(log, start):
                positions.extend(_POSITION.pack(at))
                yield leaf

        size = append_leaves(store, leaves())
        store.flush()
        offset = (size - len(positions) // _POSITION.size) * _POSITION.size
        data = bytes(positions)
        while data:
            done = os.pwrite(self._positions, data, offset)
            data, offset = data[done:], offset + done
        return size

    def reset(self) -> None:
        """Forget everything held (a cache that disagrees with a signed root)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def holding(self, log: EventLog, size: int, root: bytes, where: str) -> LogTree:
        """This tree, caught up with ``log``, once it gives ``root`` at ``size`` (a signed
        checkpoint's): a cache that does not is built again from the log; a log whose own
        bytes do not give that root no longer holds what was signed."""
        for attempt in (1, 2):
            held = self.catch_up(log)
            if held >= size and tree_hash(self._open(), size) == root:
                return self
            if attempt == 1:
                self.reset()
        why = (f"it stores {held} record(s), fewer than the {size} the checkpoint counts"
               if held < size else
               f"its first {size} records give another root than the checkpoint's")
        raise ChainBrokenError(
            f"the audit log {log.name} no longer holds the tree its signed checkpoint ({where}) "
            f"names: {why}. Records were cut off or rewritten since; restore the log "
            "(docs/recovery.md).", remedies=(Remedy(RemedyKind.VERIFY),))

    # Proofs --------------------------------------------------------------------------------

    def root(self, size: int) -> bytes:
        return tree_hash(self._open(), size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(self._open(), index, size)

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return consistency_proof(self._open(), old_size, new_size)

    def frontier(self, size: int) -> Frontier:
        return Frontier.from_store(self._open(), size)

    def close(self) -> None:
        if self._hashes is not None:
            self._hashes.close()
            os.close(self._positions)
            self._hashes, self._positions = None, -1
