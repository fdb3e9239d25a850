"""The trust store as a workflow writes it, and what its keys may sign: validity windows, and
revocations by log position or by time, each refusal naming the key, the rule and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flamingock_es.core.note import ALG_COSIGNATURE_V1, ALG_ED25519, Verifier
from flamingock_es.core.trust import Revocation, TrustedKey, TrustStore, generate_key, load_signer
from flamingock_es.definition.trust_config import load_trust
from flamingock_es.errors import ConfigError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_key("runner", tmp_path)
    return tmp_path


def _store(keys: Path, *entries: dict[str, Any]) -> TrustStore:
    store = load_trust(
        [
            {"key": "runner.pub", "principal": "runner", "write": ["shop"], **entry}
            for entry in entries
        ]
        or [{"key": "runner.pub", "principal": "runner", "write": ["shop"]}],
        keys,
    )
    assert store is not None
    return store


def _key(keys: Path, **entry: Any) -> TrustedKey:
    (only,) = _store(keys, entry).keys.values()
    return only


def _vkey(alg: int) -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return Verifier("witness.example/w1", alg, raw).vkey()


# -- reading the file -----------------------------------------------------------------------


def test_windows_and_revocations_are_read_as_utc_times_and_positions(keys: Path) -> None:
    key = _key(
        keys,
        not_before="2026-01-01T00:00:00+01:00",
        not_after="2026-03-01",
        revoked={"position": 48211, "reason": "laptop stolen"},
    )
    assert key.not_before == datetime(2025, 12, 31, 23, tzinfo=UTC)
    assert key.not_after == T0  # a date alone: its midnight, UTC
    assert key.revoked == Revocation("laptop stolen", 48211, None)

    by_time = _key(keys, revoked={"at": "2026-03-01T00:00:00", "reason": "leaked"})
    assert by_time.revoked == Revocation("leaked", None, T0)  # no zone given: UTC
    assert by_time.not_before is None
    assert by_time.not_after is None


def test_a_yaml_timestamp_is_taken_as_written(keys: Path, tmp_path: Path) -> None:
    folder = tmp_path / "trust"
    folder.mkdir()
    (keys / "runner.pub").rename(folder / "runner.pub")
    (folder / "trust.yaml").write_text(
        "- key: runner.pub\n  principal: runner\n  write: [shop]\n"
        "  not_after: 2026-03-01T00:00:00Z\n"
        "  revoked: {at: 2026-03-02, reason: rotated away}\n"
    )
    store = load_trust("trust", tmp_path)
    assert store is not None
    (key,) = store.keys.values()
    assert key.not_after == T0
    assert key.revoked == Revocation("rotated away", None, T0 + timedelta(days=1))


@pytest.mark.parametrize(
    ("revoked", "says"),
    [
        ({"reason": "no rule"}, "one of position and at"),
        ({"position": 1, "at": "2026-03-01", "reason": "both"}, "one of position and at"),
        ({"position": 10}, "and a reason"),
        ({"position": -1, "reason": "x"}, "is a log offset"),
        ({"position": True, "reason": "x"}, "is a log offset"),
        ({"position": "12", "reason": "x"}, "is a log offset"),
        ({"at": "yesterday", "reason": "x"}, "is not an ISO time"),
        ({"position": 1, "reason": "x", "by": "me"}, "unknown field(s) by"),
        ("2026-03-01", "one of position and at"),
    ],
)
def test_a_malformed_revocation_is_refused(keys: Path, revoked: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        _key(keys, revoked=revoked)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"not_before": "soon"}, "not_before 'soon' is not an ISO time"),
        ({"not_after": "2026-13-01"}, "not_after '2026-13-01' is not an ISO time"),
        ({"expires": "2026-03-01"}, r"unknown field\(s\) expires"),
    ],
)
def test_a_malformed_window_is_refused(keys: Path, entry: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _key(keys, **entry)


def test_the_evidence_entries_are_read_and_checked(keys: Path) -> None:
    witness = _vkey(ALG_COSIGNATURE_V1)
    store = load_trust(
        [
            {"key": "runner.pub", "principal": "runner", "write": ["shop"]},
            {"witness": witness, "url": "http://127.0.0.1:1/w"},
            {"require_cosignatures": 1},
            {"timestamp_authority": "http://127.0.0.1:2/tsr", "ca": "tsa/ca.pem"},
            {"origin": "example.com/shop"},
        ],
        keys,
    )
    assert store is not None
    assert [(w.name, w.vkey, w.url) for w in store.witnesses] == [
        ("witness.example/w1", witness, "http://127.0.0.1:1/w")
    ]
    assert store.require_cosignatures == 1
    assert store.timestamp_authority is not None
    assert store.timestamp_authority.ca == keys / "tsa" / "ca.pem"
    assert store.origin == "example.com/shop"


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ([{"require_cosignatures": 1}], "require_cosignatures is 1, but only 0 witness"),
        ([{"require_cosignatures": -1}], "is a number of witnesses"),
        ([{"require_cosignatures": True}], "is a number of witnesses"),
        ([{"witness": "not a vkey"}], "is not a signed-note verifier key"),
        ([{"witness": "SIGNER"}], "is not a cosignature key"),
        ([{"witness": "W", "url": "http://x", "policy": 2}], r"unknown field\(s\) policy"),
        ([{"timestamp_authority": "http://tsa"}], "needs ca"),
        ([{"origin": "o", "name": "n"}], r"unknown field\(s\) name"),
        ([{"principal": "nobody"}], "needs key"),
    ],
)
def test_a_malformed_evidence_entry_is_refused(
    keys: Path, entries: list[dict[str, Any]], says: str
) -> None:
    vkeys = {"W": _vkey(ALG_COSIGNATURE_V1), "SIGNER": _vkey(ALG_ED25519)}
    for entry in entries:
        if entry.get("witness") in vkeys:
            entry["witness"] = vkeys[entry["witness"]]
    with pytest.raises(ConfigError, match=says):
        load_trust(entries, keys)


# -- what a key may sign ---------------------------------------------------------------------


def test_a_validity_window_bounds_what_a_key_signs(keys: Path) -> None:
    key = _key(keys, not_before="2026-01-01T00:00:00Z", not_after="2026-03-01T00:00:00Z")
    assert key.refuses(10, datetime(2026, 2, 1, tzinfo=UTC)) is None
    assert key.refuses(10, T0) is None  # not_after is the last instant it may sign
    after = key.refuses(10, T0 + timedelta(seconds=1))
    assert after is not None
    assert f"key {key.key_id} (runner) may sign only until 2026-03-01T00:00:00+00:00" in after
    assert "(it was rotated or expired)" in after
    before = key.refuses(10, datetime(2025, 12, 31, tzinfo=UTC))
    assert before is not None
    assert "may sign only from 2026-01-01T00:00:00+00:00" in before
    assert key.refuses(10, None) is not None  # no time known: judged now, after the window


def test_a_revocation_by_position_refuses_from_that_offset_on(keys: Path) -> None:
    key = _key(keys, revoked={"position": 500, "reason": "leaked in a paste"})
    assert key.refuses(499, T0) is None  # signed before: still verifies
    at = key.refuses(500, T0)
    assert at == (
        f"key {key.key_id} (runner) was revoked from offset 500 (leaked in a "
        "paste): a signature at offset 500 is after it"
    )
    assert key.refuses(10_000, datetime(2000, 1, 1, tzinfo=UTC)) is not None  # whatever time
    assert key.refuses(None, None) is not None  # a position unknown: refused


def test_a_revocation_by_time_refuses_from_that_time_on(keys: Path) -> None:
    key = _key(keys, revoked={"at": "2026-03-01T00:00:00Z", "reason": "laptop stolen"})
    assert key.refuses(10**9, T0 - timedelta(seconds=1)) is None
    refused = key.refuses(3, T0)
    assert refused == (
        f"key {key.key_id} (runner) was revoked from 2026-03-01T00:00:00+00:00 "
        "(laptop stolen): this signature, made 2026-03-01T00:00:00+00:00, is "
        "after it"
    )
    assert key.refuses(3, None) is not None  # judged now: after the revocation


def test_a_revocation_in_the_future_refuses_nothing_yet(keys: Path) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    key = _key(keys, revoked={"at": later.isoformat(), "reason": "planned"})
    assert key.refuses(None, None) is None
    assert key.refuses(5, later) is not None


def test_the_store_checks_the_signature_before_the_window_and_names_both(keys: Path) -> None:
    store = _store(keys, {"revoked": {"position": 100, "reason": "retired"}})
    signer = load_signer(keys / "runner.key")
    message = b"an append's hash"
    good = signer.sign(message)

    def check(signature: bytes, position: int, namespace: str = "shop") -> str | None:
        return store.check(
            signer.key_id,
            signature,
            message,
            namespace=namespace,
            role="write",
            position=position,
            time=T0,
        )

    assert check(good, 99) is None
    revoked = check(good, 100)
    assert revoked is not None
    assert "was revoked from offset 100 (retired)" in revoked
    assert check(bytes(64), 1) == (
        f"bad signature: it does not verify with key {signer.key_id} (runner)"
    )
    other = check(good, 1, "billing")
    assert other is not None
    assert "may not write namespace 'billing'" in other


def test_a_rotation_keeps_what_the_old_key_signed_the_same_second(tmp_path: Path) -> None:
    # Run, then rotate: both in one second. The old key's window must end after what it
    # signed, to the microsecond; cut to the second, it refused the run just made.
    from flamingock_es.definition.settings import resolve_settings
    from flamingock_es.definition.signing import rotate_key, set_up_signing

    (tmp_path / "flamingock.yaml").write_text("namespace: shop\n")
    set_up_signing(tmp_path, "shop")
    settings = resolve_settings(config=tmp_path / "flamingock.yaml")
    signed = datetime.now(UTC)
    old_id, new_id, _ = rotate_key(settings)
    rotated = datetime.now(UTC)
    # ... and the new key's first checkpoint, that same second, claims a time in its window.
    from flamingock_es.core.evidence import sign_checkpoint
    from flamingock_es.core.merkle import leaf_hash
    from flamingock_es.core.state import State

    state = State()
    state.tree.append(leaf_hash(b"the run's first event"))
    state.position = 0
    checkpoint = sign_checkpoint(state, "shop", load_signer(settings.signing_key or ""))

    trust = load_trust(settings.trust, settings.base)
    assert trust is not None
    old, new = trust.keys[old_id], trust.keys[new_id]
    assert old.refuses(10, signed) is None
    assert new.refuses(11, rotated) is None
    assert new.refuses(0, datetime.fromisoformat(checkpoint.time)) is None
    assert old.refuses(12, rotated + timedelta(seconds=1)) is not None  # and nothing after
