"""The fold: what a sequence of audit events means. Events are written by the real Recorder."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from flamingock_es.adapters.local import FileLock, LocalEventLog
from flamingock_es.core.codec import AuditCodec, Recorded
from flamingock_es.core.events import (
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockLost,
    LockReleased,
    ManualMark,
    MarkedAs,
    RunFinished,
    RunOutcome,
    RunStarted,
)
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State, UnitStatus, fold

from .fakes import ACTOR, CODEC, Journal

SUM = "a" * 64
BOOM = ErrorInfo(type="RuntimeError", message="boom")
UNDO_BOOM = ErrorInfo(type="OSError", message="rollback boom")


def started(unit: str = "u1", attempt: int = 1, checksum: str = SUM) -> ChangeStarted:
    return ChangeStarted(unit_id=unit, stage="main", author="ana", checksum=checksum,
                         parameters="{}", attempt=attempt, reason="pending")


def succeeded(unit: str = "u1", checksum: str = SUM) -> ChangeSucceeded:
    return ChangeSucceeded(unit_id=unit, checksum=checksum, duration_ms=5.0)


def failed(unit: str = "u1") -> ChangeFailed:
    return ChangeFailed(unit_id=unit, checksum=SUM, duration_ms=1.0, error=BOOM)


@pytest.fixture
def journal() -> Journal:
    return Journal()


def status_of(journal: Journal, unit: str = "u1") -> UnitStatus:
    state = journal.log.fold()
    assert state.units[unit].status == journal.state.units[unit].status  # live == replayed
    return state.units[unit].status


# Unit statuses ----------------------------------------------------------------------------


def test_started_without_an_outcome_is_in_doubt(journal: Journal) -> None:
    journal.run("r1", started())

    unit = journal.log.fold().units["u1"]
    assert unit.status is UnitStatus.STARTED
    assert unit.status.needs_attention
    assert not unit.status.is_applied
    assert unit.attempts == 1
    assert unit.last_run_id == "r1"
    assert unit.finished_at is None


def test_started_then_succeeded_is_applied(journal: Journal) -> None:
    journal.run("r1", started(), succeeded())

    state = journal.log.fold()
    unit = state.units["u1"]
    assert unit.status is UnitStatus.APPLIED
    assert unit.status.is_applied
    assert unit.checksum == SUM
    assert unit.author == "ana"
    assert unit.stage == "main"
    assert unit.duration_ms == 5.0
    assert unit.finished_at is not None
    assert state.runs["r1"].applied == ["u1"]
    assert state.attention() == []


def test_started_then_failed_is_failed_with_its_error(journal: Journal) -> None:
    journal.run("r1", started(), failed())

    state = journal.log.fold()
    assert state.units["u1"].status is UnitStatus.FAILED
    assert state.units["u1"].error == BOOM
    assert state.runs["r1"].failed == ["u1"]
    assert [u.unit_id for u in state.attention()] == ["u1"]


def test_a_compensated_failure_is_rolled_back(journal: Journal) -> None:
    journal.run("r1", started(), failed(), CompensationStarted(unit_id="u1", reason="failed"))
    assert journal.log.fold().units["u1"].compensating

    journal.run("r1", CompensationSucceeded(unit_id="u1", duration_ms=1.0))

    state = journal.log.fold()
    unit = state.units["u1"]
    assert unit.status is UnitStatus.ROLLED_BACK
    assert not unit.compensating
    assert not unit.status.needs_attention
    assert unit.error == BOOM  # why it was rolled back stays readable
    assert state.runs["r1"].compensated == ["u1"]


def test_a_failed_rollback_keeps_both_errors(journal: Journal) -> None:
    journal.run("r1", started(), failed(), CompensationStarted(unit_id="u1", reason="failed"),
                CompensationFailed(unit_id="u1", duration_ms=1.0, error=UNDO_BOOM,
                                   original_error=BOOM))

    unit = journal.log.fold().units["u1"]
    assert unit.status is UnitStatus.ROLLBACK_FAILED
    assert unit.status.needs_attention
    assert unit.error == BOOM
    assert unit.rollback_error == UNDO_BOOM


def test_a_failed_undo_of_an_applied_unit_keeps_the_rollback_error(journal: Journal) -> None:
    journal.run("r1", started(), succeeded())
    journal.run("r2", CompensationStarted(unit_id="u1", reason="undo"),
                CompensationFailed(unit_id="u1", duration_ms=1.0, error=UNDO_BOOM))

    unit = journal.log.fold().units["u1"]
    assert unit.status is UnitStatus.ROLLBACK_FAILED
    assert unit.rollback_error == UNDO_BOOM
    assert unit.error is None
    assert unit.runs == ["r1", "r2"]


@pytest.mark.parametrize(("marked", "expected"), [
    (MarkedAs.APPLIED, UnitStatus.MANUAL_MARKED_AS_APPLIED),
    (MarkedAs.ROLLED_BACK, UnitStatus.MANUAL_MARKED_AS_ROLLED_BACK),
])
def test_manual_marks(journal: Journal, marked: MarkedAs, expected: UnitStatus) -> None:
    journal.run("r1", started())
    journal.run("m1", ManualMark(unit_id="u1", marked_as=marked, reason="checked the db",
                                 checksum="b" * 64 if marked is MarkedAs.APPLIED else None))

    state = journal.log.fold()
    unit = state.units["u1"]
    assert unit.status is expected
    assert unit.mark_reason == "checked the db"
    assert unit.checksum == ("b" * 64 if marked is MarkedAs.APPLIED else SUM)
    assert unit.status.is_applied is (marked is MarkedAs.APPLIED)
    assert not unit.status.needs_attention
    assert unit.runs == ["r1", "m1"]


def test_a_retry_starts_a_new_attempt_and_clears_old_errors(journal: Journal) -> None:
    journal.run("r1", started(), failed())
    journal.run("r2", started(attempt=2))

    unit = journal.log.fold().units["u1"]
    assert unit.status is UnitStatus.STARTED
    assert unit.attempts == 2
    assert unit.error is None
    assert unit.runs == ["r1", "r2"]


def test_counts_by_status(journal: Journal) -> None:
    journal.run("r1", started("a"), succeeded("a"), started("b"), succeeded("b"), started("c"))
    assert journal.log.fold().counts() == {"APPLIED": 2, "STARTED": 1}


# Lock and runs ----------------------------------------------------------------------------


def test_the_lock_holder_comes_from_acquired_and_released(journal: Journal) -> None:
    journal.run("r1", LockAcquired(holder="h1", lock="file:/l", generation=3))
    lock = journal.log.fold().lock
    assert lock is not None
    assert (lock.holder, lock.generation, lock.run_id, lock.position) == ("h1", 3, "r1", 0)

    journal.run("r1", LockReleased(holder="someone-else"))
    assert journal.log.fold().lock is not None

    journal.run("r1", LockReleased(holder="h1"))
    assert journal.log.fold().lock is None


def test_a_lost_lock_has_no_holder(journal: Journal) -> None:
    journal.run("r1", LockAcquired(holder="h1", lock="file:/l", generation=1),
                LockLost(holder="h1", reason="evicted"))
    assert journal.log.fold().lock is None


def test_runs_record_plan_outcome_and_what_they_did(journal: Journal) -> None:
    journal.run("r1", RunStarted(workflow="shop", trigger="cli", planned=("u1", "u2")),
                started("u1"), succeeded("u1"), started("u2"), failed("u2"),
                CompensationStarted(unit_id="u2", reason="x"),
                CompensationSucceeded(unit_id="u2", duration_ms=1.0),
                RunFinished(outcome=RunOutcome.FAILED, applied=("u1",), error=BOOM))
    journal.run("r2", RunStarted(workflow="shop", trigger="undo", planned=()))

    state = journal.log.fold()
    run = state.runs["r1"]
    assert (run.workflow, run.trigger, run.planned) == ("shop", "cli", ("u1", "u2"))
    assert run.applied == ["u1"]
    assert run.failed == ["u2"]
    assert run.compensated == ["u2"]
    assert run.outcome is RunOutcome.FAILED
    assert run.error == BOOM
    assert run.finished_at is not None
    assert run.actor == ACTOR
    assert list(state.runs) == ["r1", "r2"]
    assert state.last_run is not None
    assert state.last_run.run_id == "r2"
    assert state.last_run.outcome is None


def test_envelope_bookkeeping(journal: Journal) -> None:
    events = journal.run("r1", started(), succeeded())
    state = journal.log.fold()
    assert state.events == 2
    assert state.next_seq == 2
    assert state.position == 100
    assert state.head_hash == events[-1].hash
    assert state.last_time == events[-1].time
    assert state.breaks == []


# Redelivery and chain breaks -------------------------------------------------------------


def test_a_redelivered_record_is_a_no_op(journal: Journal) -> None:
    journal.run("r1", started(), succeeded())
    records = journal.log.decoded()
    state = fold(records)

    assert state.apply(records[0]) is False
    assert state.apply(records[1]) is False
    again = fold(records, state)

    assert again.events == 2
    assert again.units["u1"].status is UnitStatus.APPLIED
    assert again.units["u1"].attempts == 1
    assert again.breaks == []


def _breaks(records: list[Recorded]) -> list[tuple[int, int, str]]:
    return [(b.position, b.seq, b.reason) for b in fold(records).breaks]


@pytest.fixture
def five(journal: Journal) -> list[Recorded]:
    journal.run("r1", *(started(f"u{i}") for i in range(5)))
    return journal.log.decoded()


def test_an_intact_log_has_no_breaks(five: list[Recorded]) -> None:
    assert _breaks(five) == []


def test_an_altered_event_is_a_hash_mismatch_at_its_position(journal: Journal,
                                                             five: list[Recorded]) -> None:
    position, blob = journal.log.records[2]
    at = blob.index(b"u2")
    altered = CODEC.decode(blob[:at] + b"u9" + blob[at + 2:], position)

    breaks = _breaks([*five[:2], altered, *five[3:]])

    assert len(breaks) == 1
    assert breaks[0][:2] == (200, 2)
    assert "hash mismatch" in breaks[0][2]


def test_a_dropped_event_is_a_sequence_gap_and_a_prev_hash_mismatch(five: list[Recorded]
                                                                    ) -> None:
    breaks = _breaks([*five[:2], *five[3:]])

    assert [b[:2] for b in breaks] == [(300, 3), (300, 3)]
    assert "sequence 3 where 2 was expected: events dropped" in breaks[0][2]
    assert "prev_hash" in breaks[1][2]


def test_reordered_events_break_the_chain_where_they_were_swapped(five: list[Recorded]
                                                                 ) -> None:
    # Same bytes at swapped positions, as a log would deliver them out of order.
    swapped = [five[0], five[1], Recorded(200, five[3].event, True, five[3].leaf),
               Recorded(300, five[2].event, True, five[2].leaf), five[4]]

    breaks = _breaks(swapped)

    assert {b[0] for b in breaks} == {200, 300, 400}
    assert any("sequence 3 where 2 was expected" in b[2] for b in breaks if b[0] == 200)
    assert any("duplicated or reordered" in b[2] for b in breaks if b[0] == 300)
    assert all(b[2] != "" for b in breaks)


def test_the_fold_runs_the_same_over_the_real_local_log(tmp_path: Path) -> None:
    log, lock = LocalEventLog(tmp_path / "audit.log"), FileLock(tmp_path / "lock")
    lease = lock.acquire("me", 5)
    writer = log.writer(lease)
    live = State()
    recorder = Recorder(writer, live, RunIdentity("shop", "r1", ACTOR), AuditCodec())
    recorder.record(started(), succeeded())
    recorder.record(started("u2"))
    writer.close()
    lease.release()

    stored = list(log.read())
    replayed = fold(AuditCodec().decode_all(stored))

    assert [p for p, _ in stored] == [0, live.units["u1"].position, live.units["u2"].position]
    assert replayed.units.keys() == live.units.keys()
    assert replayed.head_hash == live.head_hash
    assert replayed.position == live.position
    assert replayed.units["u2"].status is UnitStatus.STARTED
    assert replayed.breaks == []
    # frames are 4-byte length + CRC-32 + the single-object record
    first = tmp_path.joinpath("audit.log").read_bytes()
    assert zlib.crc32(stored[0][1]) == int.from_bytes(first[4:8], "big")


# Applications (what the idempotency key counts) ---------------------------------------------


def test_retries_of_one_application_share_it_and_an_undo_starts_the_next(
        journal: Journal) -> None:
    def application() -> int:
        replayed = journal.log.fold().units["u1"].application
        assert replayed == journal.state.units["u1"].application  # live == replayed
        return replayed

    journal.run("r1", started())  # the process died
    journal.run("r2", started(attempt=2), failed())  # an always-retry retry failed
    journal.run("r3", started(attempt=3))
    assert application() == 0  # three attempts, one application
    journal.run("r3", succeeded(), CompensationStarted(unit_id="u1", reason="undo"),
                CompensationSucceeded(unit_id="u1", duration_ms=1.0))
    assert application() == 0  # the compensation belongs to it
    journal.run("r4", started(attempt=4))
    assert application() == 1  # undone, applied anew
    journal.run("r4", succeeded())
    journal.run("r5", started(attempt=5))  # run again once applied (run-always)
    assert application() == 2
    journal.run("r6", ManualMark(unit_id="u1", marked_as=MarkedAs.ROLLED_BACK, reason="gone"),
                started(attempt=6))
    assert application() == 3


def test_the_idempotency_key_names_one_application_of_one_step() -> None:
    from flamingock_es.core.fencing import idempotency_key

    key = idempotency_key("shop", "u1", SUM, 0)
    assert key == idempotency_key("shop", "u1", SUM, 0, "apply")  # stable
    others = {idempotency_key("shop", "u1", SUM, 1), idempotency_key("shop", "u1", SUM, 0,
                                                                      "rollback"),
              idempotency_key("shop", "u2", SUM, 0), idempotency_key("eu", "u1", SUM, 0),
              idempotency_key("shop", "u1", "b" * 64, 0)}
    assert key not in others
    assert len(others) == 5
