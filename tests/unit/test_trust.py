"""Signatures and the trust store: what the readers accept, and what they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from flamingock_es.core.codec import AUDIT_CONTEXT, AuditCodec
from flamingock_es.core.events import ChangeStarted, ChangeSucceeded, ManualMark, MarkedAs
from flamingock_es.core.reading import LogReader
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State, fold
from flamingock_es.core.trust import TrustStore, check_writer, generate_key, load_signer
from flamingock_es.definition.trust_config import load_trust
from flamingock_es.errors import ChainBrokenError, ConfigError

from .fakes import ACTOR, MemoryLog

CODEC = AuditCodec()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    for name in ("runner", "alice", "mallory"):
        generate_key(name, tmp_path)
    return tmp_path


@pytest.fixture
def trust(keys: Path) -> TrustStore:
    store = load_trust([{"key": "runner.pub", "principal": "runner@prod", "write": ["shop"]},
                        {"key": "alice.pub", "principal": "alice", "request": ["shop"]}], keys)
    assert store is not None
    return store


def signed_history(keys: Path, units: int = 2) -> MemoryLog:
    """Runs written by the trusted runner: each append signed, as the runner does."""
    log, state = MemoryLog(), State()
    signer = load_signer(keys / "runner.key")
    recorder = Recorder(log, state, RunIdentity("shop", "r1", ACTOR), CODEC,
                        sign=signer.sign, key_id=signer.key_id)
    for i in range(units):
        recorder.record(ChangeStarted(unit_id=f"u{i}", stage="s", author="ana", checksum="c",
                                      parameters="{}", attempt=1, reason="pending"))
        recorder.record(ChangeSucceeded(unit_id=f"u{i}", checksum="c", duration_ms=1.0))
    return log


def checked(log: MemoryLog, trust: TrustStore) -> State:
    state = fold(CODEC.decode_all(log.records))
    LogReader(trust=trust).settle(state)  # every signature: each covers only its append
    return state


def test_a_key_file_is_private_and_its_id_is_derived(keys: Path) -> None:
    assert oct((keys / "runner.key").stat().st_mode)[-3:] == "600"
    signer = load_signer(keys / "runner.key")
    assert len(signer.key_id) == 16
    with pytest.raises(ConfigError, match="would overwrite"):
        generate_key("runner", keys)


def test_the_trust_store_says_why_it_refuses(trust: TrustStore, keys: Path) -> None:
    runner, alice = load_signer(keys / "runner.key"), load_signer(keys / "alice.key")
    mallory = load_signer(keys / "mallory.key")
    message = AUDIT_CONTEXT + b"\x01" * 32

    def check(signer_id: str | None, signature: bytes | None, role: str = "write",
              namespace: str = "shop") -> str | None:
        return trust.check(signer_id, signature, message, namespace=namespace,
                           role=role)  # type: ignore[arg-type]

    assert check(runner.key_id, runner.sign(message)) is None
    assert check(None, None) == "unsigned"
    assert "unknown key" in str(check(mallory.key_id, mallory.sign(message)))
    assert "may not write namespace 'other'" in str(
        check(runner.key_id, runner.sign(message), namespace="other"))
    assert "may not write" in str(check(alice.key_id, alice.sign(message)))
    assert check(alice.key_id, alice.sign(message), role="request") is None
    assert "bad signature" in str(check(runner.key_id, mallory.sign(message)))


def test_a_signed_history_is_trusted_through_its_last_event(keys: Path,
                                                            trust: TrustStore) -> None:
    log = signed_history(keys)
    state = checked(log, trust)
    assert state.signed_through == log.records[-1][0]
    assert state.findings(signatures=True) == []


def test_a_forged_event_continuing_the_chain_is_unsigned_and_refused(
        keys: Path, trust: TrustStore) -> None:
    log = signed_history(keys)
    state = fold(CODEC.decode_all(log.records))
    # The attacker has the public schema and SHA-256, not the runner's key.
    forger = Recorder(log, state, RunIdentity("shop", "forged", ACTOR), CODEC)
    forger.record(ManualMark(unit_id="u0", marked_as=MarkedAs.ROLLED_BACK, reason="sure"))

    state = checked(log, trust)

    assert state.breaks == []  # the chain itself holds: only a key can tell
    (finding,) = state.findings(signatures=True)
    assert (finding.position, finding.kind) == (log.records[-1][0], "unsigned")
    with pytest.raises(ChainBrokenError, match=f"offset {finding.position}"):
        LogReader(trust=trust).check(state, "memory")


def test_a_signature_by_an_untrusted_key_is_refused(keys: Path, trust: TrustStore) -> None:
    log = signed_history(keys)
    state = fold(CODEC.decode_all(log.records))
    mallory = load_signer(keys / "mallory.key")
    Recorder(log, state, RunIdentity("shop", "x", ACTOR), CODEC, sign=mallory.sign,
             key_id=mallory.key_id).record(
        ManualMark(unit_id="u0", marked_as=MarkedAs.ROLLED_BACK, reason="sure"))

    state = checked(log, trust)

    assert [f.kind for f in state.findings(signatures=True)] == ["untrusted"]
    assert state.signed_through == log.records[-2][0]  # the last trusted one still counts


def test_a_recomputed_chain_fails_every_signature_after_the_edit(keys: Path,
                                                                 trust: TrustStore) -> None:
    log = signed_history(keys, units=3)
    events = [r.event for r in CODEC.decode_all(log.records)]
    edited_at = 2
    prev = events[edited_at - 1].hash
    forged = []
    for event in events[edited_at:]:  # re-seal each event after the edit, signatures kept
        changed = event.replace(prev_hash=prev, actor=event.actor.__class__(
            principal="eve", host="h", pid=1, tool_version="x")) if event is events[
            edited_at] else event.replace(prev_hash=prev)
        sealed, blob = CODEC.seal(changed)
        if event.signature is not None:  # the attacker can only copy the old signature
            blob = blob[:-1] + b"\x02" + event.signature
        forged.append(blob)
        prev = sealed.hash
    log.records = log.records[:edited_at] + [
        (position, blob) for (position, _), blob in zip(log.records[edited_at:], forged,
                                                        strict=True)]

    state = checked(log, trust)

    assert state.breaks == []  # recomputed: the chain holds
    untrusted = [f for f in state.findings(signatures=True) if f.kind == "untrusted"]
    assert untrusted
    assert all("bad signature" in f.reason for f in untrusted)
    assert state.signed_through < log.records[edited_at][0]


def test_a_namespace_pattern_covers_the_workflows_tenants_and_rollouts(keys: Path) -> None:
    store = load_trust([{"key": "runner.pub", "principal": "runner", "write": ["shop", "shop.*"]},
                        {"key": "alice.pub", "principal": "alice", "write": ["shop"]}], keys)
    assert store is not None
    runner = load_signer(keys / "runner.key")
    for namespace in ("shop", "shop.acme", "shop._rollouts"):
        check_writer(store, runner, namespace)
    for namespace in ("shopping", "shop-eu.acme", "other.acme"):
        with pytest.raises(ConfigError, match="may not write"):
            check_writer(store, runner, namespace)
    with pytest.raises(ConfigError, match=r'write: \["shop\.\*"\]'):  # what to add, said
        check_writer(store, load_signer(keys / "alice.key"), "shop.acme")
