"""The Merkle tree: RFC 6962 roots and proofs, the frontier, stored hashes in memory and on disk.

The references here are written from the RFC's definitions, independently of the module, and
the published Certificate Transparency vectors pin both to the hashes other tools compute.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from flamingock_es.core import merkle
from flamingock_es.core.merkle import (
    EMPTY_ROOT,
    FileHashStore,
    Frontier,
    HashStore,
    MemoryHashStore,
    SparseHashStore,
    append_leaf,
    append_leaves,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    stored_hash_count,
    stored_hash_index,
    stored_size,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# -- references straight from RFC 6962 section 2.1 ------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(data: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaves' data, as section 2.1 defines it."""
    if not data:
        return _sha(b"")
    if len(data) == 1:
        return _sha(b"\x00" + data[0])
    k = _k(len(data))
    return _sha(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:]))


def naive_path(m: int, data: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of section 2.1.1."""
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def naive_subproof(m: int, data: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of section 2.1.2."""
    n = len(data)
    if m == n:
        return [] if whole else [naive_mth(data)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, data[:k], whole), naive_mth(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_mth(data[:k])]


def _data(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


def _store(data: Sequence[bytes]) -> MemoryHashStore:
    store = MemoryHashStore()
    for item in data:
        append_leaf(store, leaf_hash(item))
    return store


# -- published vectors ----------------------------------------------------------------------------
# The Certificate Transparency test vectors (google/certificate-transparency,
# cpp/merkletree/merkle_tree_test.cc), as republished in github.com/transparency-dev/merkle:
# testonly/constants.go (LeafInputs, NodeHashes, RootHashes) and proof/verify_test.go
# (inclusionProofs, consistencyProofs; their leaf numbers are 1-based, the indexes below are not).

CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
CT_NODES = {  # (level, n): the hash of the n-th complete subtree of that height
    (0, 0): "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    (0, 1): "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 3): "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    (0, 4): "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    (0, 5): "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    (0, 6): "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    (0, 7): "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
CT_INCLUSION = [  # (index, size, proof)
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]


def _hexes(values: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


def test_ct_vectors_roots_at_every_size() -> None:
    store, frontier = MemoryHashStore(), Frontier()
    assert tree_hash(store, 0) == frontier.root() == root_of([]) == EMPTY_ROOT == CT_ROOTS[0]
    for size, data in enumerate(CT_LEAVES, start=1):
        append_leaf(store, leaf_hash(data))
        frontier.append(leaf_hash(data))
        want = CT_ROOTS[size]
        assert tree_hash(store, size) == frontier.root() == want
        assert root_of([leaf_hash(item) for item in CT_LEAVES[:size]]) == want


def test_ct_vectors_every_node_is_stored_where_go_tlog_keeps_it() -> None:
    store = _store(CT_LEAVES)
    for (level, n), want in CT_NODES.items():
        assert store.read_hashes([stored_hash_index(level, n)]) == [bytes.fromhex(want)]
    assert len(store) == stored_hash_count(8) == len(CT_NODES)


@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_ct_vectors_inclusion(index: int, size: int, proof: list[str]) -> None:
    store = _store(CT_LEAVES)
    assert inclusion_proof(store, index, size) == _hexes(proof)
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, _hexes(proof),
                            CT_ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_ct_vectors_consistency(old: int, new: int, proof: list[str]) -> None:
    store = _store(CT_LEAVES)
    assert consistency_proof(store, old, new) == _hexes(proof)
    assert verify_consistency(old, new, CT_ROOTS[old], CT_ROOTS[new], _hexes(proof))


# -- hashing and roots ----------------------------------------------------------------------------


def test_ct_vectors_leaf_and_node_hashes() -> None:
    """The two hash functions alone, against the published hashes of the vectors' nodes."""
    nodes = {at: bytes.fromhex(h) for at, h in CT_NODES.items()}
    for n, data in enumerate(CT_LEAVES):
        assert leaf_hash(data) == nodes[(0, n)]
    for (level, n), want in nodes.items():
        if level:
            assert node_hash(nodes[(level - 1, 2 * n)], nodes[(level - 1, 2 * n + 1)]) == want


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == _sha(b"\x01" + b"L" * 32 + b"R" * 32)
    # a two-leaf tree's root is not the hash of the two leaves glued into one
    glued = leaf_hash(leaf_hash(b"a") + leaf_hash(b"b"))
    assert node_hash(leaf_hash(b"a"), leaf_hash(b"b")) != glued


def test_roots_agree_with_the_naive_mth_for_every_size_up_to_70() -> None:
    data = _data(70, seed=70)
    store, frontier = MemoryHashStore(), Frontier()
    for size in range(1, 71):
        append_leaf(store, leaf_hash(data[size - 1]))
        frontier.append(leaf_hash(data[size - 1]))
        want = naive_mth(data[:size])
        assert root_of([leaf_hash(item) for item in data[:size]]) == want
        assert tree_hash(store, size) == want
        assert frontier.root() == want
        assert frontier.size == size
        assert len(frontier.nodes) == bin(size).count("1")
        assert len(store) == stored_hash_count(size) == 2 * size - bin(size).count("1")
        assert stored_size(store) == size
    for size in range(71):  # earlier sizes stay readable from the grown store
        assert tree_hash(store, size) == naive_mth(data[:size])


def test_stored_hash_index_matches_go_tlog_ordering() -> None:
    # Appending leaf n writes its hash, then each subtree it completes, lowest first.
    order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4), (0, 5), (1, 2),
             (0, 6), (0, 7), (1, 3), (2, 1), (3, 0), (0, 8)]
    assert [stored_hash_index(level, n) for level, n in order] == list(range(len(order)))
    seen = {stored_hash_index(level, n) for level in range(12) for n in range(300)}
    assert len(seen) == 12 * 300  # one place per subtree
    with pytest.raises(ValueError, match="non-negative"):
        stored_hash_index(-1, 0)


def test_every_stored_node_is_the_subtree_hash() -> None:
    data = _data(45, seed=45)
    store = _store(data)
    for level in range(6):
        for n in range(45 >> level):
            lo, hi = n << level, (n + 1) << level
            assert store.read_hashes([stored_hash_index(level, n)]) == [naive_mth(data[lo:hi])]


# -- proofs against the definitions, and refused when tampered ------------------------------------


def _flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]


