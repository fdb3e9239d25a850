"""Snapshots: the state they hold is the fold's, a start-up folds only what follows them, and
one that does not match the log is never believed."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from flamingock_es.adapters.local import FileLock, LocalEventLog, LocalSnapshots
from flamingock_es.core import snapshots
from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import (
    ChangeInterrupted,
    ChangeStarted,
    ChangeSucceeded,
    ErrorInfo,
    LockAcquired,
    ManualMark,
    MarkedAs,
    Requester,
    RunFinished,
    RunOutcome,
    RunStarted,
)
from flamingock_es.core.reading import LogReader
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State, UnitState, fold
from flamingock_es.core.trust import Signer, TrustStore, generate_key, load_signer
from flamingock_es.definition.trust_config import load_trust
from flamingock_es.errors import ChainBrokenError

from .fakes import ACTOR

CODEC = AuditCodec()


def started(uid: str) -> ChangeStarted:
    return ChangeStarted(unit_id=uid, stage="s", author="ana", checksum="c", parameters="{}",
                         attempt=1, reason="pending")


def write(path: Path, runs: int, signer: Signer | None = None) -> tuple[LocalEventLog, State]:
    log, lock, state = LocalEventLog(path / "audit.log"), FileLock(path / "lock"), State()
    lease = lock.acquire("t", 5)
    writer = log.writer(lease)
    for n in range(runs):
        recorder = Recorder(writer, state, RunIdentity("shop", f"r{n}", ACTOR), CODEC,
                            sign=signer.sign if signer else None,
                            key_id=signer.key_id if signer else None)
        recorder.record(RunStarted(workflow="w", trigger="request", planned=(f"u{n}",),
                                   requester=Requester(principal="alice", reason="why")),
                        LockAcquired(holder="h", lock="l", generation=n))
        recorder.record(started(f"u{n}"))
        recorder.record(ChangeSucceeded(unit_id=f"u{n}", checksum="c", duration_ms=1.5))
        recorder.record(RunFinished(outcome=RunOutcome.SUCCEEDED, applied=(f"u{n}",)))
    recorder.record(started("doubt"), ChangeInterrupted(unit_id="doubt", signal="SIGTERM",
                                                        reason="grace"))
    recorder.record(ManualMark(unit_id="u0", marked_as=MarkedAs.APPLIED, reason="x"),
                    RunFinished(outcome=RunOutcome.FAILED, applied=(),
                                error=ErrorInfo(type="E", message="m"), not_started=("z",)))
    writer.close()
    lease.release()
    return log, state


def test_a_snapshot_holds_exactly_the_folded_state(tmp_path: Path) -> None:
    _, state = write(tmp_path, 5)
    as_json = json.loads(json.dumps(snapshots.encode_state(state)))
    assert snapshots.decode_state(as_json) == dataclasses.replace(state, seals=[])


def signing(tmp_path: Path) -> tuple[Signer, TrustStore]:
    """A runner's key and a trust store that trusts it: only signed snapshots are read."""
    generate_key("runner", tmp_path)
    trust = load_trust([{"key": "runner.pub", "principal": "r", "write": ["shop"]}], tmp_path)
    assert trust is not None
    return load_signer(tmp_path / "runner.key"), trust


def test_a_start_up_folds_only_what_follows_the_snapshot(tmp_path: Path) -> None:
    signer, trust = signing(tmp_path)
    log, state = write(tmp_path, 3, signer)
    store = LocalSnapshots(tmp_path)
    assert snapshots.save(store, state, "shop", signer)
    assert not snapshots.save(store, state, "shop", signer)  # not newer: left as it is
    lease = FileLock(tmp_path / "lock").acquire("t", 5)
    writer = log.writer(lease)
    Recorder(writer, state, RunIdentity("shop", "r9", ACTOR), CODEC).record(started("u9"))
    writer.close()
    lease.release()

    read = []
    original = log.read
    log.read = lambda start=0: (read.append(start), original(start))[1]  # type: ignore[method-assign]
    loaded = snapshots.read(log, store, "shop", LogReader(trust=trust))

    assert read[0] > 0  # the log was read from after the snapshot's position, not from 0
    assert loaded.units["u9"].status.value == "STARTED"
    assert loaded.units.keys() == fold(CODEC.decode_all(original(0))).units.keys()


