"""Python-made checkpoints and proofs, judged by Go's checksum-database code (tlog_verify/).

What the runner signs and proves must pass a verifier written by people who never saw this
project, and that verifier must refuse every forgery the Python one refuses. Where they
disagree, the Python side is wrong.
"""

from __future__ import annotations

import base64
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flamingock_es.core.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    append_leaf,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from flamingock_es.core.note import (
    Checkpoint,
    CosignatureSigner,
    Note,
    NoteError,
    NoteSigner,
    Signature,
    Verifier,
    open_checkpoint,
    sign_note,
)
from tests.interop import tlog_verify
from tests.interop.tlog_verify import Verdict, VerifierBuildError

ORIGIN = "example.org/flamingock/shop"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Log:
    """A log of random events, its stored hashes and the runner key that signs its heads."""

    signer: NoteSigner
    seed: int
    events: list[bytes] = field(default_factory=list)
    store: MemoryHashStore = field(default_factory=MemoryHashStore)

    def grow(self, size: int) -> Log:
        rng = random.Random(self.seed * 1_000_003 + len(self.events))
        while len(self.events) < size:
            event = rng.randbytes(rng.randrange(1, 200))
            self.events.append(event)
            append_leaf(self.store, leaf_hash(event))
        return self

    def checkpoint(self, size: int, extensions: tuple[str, ...] = ()) -> Checkpoint:
        return Checkpoint(ORIGIN, size, tree_hash(self.store, size), extensions)

    def signed(self, size: int, signer: NoteSigner | None = None) -> str:
        return sign_note(self.checkpoint(size).body(), [signer or self.signer])

    def bundle(self, index: int, size: int, old_size: int | None = None) -> dict[str, object]:
        out: dict[str, object] = {
            "verifier_keys": [self.signer.vkey],
            "origin": ORIGIN,
            "checkpoint": self.signed(size),
            "leaf": {"index": index, "data": _b64(self.events[index])},
            "inclusion_proof": [_b64(h) for h in inclusion_proof(self.store, index, size)],
        }
        if old_size is not None:
            out["old_checkpoint"] = self.signed(old_size)
            out["consistency_proof"] = [
                _b64(h) for h in consistency_proof(self.store, old_size, size)
            ]
        return out


def _runner(name: str = ORIGIN) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


def _log(size: int, seed: int = 1, signer: NoteSigner | None = None) -> Log:
    return Log(signer or _runner(), seed).grow(size)


def python_verdict(bundle: dict[str, object]) -> bool:
    """The same checks through flamingock_es.core: what Go says must be what this says."""
    keys = [Verifier.from_vkey(vkey) for vkey in _strings(bundle["verifier_keys"])]
    try:
        current = open_checkpoint(str(bundle["checkpoint"]), keys, origin=ORIGIN)
        old = None
        if "old_checkpoint" in bundle:
            old = open_checkpoint(str(bundle["old_checkpoint"]), keys, origin=current.origin)
    except NoteError:
        return False
    leaf = bundle["leaf"]
    assert isinstance(leaf, dict)
    proof = [base64.b64decode(h) for h in _strings(bundle["inclusion_proof"])]
    hashed = leaf_hash(base64.b64decode(leaf["data"])) if "data" in leaf else b""
    if "hash" in leaf:
        given = base64.b64decode(leaf["hash"])
        if "data" in leaf and given != hashed:
            return False
        hashed = given
    if not verify_inclusion(hashed, leaf["index"], current.size, proof, current.root_hash):
        return False
    if old is None:
        return True
    steps = [base64.b64decode(h) for h in _strings(bundle["consistency_proof"])]
    return verify_consistency(old.size, current.size, old.root_hash, current.root_hash, steps)


def _strings(value: object) -> list[str]:
    assert isinstance(value, list)
    return [str(item) for item in value]


def judged(bundle: dict[str, object]) -> Verdict:
    """Go's verdict on ``bundle``, after checking Python reaches the same one."""
    verdict = tlog_verify.run(bundle)
    assert verdict.returncode in (0, 1), verdict  # 2 would be a bundle this test built wrong
    assert verdict.ok == python_verdict(bundle), (verdict, bundle)
    return verdict


def accepted(bundle: dict[str, object]) -> Verdict:
    verdict = judged(bundle)
    assert verdict.ok, verdict.stderr
    return verdict


def refused(bundle: dict[str, object], reason: str) -> Verdict:
    verdict = judged(bundle)
    assert not verdict.ok, verdict.stdout
    assert reason in verdict.stderr, verdict.stderr
    return verdict


@pytest.fixture(scope="module")
def big() -> Log:
    return _log(1000, seed=1000)


