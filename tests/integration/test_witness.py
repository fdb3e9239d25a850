"""The witness client against a real witness: litewitness (filippo.io/torchwood).

The module's fixture starts its own litewitness with ``scripts/services up --with witness
witness`` in a services dir of its own (FLAMINGOCK_SERVICES_DIR under pytest's tmp dir, on a
free port), so the suite's services and a developer's witness are not touched; the first run
builds litewitness from the Go module proxy (about two minutes), later runs take it from the
cache. If it cannot be built or started, every test here fails with the script's output.

Each test registers logs of its own (a unique origin) with ``scripts/services
witness-add-log``, so the tests are independent and can run in any order.

What is shown: a checkpoint is cosigned, and a later one with a valid consistency proof; the
cosignature verifies with the witness's published verifier key (c2sp.org/tlog-cosignature,
Ed25519: ``cosignature/v1\\ntime <t>\\n`` + checkpoint body) and fails for another body; a
forked history (a second log under the same origin and key) is refused with 422 and leaves
the witness where it was; a stale old size is refused with 409 carrying the witness's size.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from flamingock_es.adapters.witness import (
    WitnessBadRequestError,
    WitnessConflictError,
    WitnessForbiddenError,
    WitnessInconsistentError,
    WitnessNotTrustedError,
    WitnessUnreachableError,
    add_checkpoint_body,
    submit,
)

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"
# A first build compiles litewitness and its pure-Go SQLite (~2 minutes on 2 cores).
BUILD_TIMEOUT = 900


# --------------------------------------------------------------------------------------------
# Test scaffolding, not product code: the least of RFC 6962 and of c2sp.org/signed-note that
# these tests need to play a log. flamingock_es.core.merkle and flamingock_es.core.note are the
# real implementations (written elsewhere); nothing here is imported by the package.
# --------------------------------------------------------------------------------------------

def _leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962, section 2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (RFC 6962, section 2.1)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node_hash(_root(leaves[:k]), _root(leaves[k:]))


def _subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962, section 2.1.2."""
    n = len(leaves)
    if m == n:
        return [] if complete else [_root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), _root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _root(leaves[:k])]