def test_a_snapshot_keeps_what_decisions_read_not_the_history(tmp_path: Path) -> None:
    signer, trust = signing(tmp_path)
    log, state = LocalEventLog(tmp_path / "audit.log"), State()
    lease = FileLock(tmp_path / "lock").acquire("t", 5)
    writer = log.writer(lease)

    def run(run_id: str, request_id: str | None = None) -> None:
        recorder = Recorder(writer, state, RunIdentity("shop", run_id, ACTOR, request_id),
                            CODEC, sign=signer.sign, key_id=signer.key_id)
        recorder.record(RunStarted(workflow="w", trigger="cli", planned=("u1",)),
                        LockAcquired(holder=run_id, lock="l", generation=0))
        recorder.record(started("u1"))
        recorder.record(ChangeSucceeded(unit_id="u1", checksum="c", duration_ms=1.0))
        recorder.record(RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1",)))

    run("asked", request_id="req-1")
    sizes = {}
    for n in range(300):
        run(f"r{n}")
        if n in (9, 299):
            (tmp_path / f"at-{n}").mkdir()
            store = LocalSnapshots(tmp_path / f"at-{n}")
            assert snapshots.save(store, state, "shop", signer)
            sizes[n] = len(gzip.decompress(store.latest() or b""))
    live = Recorder(writer, state, RunIdentity("shop", "live", ACTOR), CODEC, sign=signer.sign,
                    key_id=signer.key_id)
    live.record(RunStarted(workflow="w", trigger="cli", planned=("u2",)),
                LockAcquired(holder="live", lock="l", generation=1))
    live.record(started("u2"))  # the run still holds the lock: u2 is in progress
    writer.close()
    lease.release()

    kept = state.for_decisions()
    assert abs(sizes[299] - sizes[9]) < 100  # 290 more runs; only ids and positions differ
    assert list(kept.runs) == ["asked", "r299", "live"]  # a request's, u1's last, the latest
    assert kept.units["u1"].runs == ["r299"]
    assert len(state.units["u1"].runs) == 301
    assert kept.in_progress(kept.units["u2"])
    assert kept.attention() == state.attention() == []
    assert kept.last_run == state.last_run
    assert dataclasses.replace(kept, runs=state.runs, units=state.units) == state
    # what a runner folds after loading it is what it would have folded from the start
    store = LocalSnapshots(tmp_path)
    assert snapshots.save(store, state, "shop", signer)
    loaded = snapshots.read(log, store, "shop", LogReader(trust=trust))
    assert {u: (x.status, x.last_run_id) for u, x in loaded.units.items()} == \
        {u: (x.status, x.last_run_id) for u, x in state.units.items()}


def unpack(store: LocalSnapshots) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored snapshot's header and body."""
    header, _, body = gzip.decompress(store.path.read_bytes()).partition(b"\n")
    return json.loads(header), json.loads(body)


def repack(store: LocalSnapshots, header: dict[str, Any], body: dict[str, Any]) -> None:
    store.save(gzip.compress(json.dumps(header).encode() + b"\n" + json.dumps(body).encode()))


def test_an_unsigned_snapshot_never_changes_a_decision(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """A snapshot forged beside an unsigned log (same position and head, a unit's status
    changed) is not read: the state is the log's, whatever the snapshot says."""
    signer, _ = signing(tmp_path)
    log, state = write(tmp_path, 2)
    store = LocalSnapshots(tmp_path)
    assert not snapshots.save(store, state, "shop", None)  # unsigned: not even written
    snapshots.save(store, state, "shop", signer)  # the forger's starting point
    header, body = unpack(store)
    status = [f.name for f in dataclasses.fields(UnitState)].index("status")
    body["state"][0]["u0"][status] = "ROLLED_BACK"  # a lie, at the right position and head
    del header["signature"], header["key_id"]
    repack(store, header, body)

    with caplog.at_level(logging.WARNING):
        loaded = snapshots.read(log, store, "shop", LogReader(trust=None))

    assert "ignoring the snapshot" in caplog.text
    assert loaded.units["u0"].status.value == "MANUAL_MARKED_AS_APPLIED"  # from the log


def test_a_signed_snapshot_is_a_witness_of_a_cut_log(tmp_path: Path) -> None:
    generate_key("runner", tmp_path)
    signer = load_signer(tmp_path / "runner.key")
    trust = load_trust([{"key": "runner.pub", "principal": "r", "write": ["shop"]}], tmp_path)
    log, state = write(tmp_path, 2, signer)
    store = LocalSnapshots(tmp_path)
    snapshots.save(store, state, "shop", signer)
    loaded = snapshots.read(log, store, "shop", LogReader(trust=trust))
    assert loaded.signed_through == state.position

    log.path.write_bytes(log.path.read_bytes()[:state.units["u1"].position])  # cut the end

    with pytest.raises(ChainBrokenError, match="the log ends before it"):
        snapshots.read(log, store, "shop", LogReader(trust=trust))
    unsigned = LogReader().catch_up(log)  # without the witness, the cut log looks whole
    assert unsigned.findings() == []


def test_an_unsigned_snapshot_is_not_believed_where_signatures_are_required(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    generate_key("runner", tmp_path)
    trust = load_trust([{"key": "runner.pub", "principal": "r", "write": ["shop"]}], tmp_path)
    log, state = write(tmp_path, 1, load_signer(tmp_path / "runner.key"))
    store = LocalSnapshots(tmp_path)
    snapshots.save(store, state, "shop", load_signer(tmp_path / "runner.key"))
    header, body = unpack(store)
    del header["signature"], header["key_id"]  # an unsigned one, as only a forger writes now
    repack(store, header, body)
    with caplog.at_level(logging.WARNING):
        snapshots.read(log, store, "shop", LogReader(trust=trust))
    assert "no trusted signature covers it" in caplog.text


def test_a_signed_snapshot_edited_after_signing_is_not_believed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    generate_key("runner", tmp_path)
    signer = load_signer(tmp_path / "runner.key")
    trust = load_trust([{"key": "runner.pub", "principal": "r", "write": ["shop"]}], tmp_path)
    log, state = write(tmp_path, 2, signer)
    store = LocalSnapshots(tmp_path)
    assert snapshots.save(store, state, "shop", signer)
    header, body = unpack(store)
    status = [f.name for f in dataclasses.fields(UnitState)].index("status")
    body["state"][0]["u1"][status] = "ROLLED_BACK"  # pending again, if it were believed
    repack(store, header, body)

    with caplog.at_level(logging.WARNING):
        loaded = snapshots.read(log, store, "shop", LogReader(trust=trust))

    assert "no trusted signature covers it" in caplog.text
    assert loaded.units["u1"].status.value == "APPLIED"  # the log's word, folded whole
