"""The audit log as an RFC 6962 / RFC 9162 Merkle tree, so outsiders can check it with stock tools.

Hashing is RFC 6962 section 2.1 (RFC 9162 section 2.1.1): a leaf is ``SHA-256(0x00 || data)``,
an interior node ``SHA-256(0x01 || left || right)``, and the tree over ``n`` leaves splits at
the largest power of two below ``n``. Those are the hashes Go's checksum database
(``golang.org/x/mod/sumdb/tlog``) and Certificate Transparency use, so their verifiers accept
our proofs unchanged.

Three pieces, one concern each:

* ``Frontier``: the O(log n) roots of the perfect subtrees covering ``[0, n)``. It extends by
  one leaf in amortised O(1) and gives the root at once, and it is small enough to keep in a
  snapshot, so a start-up over a long history need not rehash it.
* Stored hashes, laid out as Go's tlog lays them (``stored_hash_index``): appending leaf ``n``
  stores its hash and the hash of every subtree it completes, about ``2n`` hashes in all, behind
  the tiny ``HashStore`` protocol (``MemoryHashStore``, ``FileHashStore``). From them
  ``tree_hash``, ``inclusion_proof`` and ``consistency_proof`` each read O(log n) hashes. The
  store is a cache derived from the leaves: it can always be rebuilt by appending them again
  (``append_leaves``). The bytes are those Go's ``tlog.StoredHashes`` produces, in its order.
* ``verify_inclusion`` and ``verify_consistency``: the RFC 9162 section 2.1.3.2 and 2.1.4.2
  algorithms, pure, needing nothing but the proof and the tree heads.

This module imports nothing from the package and only the standard library, so a lone
``verify-proof`` command can use it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "FileHashStore",
    "Frontier",
    "HashStore",
    "MemoryHashStore",
    "SparseHashStore",
    "append_leaf",
    "append_leaves",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "stored_hash_count",
    "stored_hash_index",
    "stored_size",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash here (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree: the hash of the empty string (RFC 6962 section 2.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the prefix keeps a leaf from passing for an interior node."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``): where RFC 6962 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of RFC 6962 section 2.1, straight from its definition.

    It holds every hash in memory and rehashes all of them: for tests and small inputs. The
    log itself uses ``Frontier`` or ``tree_hash``.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = _split(len(leaf_hashes))
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The root over perfect subtrees listed left to right, largest first."""
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
    return value


class Frontier:
    """The roots of the perfect subtrees covering leaves ``[0, size)``, largest (leftmost) first.

    There is one per set bit of ``size``, so at most 64 for any log that fits in a signed
    64-bit size: this is what a snapshot keeps so that a restart resumes the tree where it
    stopped instead of rehashing every event.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[bytes] = []

    @property
    def size(self) -> int:
        """How many leaves have been appended."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest first (the "compact range" of the tree)."""
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add one leaf hash, merging the subtrees it completes (amortised one node hash).

        Returns the leaf hash and the hash of each subtree it completed, lowest first: exactly
        what stored-hash storage keeps for this leaf, so a frontier kept beside a store at the
        same size feeds it with ``store.append_hashes(frontier.append(leaf))`` and no reads.
        """
        node = _check_hash(leaf, "a leaf hash")
        stored = [node]
        size = self._size
        while size & 1:
            node = node_hash(self._nodes.pop(), node)
            stored.append(node)
            size >>= 1
        self._nodes.append(node)
        self._size += 1
        return stored

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append every leaf hash of ``leaves``, in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The tree's root hash: ``EMPTY_ROOT`` when empty, at most log2(size) node hashes."""
        return _fold(self._nodes) if self._nodes else EMPTY_ROOT

    def copy(self) -> Frontier:
        """An independent frontier at the same size (to sign a root while appending goes on)."""
        twin = Frontier()
        twin._size = self._size
        twin._nodes = list(self._nodes)
        return twin

    def to_json(self) -> dict[str, object]:
        """``{"size": n, "nodes": [hex, ...]}``: what a snapshot keeps."""
        return {"size": self._size, "nodes": [node.hex() for node in self._nodes]}

    @classmethod
    def from_json(cls, value: object) -> Frontier:
        """The frontier that ``to_json`` wrote; anything else raises ``ValueError``."""
        if not isinstance(value, dict) or set(value) != {"size", "nodes"}:
            raise ValueError('a frontier is {"size": int, "nodes": [hex, ...]}')
        size, nodes = value["size"], value["nodes"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("a frontier's size must be a non-negative integer")
        if not isinstance(nodes, list) or len(nodes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} nodes")
        decoded = []
        for node in nodes:
            try:
                raw = bytes.fromhex(node) if isinstance(node, str) else b""
            except ValueError:
                raw = b""
            if len(raw) != HASH_SIZE or raw.hex() != node.lower():  # fromhex skips spaces
                raise ValueError("a frontier node is 64 hex digits")
            decoded.append(raw)
        frontier = cls()
        frontier._size = size
        frontier._nodes = decoded
        return frontier

    @classmethod
    def from_store(cls, store: HashStore, size: int) -> Frontier:
        """The frontier at ``size`` read from stored hashes: O(log n) reads, no rehashing."""
        _check_size(store, size)
        frontier = cls()
        cover = _cover(0, size)
        frontier._size = size
        frontier._nodes = store.read_hashes([stored_hash_index(k, n) for k, n in cover])
        return frontier

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]  # mutable: equal now, unequal after an append

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