def _inclusion_tamperings(proof: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = []
    for i in range(len(proof)):
        out.append([*proof[:i], _flip(proof[i], i % 8), *proof[i + 1:]])
        out.append(proof[:i] + proof[i + 1:])  # a hash removed
    out.append([*proof, proof[0] if proof else EMPTY_ROOT])  # one too many
    out.append([EMPTY_ROOT, *proof])
    if len(proof) > 1:
        out.append([proof[1], proof[0], *proof[2:]])  # order swapped
    return [bad for bad in out if bad != proof]


def test_every_inclusion_proof_up_to_size_40_verifies_and_tampering_is_refused() -> None:
    data = _data(40, seed=40)
    store = _store(data)
    roots = [naive_mth(data[:size]) for size in range(41)]
    for size in range(1, 41):
        root = roots[size]
        for index in range(size):
            leaf = leaf_hash(data[index])
            proof = inclusion_proof(store, index, size)
            assert proof == naive_path(index, data[:size])
            assert verify_inclusion(leaf, index, size, proof, root)
            assert not verify_inclusion(leaf, index, size, proof, _flip(root))
            assert not verify_inclusion(_flip(leaf), index, size, proof, root)
            for bad in _inclusion_tamperings(proof):
                assert not verify_inclusion(leaf, index, size, bad, root), (index, size, bad)
            for other in range(size + 2):  # the same leaf claimed at another index
                if other != index and data[other % size] != data[index]:
                    assert not verify_inclusion(leaf, other, size, proof, root), (index, other)
            for other_size in (size - 1, size + 1, 2 * size):  # another tree's size and root
                if 0 < other_size <= 40:
                    other_root = roots[other_size]
                    assert not verify_inclusion(leaf, index, other_size, proof, other_root)
                # (the same root under another size may verify when the path has the same
                # shape, e.g. leaf 0 of 3 and of 4: the signed checkpoint binds size to root)


def test_every_consistency_proof_up_to_size_40_verifies_and_tampering_is_refused() -> None:
    data = _data(40, seed=41)
    store = _store(data)
    roots = [naive_mth(data[:size]) for size in range(41)]
    for new in range(1, 41):
        for old in range(new + 1):
            proof = consistency_proof(store, old, new)
            assert proof == ([] if old == 0 else naive_subproof(old, data[:new], True))
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)
            if old in (0, new):
                assert not verify_consistency(old, new, roots[old], roots[new], [EMPTY_ROOT])
                continue
            assert not verify_consistency(old, new, _flip(roots[old]), roots[new], proof)
            assert not verify_consistency(old, new, roots[old], _flip(roots[new]), proof)
            assert not verify_consistency(old, new, roots[new], roots[old], proof)
            assert not verify_consistency(old, new, roots[old], roots[new], [])
            for bad in _inclusion_tamperings(proof):
                assert not verify_consistency(old, new, roots[old], roots[new], bad), (old, new)
            for other_old in (old - 1, old + 1):
                if 0 < other_old < new:
                    assert not verify_consistency(other_old, new, roots[old], roots[new], proof)
                    assert not verify_consistency(
                        other_old, new, roots[other_old], roots[new], proof
                    )
            if new < 40:
                assert not verify_consistency(old, new + 1, roots[old], roots[new + 1], proof)


