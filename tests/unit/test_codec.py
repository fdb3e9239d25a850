"""The codec: Avro single-object encoding of audit events, and the hash that seals each one."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from flamingock_es.cli.status_codes import exit_code
from flamingock_es.core.codec import MAGIC, AuditCodec, crc64_avro, load_schema, schema_dir
from flamingock_es.core.events import (
    PAYLOAD_TYPES,
    AuditEvent,
    BudgetChecked,
    ChangeFailed,
    ChangeInterrupted,
    ChangeSkipped,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    HistoryVouched,
    LockAcquired,
    LockLost,
    LockReleased,
    ManualMark,
    MarkedAs,
    Payload,
    PreconditionChecked,
    RecordQuarantined,
    Requester,
    RolloutFinished,
    RolloutResumed,
    RolloutStarted,
    RolloutStopped,
    RunFinished,
    RunOutcome,
    RunStarted,
    SkipCause,
    TagRecorded,
    TenantFinished,
    TraceContext,
    WavePublished,
)
from flamingock_es.errors import DecodeError

from .fakes import ACTOR, event

CONTRACT = Path(__file__).resolve().parents[2] / "schemas" / "AuditEvent.avsc"
CONTRACT_V1 = CONTRACT.with_name("AuditEvent.v1.avsc")
BOOM = ErrorInfo(type="RuntimeError", message="boom")

PAYLOADS: list[Payload] = [
    RunStarted(workflow="shop", trigger="cli", planned=("a", "b")),
    RunStarted(workflow="shop", trigger="undo", planned=()),
    LockAcquired(holder="laptop:4242:run", lock="file:/tmp/lock", generation=7),
    ChangeStarted(unit_id="a", stage="data", author="ana", checksum="c" * 64,
                  parameters='{"x": 1}', attempt=1, reason="pending"),
    ChangeStarted(unit_id="b", stage="data", author="ana", checksum="d" * 64,
                  template="http-request", parameters="{}", attempt=2, reason="retry"),
    ChangeSucceeded(unit_id="a", checksum="c" * 64, duration_ms=12.5),
    ChangeFailed(unit_id="a", checksum="c" * 64, duration_ms=3.25, error=BOOM),
    CompensationStarted(unit_id="a", reason="its apply failed"),
    CompensationSucceeded(unit_id="a", duration_ms=1.0),
    CompensationFailed(unit_id="a", duration_ms=2.0, error=BOOM),
    CompensationFailed(unit_id="a", duration_ms=2.0, error=BOOM,
                       original_error=ErrorInfo(type="ValueError", message="first")),
    ManualMark(unit_id="a", marked_as=MarkedAs.APPLIED, reason="checked", checksum="e" * 64),
    ManualMark(unit_id="a", marked_as=MarkedAs.ROLLED_BACK, reason="reverted by hand"),
    LockReleased(holder="laptop:4242:run"),
    LockLost(holder="laptop:4242:run", reason="evicted"),
    RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("a", "b")),
    RunFinished(outcome=RunOutcome.ROLLED_BACK, applied=(), error=BOOM),
    RunStarted(workflow="shop", trigger="request", planned=("a",),
               requester=Requester(principal="alice", key_id="ab" * 8, reason="JIRA-7",
                                   service="orders 2.0")),
    ChangeFailed(unit_id="a", checksum="c" * 64, duration_ms=0.5, error=BOOM, not_started=True),
    RunFinished(outcome=RunOutcome.FAILED, applied=("a",), error=BOOM, not_started=("b", "c")),
    ChangeInterrupted(unit_id="a", signal="SIGTERM", reason="grace period of 30s ran out"),
    ChangeInterrupted(unit_id="a", signal="SIGINT", reason="second signal", compensating=True),
    RecordQuarantined(position=4096, record_sha256="f" * 64, finding="undecodable",
                      reason="garbage from a test client"),
    HistoryVouched(through=900, head=b"\x07" * 32, unsigned=12, reason="adopting signatures"),
    RunStarted(workflow="shop", trigger="cli", planned=("a", "b"), environment="prod",
               labels=("eu", "billing"),
               requester=Requester(principal="alice", reason="r", request_digest="9" * 64)),
    ChangeFailed(unit_id="a", checksum="c" * 64, duration_ms=0.5,
                 error=ErrorInfo(type="KeyError", message="'x'", where="changes/u1.py:12")),
    RunFinished(outcome=RunOutcome.STOPPED, applied=("a",), not_started=("b",)),
    RunFinished(outcome=RunOutcome.PARTIAL, applied=("a",)),
    ChangeSkipped(unit_id="b", stage="data", checksum="d" * 64, cause=SkipCause.CONDITION,
                  reason='env == "prod" is false'),
    ChangeSkipped(unit_id="b", stage="data", checksum="d" * 64, cause=SkipCause.PRECONDITION,
                  reason="the column exists", marked_applied=True),
    PreconditionChecked(unit_id="b", holds=False, on_fail="skip", detail="the column exists"),
    TagRecorded(name="v1.0", through=4096, applied=("a", "b"), reason="release 1.0"),
    RolloutStarted(rollout_id="r1", workflow="shop", reason="release 7", tenants=("a", "b"),
                   max_failures="2%", waves=2),
    WavePublished(rollout_id="r1", wave=0, tenants=("a",), allowed_failures=0),
    TenantFinished(rollout_id="r1", wave=0, tenant="a", result="SUCCEEDED", run_id="run-a"),
    TenantFinished(rollout_id="r1", wave=1, tenant="b", result="ROLLED_BACK", error=BOOM),
    BudgetChecked(rollout_id="r1", wave=1, failures=1, allowed=0, exceeded=True),
    RolloutStopped(rollout_id="r1", wave=2, reason="wave 1: 1 failed, 0 allowed"),
    RolloutResumed(rollout_id="r1", reason="the fix is deployed", past_budget=True),
    RolloutFinished(rollout_id="r1", result="SUCCEEDED", succeeded=2, failed=0),
]


@pytest.fixture(scope="module", params=[False, True], ids=["fastavro", "avro_reader"])
def codec(request: pytest.FixtureRequest) -> AuditCodec:
    """Every test, through both decoders: fastavro, and the reader that is compiled where
    the build could (here run as it is installed: compiled, or as Python)."""
    return AuditCodec(reader=request.param)


def sealed(codec: AuditCodec, payload: Payload | None = None, **fields: object
           ) -> tuple[AuditEvent, bytes]:
    return codec.seal(event(payload or LockReleased(holder="h"), **fields))


def test_the_samples_cover_every_payload_type() -> None:
    assert {type(p) for p in PAYLOADS} == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
def test_a_payloads_plain_form_is_what_asdict_gives(payload: Payload) -> None:
    assert payload.to_dict() == dataclasses.asdict(payload)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
def test_every_payload_round_trips(codec: AuditCodec, payload: Payload) -> None:
    original, blob = sealed(codec, payload, seq=3, prev_hash=b"\x01" * 32)

    recorded = codec.decode(blob, 17)

    assert recorded.event == original
    assert recorded.position == 17
    assert recorded.intact
    assert type(recorded.event.payload) is type(payload)


def test_optional_envelope_fields_round_trip(codec: AuditCodec) -> None:
    trace = TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         tracestate="vendor=1")
    actor = ACTOR.__class__(principal="svc", host="h", pid=1, service_version="2.3.0",
                            tool_version="0.1.0")
    original, blob = sealed(codec, trace=trace, request_id="req-1", actor=actor)

    decoded = codec.decode(blob).event

    assert decoded == original
    assert decoded.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert decoded.time.tzinfo is not None


def test_header_is_the_single_object_marker_and_the_schema_fingerprint(codec: AuditCodec
                                                                       ) -> None:
    _, blob = sealed(codec)
    contract = json.loads(CONTRACT.read_text())
    expected = bytes.fromhex(fingerprint(to_parsing_canonical_form(contract), "CRC-64-AVRO"))

    assert blob[:2] == MAGIC == b"\xc3\x01"
    assert blob[2:10] == expected
    assert codec.header == MAGIC + expected


def test_crc64_avro_matches_the_spec_and_fastavro() -> None:
    # The Avro spec's reference implementation gives 0x7275d51a3f395c8f for "int"; written
    # little-endian, that is the hex fastavro computes independently.
    assert crc64_avro(b'"int"') == 0x7275D51A3F395C8F
    assert crc64_avro(b'"int"').to_bytes(8, "little").hex() == fingerprint(
        to_parsing_canonical_form("int"), "CRC-64-AVRO")
    assert crc64_avro(b"") == 0xC15D213AA4D7A795  # the empty fingerprint
    for schema in ("string", {"type": "array", "items": "long"}):
        canonical = to_parsing_canonical_form(schema)
        assert crc64_avro(canonical.encode()).to_bytes(8, "little").hex() == fingerprint(
            canonical, "CRC-64-AVRO")


def test_the_packaged_schema_is_the_published_contract() -> None:
    assert (schema_dir() / "AuditEvent.avsc").read_bytes() == CONTRACT.read_bytes()


def test_hash_is_sha256_of_prev_hash_and_the_body_before_it(codec: AuditCodec) -> None:
    prev = hashlib.sha256(b"the event before").digest()
    original, blob = sealed(codec, prev_hash=prev)
    body = blob[10:]

    # unsigned: the hash, then the signature union's null branch (one byte) end the body
    assert original.hash == hashlib.sha256(prev + body[:-33]).digest()
    assert body[-33:] == original.hash + b"\x00"
    assert original.hash != sealed(codec, prev_hash=bytes(32))[0].hash


def test_a_signature_follows_the_hash_and_signs_it(codec: AuditCodec) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    prev = hashlib.sha256(b"before").digest()
    unsigned, plain = sealed(codec, prev_hash=prev, key_id="k1")
    signed, blob = codec.seal(event(LockReleased(holder="h"), prev_hash=prev, key_id="k1"),
                              key.sign)

    assert signed.hash == unsigned.hash  # the signature is outside what the hash covers
    assert blob[-65] == 2
    assert blob[-64:] == signed.signature
    assert signed.signature is not None
    key.public_key().verify(signed.signature, b"flamingock-es audit " + signed.hash)
    decoded = codec.decode(blob)
    assert decoded.intact
    assert decoded.event == signed
    assert codec.decode(plain).event.signature is None


def test_events_of_the_first_writer_schema_stay_readable(codec: AuditCodec) -> None:
    v1 = fastavro.parse_schema(json.loads(CONTRACT_V1.read_text()))
    prev = b"\x05" * 32
    record = {"event_id": "e", "seq": 4, "time": datetime(2026, 11, 1, tzinfo=UTC),
              "namespace": "shop", "run_id": "r", "trace": None, "request_id": None,
              "actor": {"principal": "ana", "host": "h", "pid": 1, "service_version": None,
                        "tool_version": "0.1.0"},
              "payload": ("io.flamingock.es.RunFinished",
                          {"outcome": "SUCCEEDED", "applied": ["a"], "error": None}),
              "prev_hash": prev, "hash": bytes(32)}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1, record)
    body = buf.getvalue()[:-32]
    digest = hashlib.sha256(prev + body).digest()
    header = b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(
        json.loads(CONTRACT_V1.read_text())), "CRC-64-AVRO"))

    decoded = codec.decode(header + body + digest, 7)

    assert decoded.intact
    assert decoded.event.hash == digest
    assert decoded.event.payload == RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("a",))
    assert (decoded.event.key_id, decoded.event.signature) == (None, None)
    assert header != codec.header


def test_an_altered_byte_is_decoded_but_not_intact(codec: AuditCodec) -> None:
    _, blob = sealed(codec, namespace="shop")
    at = blob.index(b"shop")
    tampered = blob[:at] + b"shoq" + blob[at + 4:]

    recorded = codec.decode(tampered, 5)

    assert recorded.event.namespace == "shoq"
    assert not recorded.intact


def test_an_altered_hash_is_not_intact(codec: AuditCodec) -> None:
    _, blob = sealed(codec)
    at = len(blob) - 2  # inside the hash: it is followed by the one-byte null signature
    assert not codec.decode(blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1:]).intact


def test_an_unknown_fingerprint_names_the_offset(codec: AuditCodec) -> None:
    _, blob = sealed(codec)
    other = MAGIC + bytes(8) + blob[10:]

    with pytest.raises(DecodeError, match=r"offset 4096 .*unknown schema") as info:
        codec.decode(other, 4096)
    assert info.value.position == 4096
    assert exit_code(info.value) == 4


@pytest.mark.parametrize("data", [b'{"json": true}', b"", b"\xc3"], ids=["json", "empty", "c3"])
def test_foreign_bytes_name_the_offset(codec: AuditCodec, data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"offset 12 is not an Avro single-object") as info:
        codec.decode(data, 12)
    assert info.value.position == 12


@pytest.mark.parametrize("cut", [1, 32, 40, 120])
def test_a_truncated_body_names_the_offset(codec: AuditCodec, cut: int) -> None:
    _, blob = sealed(codec, RunStarted(workflow="shop", trigger="cli", planned=("a",)))

    with pytest.raises(DecodeError, match=r"offset 300 is corrupt") as info:
        codec.decode(blob[:-cut], 300)
    assert info.value.position == 300


def test_decode_all_keeps_positions_and_order(codec: AuditCodec) -> None:
    blobs = [sealed(codec, seq=i)[1] for i in range(3)]
    records = list(codec.decode_all([(0, blobs[0]), (250, blobs[1]), (900, blobs[2])]))
    assert [(r.position, r.event.seq) for r in records] == [(0, 0), (250, 1), (900, 2)]


def test_a_plain_avro_reader_decodes_events_with_the_contract_alone(codec: AuditCodec) -> None:
    """What a consumer in another language does: the .avsc, an Avro reader, SHA-256."""
    payload = ChangeFailed(unit_id="a", checksum="c" * 64, duration_ms=3.25, error=BOOM)
    original, blob = sealed(codec, payload, seq=9, prev_hash=b"\x02" * 32)
    contract = json.loads(CONTRACT.read_text())
    schema = fastavro.parse_schema(contract)

    assert blob[:2] == b"\xc3\x01"
    assert blob[2:10].hex() == fingerprint(to_parsing_canonical_form(contract), "CRC-64-AVRO")
    record = fastavro.schemaless_reader(io.BytesIO(blob[10:]), schema,
                                        return_record_name=True)

    assert record["seq"] == 9
    assert record["namespace"] == "shop"
    assert record["actor"]["principal"] == "ana"
    assert record["payload"] == ("io.flamingock.es.ChangeFailed", {
        "unit_id": "a", "checksum": "c" * 64, "duration_ms": 3.25,
        "error": {"type": "RuntimeError", "message": "boom", "where": None},
        "not_started": False})
    assert record["hash"] == original.hash == hashlib.sha256(
        record["prev_hash"] + blob[10:-33]).digest()
    assert record["signature"] is None


def test_load_schema_is_the_parsed_contract() -> None:
    schema = load_schema("AuditEvent")
    assert schema["name"] == "io.flamingock.es.AuditEvent"
    assert [f["name"] for f in schema["fields"]][-5:] == ["prev_hash", "key_id", "signed_from",
                                                          "hash", "signature"]