# -- stored hashes ------------------------------------------------------------------------------


def stored_hash_index(level: int, n: int) -> int:
    """Where the hash of the ``n``-th subtree of height ``level`` sits in hash storage.

    The ordering is Go tlog's (Crosby and Wallach, section 3.3): the hashes are stored in the
    order they become known, so appending leaf ``n`` writes its hash at
    ``stored_hash_index(0, n)`` followed by each subtree it completes, lowest first. Level
    ``level``'s ``n``-th hash comes right after its rightmost leaf, leaf
    ``m = (n + 1) * 2**level - 1``, which sits after the ``2m - popcount(m)`` hashes of the
    leaves before it.
    """
    if level < 0 or n < 0:
        raise ValueError("stored hash coordinates are non-negative")
    last_leaf = ((n + 1) << level) - 1
    return stored_hash_count(last_leaf) + level


def stored_hash_count(size: int) -> int:
    """How many hashes a tree of ``size`` leaves stores: ``2 * size - popcount(size)``."""
    if size < 0:
        raise ValueError("a tree size is non-negative")
    return 2 * size - size.bit_count()


class HashStore(Protocol):
    """Somewhere to keep stored hashes: indexed reads and appends, nothing else.

    ``__len__`` is the number of hashes held. A store holds the hashes of whole leaves only
    (``append_leaf`` and ``append_leaves`` hand over whole leaves' hashes in each call), so
    its tree size follows from its length (``stored_size``).
    """

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """The hashes at ``indexes``, in that order; ``IndexError`` past the end."""
        ...

    def append_hashes(self, hashes: Sequence[bytes]) -> None:
        """Add ``hashes`` at the end, in order."""
        ...

    def __len__(self) -> int: ...


class MemoryHashStore:
    """A ``HashStore`` in a list: for tests, and for building a tree to prove at once."""

    __slots__ = ("_hashes",)

    def __init__(self) -> None:
        self._hashes: list[bytes] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        count = len(self._hashes)
        for index in indexes:
            if not 0 <= index < count:
                raise IndexError(f"stored hash {index} is past the end ({count} held)")
        return [self._hashes[index] for index in indexes]

    def append_hashes(self, hashes: Sequence[bytes]) -> None:
        self._hashes.extend(_check_hash(value, "a stored hash") for value in hashes)

    def __len__(self) -> int:
        return len(self._hashes)