def test_consistency_refuses_a_different_log_with_the_same_sizes() -> None:
    ours, theirs = _data(30, seed=1), _data(30, seed=2)
    mine, other = _store(ours), _store(theirs)
    for old, new in [(1, 2), (3, 7), (8, 30), (13, 29)]:
        proof = consistency_proof(other, old, new)
        assert verify_consistency(old, new, tree_hash(other, old), tree_hash(other, new), proof)
        assert not verify_consistency(old, new, tree_hash(mine, old), tree_hash(other, new), proof)


def test_verifiers_refuse_malformed_inputs_rather_than_raise() -> None:
    data = _data(5)
    store = _store(data)
    root, proof = tree_hash(store, 5), inclusion_proof(store, 2, 5)
    leaf = leaf_hash(data[2])
    assert verify_inclusion(leaf, 2, 5, proof, root)
    assert not verify_inclusion(leaf, -1, 5, proof, root)
    assert not verify_inclusion(leaf, 5, 5, proof, root)
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(leaf[:31], 2, 5, proof, root)
    assert not verify_inclusion(leaf, 2, 5, [*proof[:-1], proof[-1] + b"\x00"], root)
    assert not verify_inclusion(leaf, 2, 5, proof, root[:16])
    assert verify_inclusion(leaf_hash(b"x"), 0, 1, [], leaf_hash(b"x"))
    assert not verify_inclusion(leaf_hash(b"x"), 0, 1, [leaf_hash(b"x")], leaf_hash(b"x"))
    assert not verify_consistency(3, 2, root, root, [])
    assert not verify_consistency(-1, 2, root, root, [])
    assert not verify_consistency(0, 5, root, root, [])  # the empty tree has EMPTY_ROOT
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(2, 5, root[:31], root, consistency_proof(store, 2, 5))


def test_proof_arguments_outside_the_stored_tree_raise() -> None:
    store = _store(_data(6))
    for call in (lambda: inclusion_proof(store, 6, 6), lambda: inclusion_proof(store, 0, 7),
                 lambda: inclusion_proof(store, -1, 3), lambda: consistency_proof(store, 4, 3),
                 lambda: consistency_proof(store, 2, 7), lambda: tree_hash(store, 7),
                 lambda: tree_hash(store, -1)):
        with pytest.raises(ValueError, match=r"size|leaf|proof"):
            call()


