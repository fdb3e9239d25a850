"""The document model: pure derivation from the fold, with per-document positions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flamingock_es.projections.documents import (
    SCHEMA_VERSION,
    Projection,
    checkpoint_key,
    lock_key,
    rollout_key,
    run_key,
    summary_key,
    unit_key,
)

from flamingock_es.core.codec import AuditCodec, Recorded
from flamingock_es.core.events import (
    Actor,
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockReleased,
    ManualMark,
    MarkedAs,
    Payload,
    Requester,
    RolloutStarted,
    RunFinished,
    RunOutcome,
    RunStarted,
    TenantFinished,
    WavePublished,
)
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State

NS = "docs"
ACTOR = Actor(principal="alice", host="build-7", pid=42, service_version="1.2.3",
              tool_version="0.1.0")


class MemoryWriter:
    """A log writer that keeps the sealed bytes in memory; positions step by 10."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes]] = []

    def append(self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
               ) -> list[int]:
        start = len(self.records)
        positions = [(start + i) * 10 for i in range(len(records))]
        self.records += list(zip(positions, records, strict=True))
        return positions

    def close(self) -> None:
        pass


def started(unit: str, attempt: int = 1) -> ChangeStarted:
    return ChangeStarted(unit_id=unit, stage="main", author="bob", checksum=f"sum-{unit}",
                         template=None, parameters='{"table": "users", "password": "***"}',
                         attempt=attempt, reason="pending")


def history(requested: bool = False) -> list[Recorded]:
    """Two runs: one applies a and fails b (compensating a), the next applies both; then a
    manual mark, and (``requested``) a run a change request asked for: d applied, e failed."""
    writer, state, codec = MemoryWriter(), State(), AuditCodec()

    def run(run_id: str, *payloads: Payload, actor: Actor = ACTOR,
            request_id: str | None = None) -> None:
        Recorder(writer, state, RunIdentity(NS, run_id, actor, request_id), codec).record(
            *payloads)

    boom = ErrorInfo(type="RuntimeError", message="boom")
    run("r1", RunStarted(workflow="wf", trigger="cli", planned=("a", "b")),
        LockAcquired(holder="h1", lock="file:x", generation=1),
        started("a"), ChangeSucceeded(unit_id="a", checksum="sum-a", duration_ms=5.0),
        started("b"), ChangeFailed(unit_id="b", checksum="sum-b", duration_ms=2.0, error=boom),
        CompensationStarted(unit_id="a", reason="run failed"),
        CompensationSucceeded(unit_id="a", duration_ms=1.0),
        RunFinished(outcome=RunOutcome.ROLLED_BACK, applied=(), error=boom),
        LockReleased(holder="h1"))
    run("r2", RunStarted(workflow="wf", trigger="cli", planned=("a", "b")),
        LockAcquired(holder="h2", lock="file:x", generation=2),
        started("a", 2), ChangeSucceeded(unit_id="a", checksum="sum-a", duration_ms=4.0),
        started("b", 2), ChangeSucceeded(unit_id="b", checksum="sum-b", duration_ms=3.0),
        RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("a", "b")),
        LockReleased(holder="h2"))
    run("mark-1", ManualMark(unit_id="c", marked_as=MarkedAs.APPLIED, reason="done by hand",
                             checksum="sum-c"))
    if requested:
        ops = Actor(principal="svc-runner", host="runner-1", pid=7, service_version=None,
                    tool_version="0.1.0")
        asked = Requester(principal="checkout-service", key_id=None, reason="release 42")
        run("r3", RunStarted(workflow="wf", trigger="request", planned=("d", "e"),
                             requester=asked),
            LockAcquired(holder="h3", lock="file:x", generation=3),
            started("d"), ChangeSucceeded(unit_id="d", checksum="sum-d", duration_ms=1.0),
            started("e"), ChangeFailed(unit_id="e", checksum="sum-e", duration_ms=1.0,
                                       error=ErrorInfo(type="OSError", message="down")),
            RunFinished(outcome=RunOutcome.FAILED, applied=("d",)), LockReleased(holder="h3"),
            actor=ops, request_id="req-9")
    return list(codec.decode_all(writer.records))


def projected(records: list[Recorded]) -> Projection:
    projection = Projection(NS)
    for record in records:
        projection.apply(record)
    return projection


def test_unit_documents_carry_status_last_attempt_and_history() -> None:
    projection = projected(history())
    a = projection.document(unit_key(NS, "a"))
    assert a["status"] == "APPLIED"
    assert a["applied"] is True
    assert a["attempts"] == 2
    assert a["author"] == "bob"
    assert a["checksum"] == "sum-a"
    assert a["stage"] == "main"
    assert a["parameters"] == {"table": "users", "password": "***"}
    assert a["history"]["runs"] == ["r1", "r2"]
    assert a["last_attempt"]["run_id"] == "r2"
    assert a["duration_ms"] == 4.0
    assert a["error"] is None
    assert a["position"] == 130  # r2's ChangeSucceeded(a): the 14th event
    c = projection.document(unit_key(NS, "c"))
    assert c["status"] == "MANUAL_MARKED_AS_APPLIED"
    assert c["last_attempt"]["mark_reason"] == "done by hand"