class FileHashStore:
    """A ``HashStore`` in one append-only file of fixed 32-byte records.

    Record ``i`` is the hash at stored index ``i``, at byte ``32 * i``, so a read is one
    ``pread`` per hash and needs no index. Appends are buffered (up to ``buffer_bytes``) and
    reach the file on ``flush``, ``close`` or when the buffer fills; reads see them at once.

    The file is a cache derived from the leaves. Opening it drops a torn tail (a partial
    record, or a leaf whose subtree hashes did not all arrive), and ``truncate`` cuts it back
    to a tree size, so a caller that finds it behind the log, or wrong against a signed root,
    appends the missing leaves again (or starts from an empty file). One writer at a time.
    """

    def __init__(self, path: str | os.PathLike[str], *, buffer_bytes: int = 1 << 16) -> None:
        self._path = os.fspath(path)
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        self._buffer = bytearray()
        self._buffer_bytes = buffer_bytes
        try:
            records = os.fstat(self._fd).st_size // HASH_SIZE
            self._written = stored_hash_count(_size_within(records))
            if self._written * HASH_SIZE != os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, self._written * HASH_SIZE)
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def path(self) -> str:
        return self._path

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        count = self._written + len(self._buffer) // HASH_SIZE
        out = []
        for index in indexes:
            if not 0 <= index < count:
                raise IndexError(f"stored hash {index} is past the end ({count} held)")
            if index < self._written:
                record = os.pread(self._fd, HASH_SIZE, index * HASH_SIZE)
                if len(record) != HASH_SIZE:
                    raise OSError(f"{self._path}: short read at stored hash {index}")
                out.append(record)
            else:
                start = (index - self._written) * HASH_SIZE
                out.append(bytes(self._buffer[start : start + HASH_SIZE]))
        return out

    def append_hashes(self, hashes: Sequence[bytes]) -> None:
        for value in hashes:
            self._buffer += _check_hash(value, "a stored hash")
        if len(self._buffer) >= self._buffer_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the buffered hashes to the file (no fsync: the file can be rebuilt)."""
        data, offset = bytes(self._buffer), self._written * HASH_SIZE
        while data:
            done = os.pwrite(self._fd, data, offset)
            data, offset = data[done:], offset + done
        self._written += len(self._buffer) // HASH_SIZE
        self._buffer.clear()

    def truncate(self, size: int) -> None:
        """Keep only the hashes of the first ``size`` leaves (to re-append from there)."""
        _check_size(self, size)
        self.flush()
        self._written = stored_hash_count(size)
        os.ftruncate(self._fd, self._written * HASH_SIZE)

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1

    def __len__(self) -> int:
        return self._written + len(self._buffer) // HASH_SIZE

    def __enter__(self) -> FileHashStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SparseHashStore:
    """A ``HashStore`` that holds a frontier and what is appended after it, nothing else.

    Seeded with the frontier of a tree of ``m`` leaves, it takes appended leaves like any
    store, and then answers ``consistency_proof(store, m, n)`` and ``tree_hash(store, n)``:
    every hash those read is either a node of that frontier or a subtree of the leaves after
    ``m``. So a runner that kept only the frontier of the last checkpoint it published (and
    reads the records appended since) proves to a witness that its new tree extends the old
    one, without the hashes of the whole log. Reading any other hash is an ``IndexError``.
    """

    __slots__ = ("_count", "_hashes")

    def __init__(self, frontier: Frontier) -> None:
        cover = _cover(0, frontier.size)
        self._hashes = {stored_hash_index(level, n): node
                        for (level, n), node in zip(cover, frontier.nodes, strict=True)}
        self._count = stored_hash_count(frontier.size)

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        try:
            return [self._hashes[index] for index in indexes]
        except KeyError as missing:
            raise IndexError(f"stored hash {missing.args[0]} is not held by this sparse "
                             "store (only its frontier and what followed it)") from None

    def append_hashes(self, hashes: Sequence[bytes]) -> None:
        for value in hashes:
            self._hashes[self._count] = _check_hash(value, "a stored hash")
            self._count += 1

    def __len__(self) -> int:
        return self._count


def _size_within(count: int) -> int:
    """The largest tree size whose stored hashes fit in ``count`` hashes."""
    size = count // 2
    while stored_hash_count(size + 1) <= count:
        size += 1
    return size


def stored_size(store: HashStore) -> int:
    """How many leaves ``store`` holds; ``ValueError`` if it ends inside a leaf's hashes."""
    count = len(store)
    size = _size_within(count)
    if stored_hash_count(size) != count:
        raise ValueError(f"{count} stored hashes end inside leaf {size}'s: the store is torn")
    return size


def _check_size(store: HashStore, size: int) -> None:
    held = stored_size(store)
    if not 0 <= size <= held:
        raise ValueError(f"tree size {size} is outside the {held} leaves stored")


def append_leaf(store: HashStore, leaf: bytes) -> int:
    """Append a leaf hash and the subtree hashes it completes; returns the leaf's index.

    Leaf ``n`` completes one subtree per trailing one bit of ``n``; their left halves were
    stored earlier, so this reads at most log2(n) hashes, in one call, and appends in one.
    """
    node = _check_hash(leaf, "a leaf hash")
    n = stored_size(store)
    hashes = [node]
    if n & 1:
        levels = (~n & (n + 1)).bit_length() - 1  # trailing one bits of n
        for left in store.read_hashes([_index(level, n) for level in range(levels)]):
            node = node_hash(left, node)
            hashes.append(node)
    store.append_hashes(hashes)
    return n