def test_randomized_large_trees() -> None:
    rng = random.Random(6962)
    data = _data(3000, seed=9162)
    store, frontier = MemoryHashStore(), Frontier()
    roots = {0: EMPTY_ROOT}
    for size, item in enumerate(data, start=1):
        append_leaf(store, leaf_hash(item))
        frontier.append(leaf_hash(item))
        roots[size] = frontier.root()
    assert roots[3000] == naive_mth(data)
    for _ in range(400):
        size = rng.randrange(1, 3001)
        index = rng.randrange(size)
        proof = inclusion_proof(store, index, size)
        assert tree_hash(store, size) == roots[size]
        assert verify_inclusion(leaf_hash(data[index]), index, size, proof, roots[size])
        bad = list(proof)
        if bad:
            bad[rng.randrange(len(bad))] = rng.randbytes(32)
            assert not verify_inclusion(leaf_hash(data[index]), index, size, bad, roots[size])
        old = rng.randrange(0, size + 1)
        proof = consistency_proof(store, old, size)
        assert verify_consistency(old, size, roots[old], roots[size], proof)
        if proof:
            bad = list(proof)
            bad[rng.randrange(len(bad))] = rng.randbytes(32)
            assert not verify_consistency(old, size, roots[old], roots[size], bad)


# -- the frontier ---------------------------------------------------------------------------------


def test_frontier_round_trips_through_json_and_resumes() -> None:
    data = _data(300, seed=3)
    frontier = Frontier()
    for size, item in enumerate(data, start=1):
        frontier.append(leaf_hash(item))
        text = json.dumps(frontier.to_json())
        again = Frontier.from_json(json.loads(text))
        assert again == frontier
        assert again.root() == frontier.root()
        assert again.size == size
        if size in (1, 2, 7, 64, 255):
            resumed = Frontier.from_json(json.loads(text))
            resumed.extend(leaf_hash(rest) for rest in data[size:])
            assert resumed.root() == naive_mth(data)
    assert len(json.dumps(frontier.to_json())) < 70 * 9  # O(log n): 4 nodes at 300 leaves


def test_frontier_agrees_with_the_stored_tree_and_can_be_read_from_it() -> None:
    data = _data(129, seed=4)
    store, frontier = _store(data), Frontier()
    for size in range(130):
        assert Frontier.from_store(store, size) == frontier
        assert frontier.root() == tree_hash(store, size)
        if size < 129:
            frontier.append(leaf_hash(data[size]))


def test_frontier_copy_is_independent() -> None:
    frontier = Frontier()
    frontier.extend(leaf_hash(item) for item in _data(5))
    twin = frontier.copy()
    frontier.append(leaf_hash(b"more"))
    assert (twin.size, frontier.size) == (5, 6)
    assert twin != frontier


@pytest.mark.parametrize("bad", [
    None, [], {"size": 1}, {"size": 1, "nodes": []}, {"size": -1, "nodes": []},
    {"size": True, "nodes": ["00" * 32]}, {"size": 1, "nodes": ["00" * 31]},
    {"size": 1, "nodes": ["zz" * 32]}, {"size": 3, "nodes": ["00" * 32]},
    {"size": 0, "nodes": [], "extra": 1}, {"size": "1", "nodes": ["00" * 32]},
    {"size": 1, "nodes": [1]}, {"size": 1, "nodes": ["00" * 31 + "  "]},
    {"size": 1, "nodes": [" " + "00" * 31 + "0"]},
])
def test_frontier_refuses_malformed_json(bad: object) -> None:
    with pytest.raises(ValueError, match="frontier"):
        Frontier.from_json(bad)


def test_frontier_refuses_a_leaf_that_is_not_a_hash() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Frontier().append(b"short")


# -- the stores -----------------------------------------------------------------------------------


def _file_store(path: Path, buffer_bytes: int = 1 << 16) -> FileHashStore:
    return FileHashStore(path, buffer_bytes=buffer_bytes)