def test_run_documents_say_who_where_what_and_how_it_ended() -> None:
    projection = projected(history())
    r1 = projection.document(run_key(NS, "r1"))
    assert (r1["who"], r1["where"], r1["actor"]["pid"]) == ("alice", "build-7", 42)
    assert r1["planned"] == ["a", "b"]
    assert r1["applied"] == ["a"]
    assert r1["failed"] == ["b"]
    assert r1["compensated"] == ["a"]
    assert r1["outcome"] == "ROLLED_BACK"
    assert r1["error"]["message"] == "boom"
    assert r1["position"] == 80  # RunFinished; LockReleased does not change the run
    r2 = projection.document(run_key(NS, "r2"))
    assert r2["outcome"] == "SUCCEEDED"
    assert r2["applied"] == ["a", "b"]


def test_the_lock_document_follows_acquire_and_release() -> None:
    records = history()
    projection = projected(records[:12])
    held = projection.document(lock_key(NS))
    assert held["held"] is True
    assert held["holder"] == "h2"
    assert held["generation"] == 2
    assert held["position"] == 110
    free = projected(records).document(lock_key(NS))
    assert free["held"] is False
    assert free["holder"] is None
    assert free["position"] == 170


def test_summary_and_checkpoint_reflect_the_whole_log() -> None:
    records = history()
    projection = projected(records)
    summary = projection.document(summary_key(NS))
    assert summary["counts"] == {"APPLIED": 2, "MANUAL_MARKED_AS_APPLIED": 1}
    assert summary["units"] == ["a", "b", "c"]
    assert summary["runs"] == ["r1", "r2"]
    assert summary["last_run"]["run_id"] == "r2"
    assert summary["events"] == len(records)
    assert summary["chain_breaks"] == []
    checkpoint = projection.document(checkpoint_key(NS))
    assert checkpoint["position"] == records[-1].position
    assert checkpoint["last_hash"] == records[-1].event.hash.hex() == summary["head_hash"]


def test_only_changed_documents_are_touched() -> None:
    records = history()
    projection = Projection(NS)
    touched = [projection.apply(r) for r in records]
    always = {summary_key(NS), checkpoint_key(NS)}
    assert touched[0] == always | {run_key(NS, "r1")}  # RunStarted
    assert touched[1] == always | {lock_key(NS)}  # LockAcquired
    assert touched[2] == always | {unit_key(NS, "a")}  # ChangeStarted: the run is unchanged
    assert touched[3] == always | {unit_key(NS, "a"), run_key(NS, "r1")}  # applied list
    assert projection.apply(records[3]) == set()  # redelivery is a no-op


def test_incremental_and_rebuilt_documents_are_identical() -> None:
    records = history()
    incremental, stored = Projection(NS), {}
    done = 0
    for cut in (3, 7, 12, len(records)):  # batches; documents written at each batch's end
        touched: set[str] = set()
        for record in records[max(done - 2, 0):cut]:  # with some redelivery
            touched |= incremental.apply(record)
        stored.update((key, incremental.document(key)) for key in touched)
        done = cut
    assert stored == projected(records).documents()



def test_unit_documents_say_who_applied_them_when_and_who_asked() -> None:
    projection = projected(history(requested=True))

    a = projection.document(unit_key(NS, "a"))
    assert a["applied_by"] == {"principal": "alice", "host": "build-7"}
    assert a["applied_at"] == a["finished_at"]
    assert a["requested_by"] is None
    assert a["last_attempt"]["by"] == a["applied_by"]
    d = projection.document(unit_key(NS, "d"))
    assert d["applied_by"] == {"principal": "svc-runner", "host": "runner-1"}
    assert d["requested_by"] == {"principal": "checkout-service", "reason": "release 42",
                                 "request_id": "req-9"}
    assert projection.document(run_key(NS, "r3"))["requested_by"] == d["requested_by"]
    assert d["schema"] == SCHEMA_VERSION == 3
    failed = projection.document(unit_key(NS, "e"))
    assert failed["applied_by"] is None
    assert failed["applied_at"] is None
    assert failed["last_attempt"]["by"] == d["applied_by"]


def test_the_summary_lists_the_rollouts_and_how_far_signatures_cover() -> None:
    writer, state, codec = MemoryWriter(), State(), AuditCodec()
    record = Recorder(writer, state, RunIdentity(NS, "coord", ACTOR, None), codec).record
    record(RunStarted(workflow="shop", trigger="rollout", planned=()),
           LockAcquired(holder="h1", lock="file:x", generation=1))
    for rid in ("r1", "r2"):
        record(RolloutStarted(rollout_id=rid, workflow="shop", reason="release 7",
                              tenants=("a", "b"), max_failures="1", waves=1),
               WavePublished(rollout_id=rid, wave=0, tenants=("a", "b"), allowed_failures=1),
               TenantFinished(rollout_id=rid, wave=0, tenant="a", result="SUCCEEDED",
                              run_id="run-a"))
    projection = projected(list(codec.decode_all(writer.records)))

    summary = projection.document(summary_key(NS))
    assert summary["rollouts"] == ["r1", "r2"]
    assert summary["signed_through"] == -1  # nothing signed, no trust store
    assert projection.document(rollout_key(NS, "r2"))["counts"] == {"PENDING": 1,
                                                                     "SUCCEEDED": 1}
    assert projected(history()).document(summary_key(NS))["rollouts"] == []