def append_leaves(store: HashStore, leaves: Iterable[bytes], *, batch: int = 4096) -> int:
    """Append many leaf hashes (a rebuild, a catch-up); returns the new tree size.

    It reads the O(log n) frontier once and then nothing: the frontier knows every left
    sibling a new leaf completes. Hashes go to the store ``batch`` leaves at a time, whole
    leaves only, so an interrupted rebuild leaves a store that resumes cleanly.
    """
    frontier = Frontier.from_store(store, stored_size(store))
    pending: list[bytes] = []
    for count, leaf in enumerate(leaves, start=1):
        pending += frontier.append(leaf)
        if count % batch == 0:
            store.append_hashes(pending)
            pending = []
    store.append_hashes(pending)
    return frontier.size


def _index(level: int, n: int) -> int:
    """``stored_hash_index(level, n >> level ^ 1)``: the left sibling, at ``level``, of leaf n's
    ancestor (``n`` has a one bit there), unchecked for speed."""
    last = (((n >> level) ^ 1) + 1 << level) - 1
    return 2 * last - last.bit_count() + level


# -- proofs -------------------------------------------------------------------------------------


def _cover(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees, as (level, n), that tile ``[lo, hi)`` left to right.

    Every range a proof asks for starts at a multiple of a power of two at least as large as
    the range, so greedy largest-first tiling yields aligned, hence stored, subtrees.
    """
    out = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def _range_hashes(store: HashStore, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The subtree hash of each ``[lo, hi)`` in ``ranges``, from one batched read."""
    covers = [_cover(lo, hi) for lo, hi in ranges]
    indexes = [stored_hash_index(level, n) for cover in covers for level, n in cover]
    hashes = store.read_hashes(indexes)
    out = []
    at = 0
    for cover in covers:
        out.append(_fold(hashes[at : at + len(cover)]))
        at += len(cover)
    return out


def tree_hash(store: HashStore, size: int) -> bytes:
    """The root of the first ``size`` leaves in ``store``: at most log2(size) + 1 reads."""
    _check_size(store, size)
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes(store, [(0, size)])[0]


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes make up PATH(index, D[0:size]) (RFC 9162 2.1.3.1), leaf first."""
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The subtrees of PROOF(old_size, D[0:new_size]) (RFC 9162 2.1.4.1), deepest first."""
    ranges = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof(store: HashStore, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves, leaf's sibling first.

    It is what ``verify_inclusion`` (and Go's ``tlog.CheckRecord``) take; O(log n) reads.
    """
    _check_size(store, size)
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _range_hashes(store, _inclusion_ranges(index, size))


def consistency_proof(store: HashStore, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of ``new_size`` leaves extends the one of ``old_size``.

    Empty when the sizes are equal or ``old_size`` is 0 (the empty tree is a prefix of every
    tree). It is what ``verify_consistency`` (and Go's ``tlog.CheckTree``) take; O(log n) reads.
    """
    _check_size(store, new_size)
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    return _range_hashes(store, _consistency_ranges(old_size, new_size))


# -- verification (RFC 9162 section 2.1.3.2 and 2.1.4.2) ---------------------------------------


def _all_hashes(values: Sequence[bytes]) -> bool:
    return all(isinstance(value, bytes) and len(value) == HASH_SIZE for value in values)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``.

    RFC 9162 section 2.1.3.2, "Verifying an Inclusion Proof", step by step: ``fn`` walks the
    leaf's position up the tree and ``sn`` the last leaf's, so a proof with a hash too many or
    too few, or for another index or size, fails.
    """
    if not _all_hashes([leaf, root, *proof]) or not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    RFC 9162 section 2.1.4.2, "Verifying Consistency between Two Tree Heads", for
    ``0 < old_size < new_size``. Equal sizes need an empty proof and equal roots; the empty
    old tree needs an empty proof and ``EMPTY_ROOT`` as its root.
    """
    if not _all_hashes([old_root, new_root, *proof]) or not 0 <= old_size <= new_size:
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node here
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