@pytest.mark.parametrize("buffer_bytes", [32, 1000, 1 << 16])
def test_file_store_holds_what_the_memory_store_holds(tmp_path: Path, buffer_bytes: int) -> None:
    data = _data(257, seed=5)
    memory = MemoryHashStore()
    with _file_store(tmp_path / "hashes", buffer_bytes) as file:
        for size, item in enumerate(data, start=1):
            assert append_leaf(memory, leaf_hash(item)) == append_leaf(file, leaf_hash(item))
            if size % 37 == 0 or size < 9:
                every = list(range(len(memory)))
                assert file.read_hashes(every) == memory.read_hashes(every)
                assert tree_hash(file, size) == tree_hash(memory, size)
    assert (tmp_path / "hashes").stat().st_size == 32 * stored_hash_count(257)
    with _file_store(tmp_path / "hashes") as file:  # reopened: everything is still there
        assert stored_size(file) == 257
        every = list(range(len(memory)))
        assert file.read_hashes(every) == memory.read_hashes(every)
        for size, index in [(1, 0), (100, 37), (257, 256), (256, 0)]:
            assert inclusion_proof(file, index, size) == inclusion_proof(memory, index, size)
            assert consistency_proof(file, index + 1, size) == consistency_proof(
                memory, index + 1, size
            )


def test_file_store_drops_a_torn_tail_and_can_be_truncated_and_refilled(tmp_path: Path) -> None:
    data = _data(20, seed=6)
    path = tmp_path / "hashes"
    with _file_store(path) as file:
        for item in data:
            append_leaf(file, leaf_hash(item))
    whole = path.read_bytes()
    # leaf 19 stores 3 hashes (itself and two subtrees); half of them, and a partial record
    path.write_bytes(whole[: 32 * stored_hash_count(19) + 32 + 7])
    with _file_store(path) as file:
        assert stored_size(file) == 19
        append_leaf(file, leaf_hash(data[19]))
    assert path.read_bytes() == whole
    with _file_store(path) as file:
        file.truncate(11)
        assert stored_size(file) == 11
        assert tree_hash(file, 11) == naive_mth(data[:11])
        for item in data[11:]:
            append_leaf(file, leaf_hash(item))
        assert tree_hash(file, 20) == naive_mth(data)
        with pytest.raises(ValueError, match="outside"):
            file.truncate(21)
    assert path.read_bytes() == whole


def _everything(store: HashStore) -> list[bytes]:
    return store.read_hashes(range(len(store)))


def test_append_leaves_stores_what_append_leaf_stores_and_resumes(tmp_path: Path) -> None:
    data = _data(1000, seed=7)
    one_by_one = _store(data)
    many = MemoryHashStore()
    assert append_leaves(many, (leaf_hash(item) for item in data[:333]), batch=7) == 333
    assert append_leaves(many, [leaf_hash(item) for item in data[333:]]) == 1000
    assert append_leaves(many, []) == 1000
    assert _everything(many) == _everything(one_by_one)
    with _file_store(tmp_path / "hashes", buffer_bytes=100) as file:
        append_leaf(file, leaf_hash(data[0]))
        assert append_leaves(file, [leaf_hash(item) for item in data[1:]], batch=64) == 1000
        assert _everything(file) == _everything(one_by_one)


def test_a_frontier_kept_beside_a_store_feeds_it_without_reads() -> None:
    data = _data(100, seed=8)
    store, frontier = MemoryHashStore(), Frontier()
    for item in data:
        store.append_hashes(frontier.append(leaf_hash(item)))
    assert _everything(store) == _everything(_store(data))
    assert frontier.root() == tree_hash(store, 100)


def test_stores_refuse_reads_past_the_end_and_hashes_of_the_wrong_size(tmp_path: Path) -> None:
    stores: list[Callable[[], HashStore]] = [MemoryHashStore, lambda: _file_store(tmp_path / "h")]
    for make in stores:
        store = make()
        append_leaf(store, leaf_hash(b"a"))
        with pytest.raises(IndexError):
            store.read_hashes([1])
        with pytest.raises(IndexError):
            store.read_hashes([-1])
        with pytest.raises(ValueError, match="32 bytes"):
            store.append_hashes([b"x" * 31])