# -- what Go accepts -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_go_accepts_python_checkpoints_and_inclusion_proofs(size: int, big: Log) -> None:
    log = big if size == 1000 else _log(size, seed=size)
    rng = random.Random(size)
    for index in sorted({0, size // 2, size - 1, rng.randrange(size)}):
        verdict = accepted(log.bundle(index, size))
        root = _b64(tree_hash(log.store, size))
        assert verdict.checks == [
            f"ok signature checkpoint: {ORIGIN}+{log.signer.verifier.key_id.hex()}",
            f"ok checkpoint origin={ORIGIN} size={size} root={root}",
            f"ok inclusion index={index} size={size} leaf={_b64(leaf_hash(log.events[index]))}",
        ]


def test_go_accepts_every_leaf_of_a_small_tree_at_every_size() -> None:
    log = _log(9, seed=9)
    for size in range(1, 10):
        for index in range(size):
            accepted(log.bundle(index, size))


@pytest.mark.parametrize(("old", "new"), [(1, 2), (1, 7), (2, 7), (7, 1000), (512, 1000),
                                          (999, 1000), (1000, 1000), (0, 7)])
def test_go_accepts_python_consistency_proofs(old: int, new: int, big: Log) -> None:
    log = big if new == 1000 else _log(new, seed=new)
    verdict = accepted(log.bundle(new - 1, new, old_size=old))
    assert verdict.checks[-1] == f"ok consistency old_size={old} new_size={new}"
    assert f"ok signature old checkpoint: {ORIGIN}+" in verdict.stdout


def test_go_accepts_a_leaf_given_by_its_hash_and_extension_lines(big: Log) -> None:
    bundle = big.bundle(123, 1000)
    bundle["leaf"] = {"index": 123, "hash": _b64(leaf_hash(big.events[123]))}
    accepted(bundle)
    bundle["leaf"] = {"index": 123, "data": _b64(big.events[123]),
                      "hash": _b64(leaf_hash(big.events[123]))}
    accepted(bundle)
    bundle["checkpoint"] = sign_note(big.checkpoint(1000, ("runner shop-7", "x")).body(),
                                     [big.signer])
    accepted(bundle)


def test_go_accepts_several_signers_and_ignores_a_witness_cosignature(big: Log) -> None:
    other = _runner("example.org/flamingock/second-runner")
    witness = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())
    checkpoint = big.checkpoint(1000)
    note = Note.parse(sign_note(checkpoint.body(), [big.signer, other]))
    cosigned = str(note.with_signatures([witness.cosign(checkpoint, 1_750_000_000)]))
    bundle = big.bundle(5, 1000)
    bundle["checkpoint"] = cosigned
    bundle["verifier_keys"] = [big.signer.vkey, other.vkey]
    verdict = accepted(bundle)
    assert len([line for line in verdict.checks if line.startswith("ok signature")]) == 2
    bundle["verifier_keys"] = [other.vkey]  # any one trusted signer suffices
    accepted(bundle)


# -- what Go refuses -------------------------------------------------------------------------------


def _flip(encoded: str, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[len(raw) // 2] ^= 1 << bit
    return _b64(bytes(raw))


@pytest.mark.parametrize("size", [2, 7, 1000])
def test_go_refuses_a_tampered_inclusion_proof(size: int, big: Log) -> None:
    log = big if size == 1000 else _log(size, seed=size)
    good = log.bundle(1, size)
    proof = _strings(good["inclusion_proof"])
    for position in range(len(proof)):
        refused(good | {"inclusion_proof": [
            _flip(h, position % 8) if i == position else h for i, h in enumerate(proof)
        ]}, "inclusion of leaf 1")
    refused(good | {"inclusion_proof": proof[:-1]}, "inclusion")
    refused(good | {"inclusion_proof": [*proof, proof[0]]}, "inclusion")
    refused(good | {"inclusion_proof": proof[::-1]} if len(proof) > 1 else
            good | {"inclusion_proof": [_b64(EMPTY_ROOT)]}, "inclusion")


def test_go_refuses_a_tampered_root(big: Log) -> None:
    good = big.bundle(17, 1000)
    # the runner's key signed a root that is not the tree's: the signature holds, the proof not
    wrong_root = Checkpoint(ORIGIN, 1000, tree_hash(big.store, 999))
    refused(good | {"checkpoint": sign_note(wrong_root.body(), [big.signer])}, "inclusion")
    # the root changed after signing: the signature no longer holds
    note = Note.parse(str(good["checkpoint"]))
    forged = Checkpoint(ORIGIN, 1000, bytes(32)).body()
    refused(good | {"checkpoint": str(Note(forged, note.signatures))}, "signature")
    # the size changed after signing
    resized = Checkpoint(ORIGIN, 999, tree_hash(big.store, 1000)).body()
    refused(good | {"checkpoint": str(Note(resized, note.signatures))}, "signature")


def test_go_refuses_a_wrong_index_or_leaf(big: Log) -> None:
    good = big.bundle(17, 1000)
    for index in (16, 18, 17 ^ 2, 999, 1000, 1001):
        refused(good | {"leaf": {"index": index, "data": _b64(big.events[17])}}, "leaf")
    refused(good | {"leaf": {"index": 17, "data": _b64(big.events[17] + b"!")}}, "inclusion")
    refused(good | {"leaf": {"index": 17, "data": _b64(big.events[17]),
                             "hash": _b64(leaf_hash(big.events[18]))}}, "leaf.hash")


def test_go_refuses_a_signature_by_another_key(big: Log) -> None:
    good = big.bundle(3, 1000)
    stranger = _runner()  # same name, another key: another key ID, an unknown signer
    refused(good | {"checkpoint": big.signed(1000, stranger)}, "signature")
    refused(good | {"verifier_keys": [stranger.vkey]}, "signature")
    impostor = _runner("example.org/impostor")
    refused(good | {"checkpoint": big.signed(1000, impostor)}, "signature")
    # one trusted key's bad signature rejects the note, though another trusted key's holds
    second = _runner("example.org/flamingock/second-runner")
    note = Note.parse(sign_note(big.checkpoint(1000).body(), [big.signer, second]))
    mine, theirs = note.signatures
    bad = Signature(mine.name, mine.key_id, bytes(64))
    both = [big.signer.vkey, second.vkey]
    accepted(good | {"checkpoint": str(note), "verifier_keys": both})
    refused(good | {"checkpoint": str(Note(note.text, (bad, theirs))), "verifier_keys": both},
            "invalid signature")


def test_go_refuses_a_checkpoint_of_another_origin(big: Log) -> None:
    good = big.bundle(3, 1000)
    other = Checkpoint("example.org/elsewhere", 1000, tree_hash(big.store, 1000))
    refused(good | {"checkpoint": sign_note(other.body(), [big.signer])}, "origin")


def test_go_refuses_an_inconsistent_old_checkpoint(big: Log) -> None:
    """Two different logs at the same origin, signed by the same key: a split view."""
    fork = _log(1000, seed=2000, signer=big.signer)
    good = big.bundle(999, 1000, old_size=7)
    for old_size in (1, 7, 512, 999):
        assert not verify_consistency(
            old_size, 1000, tree_hash(fork.store, old_size), tree_hash(big.store, 1000),
            consistency_proof(big.store, old_size, 1000),
        )
        refused(good | {
            "old_checkpoint": fork.signed(old_size),
            "consistency_proof": [_b64(h) for h in consistency_proof(big.store, old_size, 1000)],
        }, f"consistency of size {old_size}")
    # the fork's own proof does not bridge to our head either
    refused(good | {"consistency_proof": [
        _b64(h) for h in consistency_proof(fork.store, 7, 1000)
    ]}, "consistency")
    # same size, different roots
    refused(good | {"old_checkpoint": fork.signed(1000), "consistency_proof": []}, "consistency")
    # an old checkpoint larger than the new one
    refused(big.bundle(1, 7, old_size=7) | {"old_checkpoint": big.signed(8)}, "larger")
    # an empty old tree must have the empty tree's root
    empty_lie = sign_note(Checkpoint(ORIGIN, 0, tree_hash(big.store, 1)).body(), [big.signer])
    refused(good | {"old_checkpoint": empty_lie, "consistency_proof": []}, "empty old tree")


def test_go_refuses_a_tampered_consistency_proof(big: Log) -> None:
    good = big.bundle(999, 1000, old_size=300)
    proof = _strings(good["consistency_proof"])
    for position in range(len(proof)):
        refused(good | {"consistency_proof": [
            _flip(h) if i == position else h for i, h in enumerate(proof)
        ]}, "consistency")
    refused(good | {"consistency_proof": proof[:-1]}, "consistency")
    refused(good | {"consistency_proof": []}, "consistency")


# -- the helper ------------------------------------------------------------------------------------


def test_a_build_failure_raises_with_gos_output(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "src"
    shutil.copytree(tlog_verify.SOURCE, broken)
    main = broken / "main.go"
    main.write_text(main.read_text() + "\nfunc broken( {\n")
    monkeypatch.setenv("FLAMINGOCK_CACHE", str(tmp_path / "cache"))
    with pytest.raises(VerifierBuildError, match=r"go build in .* failed \(exit 1\)"):
        tlog_verify.build(broken)
    assert not list((tmp_path / "cache").glob("*/tlog-verify"))


def test_the_build_is_cached_by_source_hash() -> None:
    binary = tlog_verify.build()
    assert binary.parent == tlog_verify.cache_dir()
    assert binary.parent.name.startswith("tlog-verify-")
    assert tlog_verify.build() == binary


def test_a_malformed_bundle_is_an_error_not_a_verdict(big: Log) -> None:
    good = big.bundle(0, 1000)
    for bad in ({**good, "surprise": 1}, {k: v for k, v in good.items() if k != "leaf"},
                {**good, "old_checkpoint": good["checkpoint"]}):
        verdict = tlog_verify.run(bad)
        assert verdict.returncode == 2, verdict
        assert verdict.stderr.startswith("FAIL: bundle:")