def _consistency_proof(old_size: int, leaves: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the tree of the first ``old_size`` leaves is a prefix of ``leaves``."""
    assert 0 < old_size <= len(leaves)
    return _subproof(old_size, leaves, True)


class _Log:
    """A toy log: entries, an origin and an Ed25519 note key named after the origin."""

    def __init__(self, origin: str, key: Ed25519PrivateKey, entries: list[bytes]) -> None:
        self.origin = origin
        self.key = key
        self.leaves = [_leaf_hash(entry) for entry in entries]

    @property
    def vkey(self) -> str:
        """The signed-note verifier key: NAME+hex(key id)+base64(0x01 || public key)."""
        material = b"\x01" + self.key.public_key().public_bytes_raw()
        key_id = hashlib.sha256(self.origin.encode() + b"\n" + material).digest()[:4]
        return f"{self.origin}+{key_id.hex()}+{base64.b64encode(material).decode()}"

    def body(self, size: int) -> bytes:
        """The checkpoint text (c2sp.org/tlog-checkpoint) of the first ``size`` entries."""
        root = base64.b64encode(_root(self.leaves[:size])).decode()
        return f"{self.origin}\n{size}\n{root}\n".encode()

    def checkpoint(self, size: int, signer: Ed25519PrivateKey | None = None) -> bytes:
        """The checkpoint, signed (signed-note: key id || Ed25519 signature over the text)."""
        text = self.body(size)
        key = signer or self.key
        material = b"\x01" + key.public_key().public_bytes_raw()
        key_id = hashlib.sha256(self.origin.encode() + b"\n" + material).digest()[:4]
        signature = base64.b64encode(key_id + key.sign(text)).decode()
        return text + f"\n\u2014 {self.origin} {signature}\n".encode()

    def proof(self, old_size: int, size: int) -> list[bytes]:
        return _consistency_proof(old_size, self.leaves[:size]) if old_size else []


@dataclass(frozen=True)
class _Cosignature:
    timestamp: int


def _verify_cosignature(vkey: str, body: bytes, line: str) -> _Cosignature:
    """Check a witness's signature line as an outsider would, from its vkey alone
    (c2sp.org/tlog-cosignature, Ed25519): raises AssertionError or InvalidSignature."""
    name, key_hash_hex, material_b64 = vkey.split("+", 2)
    material = base64.b64decode(material_b64, validate=True)
    assert material[:1] == b"\x04", f"{vkey} is not a cosignature/v1 (Ed25519) key"
    assert len(material) == 33, f"{vkey} does not hold a 32-byte Ed25519 key"
    key_hash = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    assert key_hash.hex() == key_hash_hex, f"the key id of {vkey} is not its key's"
    dash, line_name, payload_b64 = line.split(" ")
    assert dash == "\u2014", f"{line!r} is not a note signature line"
    assert line_name == name, f"{line!r} is not a signature by {name}"
    payload = base64.b64decode(payload_b64, validate=True)
    assert len(payload) == 4 + 8 + 64, f"{line!r} is not a timestamped Ed25519 cosignature"
    assert payload[:4] == key_hash, f"{line!r} is by another key than {vkey}"
    (timestamp,) = struct.unpack(">Q", payload[4:12])
    message = b"cosignature/v1\ntime %d\n" % timestamp + body
    Ed25519PublicKey.from_public_bytes(material[1:]).verify(payload[12:], message)
    return _Cosignature(timestamp)


# --------------------------------------------------------------------------------------------
# The witness, started by scripts/services in a services dir of this module's own.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Witness:
    url: str
    vkey: str
    env: dict[str, str]

    def add_log(self, log: _Log) -> None:
        _run(self.env, "witness-add-log", log.origin, log.vkey)


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run([str(SERVICES), *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/services {' '.join(args)} failed ({done.returncode}):\n"
                    f"{done.stderr[-4000:]}{done.stdout[-2000:]}", pytrace=False)
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def witness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Witness]:
    state = tmp_path_factory.mktemp("witness-services")
    env = {**os.environ, "FLAMINGOCK_SERVICES_DIR": str(state),
           "FLAMINGOCK_WITNESS_PORT": str(_free_port())}
    pidfiles = [state / "witness" / "pid", state / "witness" / "agent.pid"]
    started: list[str] = []
    try:
        _run(env, "up", "--with", "witness", "witness", timeout=BUILD_TIMEOUT)
        started = [path.read_text().split()[0] for path in pidfiles]
        exported = {}
        for line in _run(env, "env").splitlines():
            word, _, assignment = line.partition(" ")
            name, _, value = assignment.partition("=")
            if word == "export" and name.startswith("FLAMINGOCK_WITNESS_"):
                exported[name] = shlex.split(value)[0]
        if "FLAMINGOCK_WITNESS_VKEY" not in exported:
            pytest.fail("scripts/services env printed no FLAMINGOCK_WITNESS_VKEY after "
                        "'up --with witness'", pytrace=False)
        yield _Witness(exported["FLAMINGOCK_WITNESS_URL"], exported["FLAMINGOCK_WITNESS_VKEY"],
                       env)
    finally:
        _run(env, "down")
        # 'down' stopped the witness and its ssh-agent (the processes it started first).
        for pid in started:
            stat = Path(f"/proc/{pid}/stat")
            assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", \
                f"process {pid} that 'up --with witness' started outlived 'down'"


def _new_log(entries: int, origin: str | None = None,
             key: Ed25519PrivateKey | None = None, tag: bytes = b"a") -> _Log:
    origin = origin or f"flamingock-es.test/witness-{uuid.uuid4().hex[:12]}"
    return _Log(origin, key or Ed25519PrivateKey.generate(),
                [b"entry %d of log %s" % (i, tag) for i in range(entries)])


def _cosign(witness: _Witness, log: _Log, old_size: int, size: int) -> list[str]:
    return submit(witness.url, log.checkpoint(size), old_size, log.proof(old_size, size),
                  timeout=10)


# --------------------------------------------------------------------------------------------

def test_a_first_checkpoint_is_cosigned(witness: _Witness) -> None:
    log = _new_log(1)
    witness.add_log(log)
    before = int(time.time())
    lines = _cosign(witness, log, 0, 1)
    assert len(lines) == 1, lines
    cosignature = _verify_cosignature(witness.vkey, log.body(1), lines[0])
    assert before - 5 <= cosignature.timestamp <= time.time() + 5


def test_a_later_checkpoint_with_a_consistency_proof_is_cosigned(witness: _Witness) -> None:
    log = _new_log(7)
    witness.add_log(log)
    _cosign(witness, log, 0, 1)
    lines = _cosign(witness, log, 1, 5)
    _verify_cosignature(witness.vkey, log.body(5), lines[0])
    lines = _cosign(witness, log, 5, 7)
    _verify_cosignature(witness.vkey, log.body(7), lines[0])


def test_a_cosignature_does_not_verify_for_another_checkpoint(witness: _Witness) -> None:
    """The outsider's check can fail: the same line over another body, or by another key."""
    log = _new_log(3)
    witness.add_log(log)
    line = _cosign(witness, log, 0, 3)[0]
    with pytest.raises(InvalidSignature):
        _verify_cosignature(witness.vkey, log.body(2), line)
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    name = witness.vkey.split("+", 1)[0]
    material = b"\x04" + other
    key_id = hashlib.sha256(name.encode() + b"\n" + material).hexdigest()[:8]
    impostor = f"{name}+{key_id}+{base64.b64encode(material).decode()}"
    with pytest.raises(AssertionError, match="by another key"):
        _verify_cosignature(impostor, log.body(3), line)


def test_a_forked_history_is_refused(witness: _Witness) -> None:
    """Two histories under one origin and one key: once the witness cosigned A at size 4, B's
    checkpoint at size 6 (whose first entries differ from A's) cannot be proven to extend it,
    and is refused with 422, at B's own size 4 too; the witness stays at A's size 4."""
    key = Ed25519PrivateKey.generate()
    log_a = _new_log(8, key=key, tag=b"A")
    log_b = _new_log(8, origin=log_a.origin, key=key, tag=b"B")
    witness.add_log(log_a)
    _cosign(witness, log_a, 0, 4)
    with pytest.raises(WitnessInconsistentError) as refused:
        _cosign(witness, log_b, 4, 6)  # B's own proof from its size 4: valid in B's tree only
    assert refused.value.status == 422
    assert "forked" in str(refused.value)
    with pytest.raises(WitnessInconsistentError):
        _cosign(witness, log_b, 4, 4)  # same size, another root
    with pytest.raises(WitnessConflictError) as conflict:
        _cosign(witness, log_b, 0, 6)  # starting over from nothing is no way around it
    assert conflict.value.witness_size == 4
    lines = _cosign(witness, log_a, 4, 8)  # A goes on: the refusals did not move the witness
    _verify_cosignature(witness.vkey, log_a.body(8), lines[0])
    # B's proof was a valid proof of B's own growth: under an origin of its own, B's entries
    # at size 4 and then 6 with that very proof are cosigned. Only the fork was refused.
    log_c = _Log(f"{log_a.origin}-c", key, [])
    log_c.leaves = log_b.leaves
    witness.add_log(log_c)
    _cosign(witness, log_c, 0, 4)
    assert log_c.proof(4, 6) == log_b.proof(4, 6)
    _cosign(witness, log_c, 4, 6)


def test_a_stale_old_size_is_refused_with_the_witness_size(witness: _Witness) -> None:
    log = _new_log(6)
    witness.add_log(log)
    _cosign(witness, log, 0, 2)
    _cosign(witness, log, 2, 5)
    with pytest.raises(WitnessConflictError) as conflict:
        _cosign(witness, log, 2, 6)  # the client thinks the witness is still at 2
    assert conflict.value.witness_size == 5
    assert conflict.value.status == 409
    # What the error says to do works: resubmit from the witness's size.
    lines = _cosign(witness, log, conflict.value.witness_size, 6)
    _verify_cosignature(witness.vkey, log.body(6), lines[0])


def test_an_older_checkpoint_than_the_witness_has_is_refused(witness: _Witness) -> None:
    """Rolling the witness back: old size 5 (right) with a checkpoint of size 3 is a 400;
    the honest old size 5 with that checkpoint's own size 3 as the old size is a 409."""
    log = _new_log(5)
    witness.add_log(log)
    _cosign(witness, log, 0, 5)
    with pytest.raises(WitnessBadRequestError) as bad:
        submit(witness.url, log.checkpoint(3), 5, [], timeout=10)
    assert bad.value.status == 400
    with pytest.raises(WitnessConflictError) as conflict:
        submit(witness.url, log.checkpoint(3), 3, [], timeout=10)
    assert conflict.value.witness_size == 5


def test_a_bad_consistency_proof_is_refused(witness: _Witness) -> None:
    log = _new_log(4)
    witness.add_log(log)
    _cosign(witness, log, 0, 2)
    proof = log.proof(2, 4)
    proof[0] = hashlib.sha256(b"not a node of this tree").digest()
    with pytest.raises(WitnessInconsistentError):
        submit(witness.url, log.checkpoint(4), 2, proof, timeout=10)


def test_a_checkpoint_signed_by_another_key_is_refused(witness: _Witness) -> None:
    log = _new_log(2)
    witness.add_log(log)
    with pytest.raises(WitnessForbiddenError) as forbidden:
        submit(witness.url, log.checkpoint(2, signer=Ed25519PrivateKey.generate()), 0, [],
               timeout=10)
    assert forbidden.value.status == 403
    # The registered key's id, but a signature that does not verify: forbidden too.
    signed = log.checkpoint(2)
    head, _, line = signed.rstrip(b"\n").rpartition(b"\n")
    prefix, _, payload = line.rpartition(b" ")
    raw = bytearray(base64.b64decode(payload))
    raw[-1] ^= 1
    tampered = head + b"\n" + prefix + b" " + base64.b64encode(bytes(raw)) + b"\n"
    with pytest.raises(WitnessForbiddenError):
        submit(witness.url, tampered, 0, [], timeout=10)
    assert _cosign(witness, log, 0, 2)  # the log itself is fine


def test_an_unknown_origin_is_refused(witness: _Witness) -> None:
    """The spec says 404; litewitness v0.6.1 answers 403 ("unknown log"). Both are a
    WitnessNotTrustedError, whose message says to register the origin."""
    log = _new_log(1)
    with pytest.raises(WitnessNotTrustedError) as refused:
        _cosign(witness, log, 0, 1)
    assert refused.value.status in (403, 404)
    assert "register" in str(refused.value)


def test_an_unreachable_witness_is_said_so() -> None:
    log = _new_log(1)
    with pytest.raises(WitnessUnreachableError, match="unreachable"):
        submit(f"http://127.0.0.1:{_free_port()}", log.checkpoint(1), 0, [], timeout=2)


def test_a_url_that_is_not_the_submission_prefix_is_said_so(witness: _Witness) -> None:
    log = _new_log(1)
    witness.add_log(log)
    with pytest.raises(WitnessNotTrustedError, match="submission prefix"):
        submit(f"{witness.url}/not-here", log.checkpoint(1), 0, [], timeout=10)


def test_the_request_body_is_the_spec_s() -> None:
    """old line, one base64 hash a line, a blank line, the note; impossible input refused."""
    log = _new_log(4)
    proof = log.proof(3, 4)
    assert len(proof) == 3  # leaf 2, leaf 3, and the root of leaves 0-1
    assert add_checkpoint_body(log.checkpoint(4), 3, proof) == (
        b"old 3\n" + b"".join(base64.b64encode(node) + b"\n" for node in proof) + b"\n"
        + log.checkpoint(4))
    assert add_checkpoint_body(log.checkpoint(1), 0, []) == b"old 0\n\n" + log.checkpoint(1)
    with pytest.raises(ValueError, match="raw bytes"):
        add_checkpoint_body(log.checkpoint(4), 3, [base64.b64encode(proof[0])])
    with pytest.raises(ValueError, match="no consistency proof"):
        add_checkpoint_body(log.checkpoint(4), 0, proof)
    with pytest.raises(ValueError, match="signed note"):
        add_checkpoint_body(log.body(4), 3, proof)
    with pytest.raises(ValueError, match="at most 63"):
        add_checkpoint_body(log.checkpoint(4), 3, proof * 22)
    with pytest.raises(ValueError, match=">= 0"):
        add_checkpoint_body(log.checkpoint(4), -1, [])


def test_the_witness_keeps_what_it_cosigned_across_a_restart(witness: _Witness) -> None:
    """'stop witness' + 'start witness' keeps its key (same vkey) and its sizes: a restart is
    no way to make it forget a history and cosign another."""
    log = _new_log(4)
    witness.add_log(log)
    _cosign(witness, log, 0, 3)
    _run(witness.env, "stop", "witness")
    with pytest.raises(WitnessUnreachableError):
        _cosign(witness, log, 3, 4)
    _run(witness.env, "start", "witness")
    assert f"FLAMINGOCK_WITNESS_VKEY={witness.vkey}" in _run(witness.env, "env")
    with pytest.raises(WitnessConflictError) as conflict:
        _cosign(witness, log, 0, 4)
    assert conflict.value.witness_size == 3
    lines = _cosign(witness, log, 3, 4)
    _verify_cosignature(witness.vkey, log.body(4), lines[0])