def test_a_torn_memory_store_is_reported() -> None:
    store = _store(_data(3))  # leaf 3 would store 3 hashes; give it one
    store.append_hashes([leaf_hash(b"half")])
    with pytest.raises(ValueError, match="torn"):
        stored_size(store)
    with pytest.raises(ValueError, match="torn"):
        append_leaf(store, leaf_hash(b"next"))


# -- the sparse store: a frontier and what followed it -------------------------------------------


def test_a_sparse_store_proves_consistency_and_roots_from_a_frontier_alone() -> None:
    data = _data(40, seed=11)
    full = _store(data)
    for old in range(41):
        frontier = Frontier()
        frontier.extend(leaf_hash(item) for item in data[:old])
        # as a runner keeps it: the published checkpoint's frontier, through JSON
        sparse = SparseHashStore(Frontier.from_json(json.loads(json.dumps(frontier.to_json()))))
        assert len(sparse) == stored_hash_count(old)
        assert stored_size(sparse) == old
        assert tree_hash(sparse, old) == naive_mth(data[:old])
        for new in range(old, 41):
            if new > old:
                append_leaf(sparse, leaf_hash(data[new - 1]))
            assert stored_size(sparse) == new
            assert tree_hash(sparse, new) == tree_hash(full, new)
            if old:
                proof = consistency_proof(sparse, old, new)
                assert proof == consistency_proof(full, old, new) == (
                    naive_subproof(old, data[:new], True))
                assert verify_consistency(old, new, naive_mth(data[:old]),
                                          naive_mth(data[:new]), proof)


def test_a_sparse_store_holds_nothing_before_the_frontier_and_says_so() -> None:
    data = _data(13, seed=12)
    frontier = Frontier()
    frontier.extend(leaf_hash(item) for item in data[:5])  # subtrees [0, 4) and [4, 5)
    sparse = SparseHashStore(frontier)
    append_leaves(sparse, [leaf_hash(item) for item in data[5:]])
    assert inclusion_proof(sparse, 12, 13) == inclusion_proof(_store(data), 12, 13)
    with pytest.raises(IndexError, match="not held by this sparse store"):
        inclusion_proof(sparse, 0, 13)  # needs leaf 1's hash: inside the frontier's subtree
    with pytest.raises(IndexError, match="not held by this sparse store"):
        sparse.read_hashes([stored_hash_index(0, 0)])
    with pytest.raises(ValueError, match="32 bytes"):
        sparse.append_hashes([b"short"])


def test_a_sparse_store_of_the_empty_tree_is_a_store_of_everything() -> None:
    data = _data(9, seed=13)
    sparse = SparseHashStore(Frontier())
    append_leaves(sparse, [leaf_hash(item) for item in data])
    assert _everything(sparse) == _everything(_store(data))


# -- cost at a million leaves ---------------------------------------------------------------------


def test_proofs_at_a_million_leaves_read_only_a_few_hashes_and_take_well_under_50_ms(
    tmp_path: Path,
) -> None:
    """Timing only: a file of 2 M random records is laid out like a million-leaf store (building
    real hashes would take the test seconds), so the reads and the arithmetic are the real ones."""
    size = 1_000_003
    path = tmp_path / "hashes"
    path.write_bytes(os.urandom(32 * stored_hash_count(size)))
    rng = random.Random(50)
    with _file_store(path) as file:
        assert stored_size(file) == size
        reads: list[int] = []
        original = file.read_hashes

        def counting(indexes: Sequence[int]) -> list[bytes]:
            reads.append(len(indexes))
            return original(indexes)

        file.read_hashes = counting  # type: ignore[method-assign]
        timings = []
        for _ in range(200):
            index, old = rng.randrange(size), rng.randrange(1, size)
            start = time.perf_counter()
            inclusion = inclusion_proof(file, index, size)
            consistency = consistency_proof(file, old, size)
            tree_hash(file, size)
            timings.append(time.perf_counter() - start)
            assert 19 <= len(inclusion) <= 20  # ceil(log2(size)) hashes: at most 640 bytes
            assert len(consistency) <= 2 * 20
        assert max(reads) <= 2 * 20 + 1
        assert statistics.median(timings) < 0.050 / 3, timings
    assert merkle.HASH_SIZE == 32
