"""Compliance replay: exact rows for a known log, and tampering found with its position."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flamingock_es.adapters.local import LocalEventLog
from flamingock_es.api import replay
from flamingock_es.audit import ChangeRow, render
from flamingock_es.cli import main
from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import (
    ZERO_HASH,
    Actor,
    AuditEvent,
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockReleased,
    Payload,
    RunFinished,
    RunOutcome,
    RunStarted,
    TraceContext,
)

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
ANA = Actor(principal="ana", host="h1", pid=1, tool_version="0.1.0")
BOT = Actor(principal="deploy-bot", host="h2", pid=2, tool_version="0.1.0")
TRACE = TraceContext(traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")


class _Held:
    holder, lock, generation, lost = "t", "test", 1, False

    def check(self) -> None: ...
    def release(self) -> None: ...


def _scenario() -> list[tuple[str, Actor, str | None, TraceContext | None, Payload]]:
    """Run r1 (by ana, CLI) applies u1; run r2 (a request by deploy-bot) fails u2, compensates."""
    def start(uid: str) -> ChangeStarted:
        return ChangeStarted(unit_id=uid, stage="main", author="ana", checksum=f"c-{uid}",
                             parameters="{}", attempt=1, reason="pending")
    return [
        ("r1", ANA, None, None, RunStarted(workflow="shop", trigger="cli", planned=("u1",))),
        ("r1", ANA, None, None, LockAcquired(holder="h1:1:r1", lock="file:x", generation=1)),
        ("r1", ANA, None, None, start("u1")),
        ("r1", ANA, None, None, ChangeSucceeded(unit_id="u1", checksum="c-u1", duration_ms=12.5)),
        ("r1", ANA, None, None, RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1",))),
        ("r1", ANA, None, None, LockReleased(holder="h1:1:r1")),
        ("r2", BOT, "req-7", TRACE, RunStarted(workflow="shop", trigger="request",
                                              planned=("u2",))),
        ("r2", BOT, "req-7", TRACE, start("u2")),
        ("r2", BOT, "req-7", TRACE, ChangeFailed(unit_id="u2", checksum="c-u2", duration_ms=3.0,
                                                error=ErrorInfo(type="E", message="boom"))),
        ("r2", BOT, "req-7", TRACE, CompensationStarted(unit_id="u2", reason="failed")),
        ("r2", BOT, "req-7", TRACE, CompensationSucceeded(unit_id="u2", duration_ms=1.0)),
        ("r2", BOT, "req-7", TRACE, RunFinished(outcome=RunOutcome.ROLLED_BACK, applied=(),
                                               error=ErrorInfo(type="E", message="boom"))),
    ]


def _blobs() -> list[bytes]:
    codec, prev, out = AuditCodec(), ZERO_HASH, []
    for seq, (run_id, actor, rid, trace, payload) in enumerate(_scenario()):
        event = AuditEvent(event_id=f"e{seq}", seq=seq, time=T0 + timedelta(seconds=seq),
                           namespace="shop", run_id=run_id, actor=actor, trace=trace,
                           request_id=rid, payload=payload, prev_hash=prev)
        event, blob = codec.seal(event)
        prev = event.hash
        out.append(blob)
    return out


def _write(root: Path, blobs: list[bytes]) -> list[int]:
    log = LocalEventLog(root / "shop" / "audit.log")
    writer = log.writer(_Held())
    try:
        return writer.append(blobs)
    finally:
        writer.close()


def test_report_of_a_known_scenario(tmp_path: Path) -> None:
    positions = _write(tmp_path, _blobs())
    report = replay(bus=f"local:{tmp_path}", namespace="shop")
    assert report.ok
    assert report.events == 12
    common = {"namespace": "shop", "stage": "main", "template": "", "parameters": "{}",
              "attempt": 1}
    assert report.changes == [
        ChangeRow(seq=3, position=positions[3], time="2026-01-02T10:00:03+00:00", run_id="r1",
                  request_id="", trigger="cli", unit_id="u1", action="apply", status="APPLIED",
                  principal="ana", host="h1", started_at="2026-01-02T10:00:02+00:00",
                  finished_at="2026-01-02T10:00:03+00:00", duration_ms=12.5, checksum="c-u1",
                  error="", trace_id="", **common),  # type: ignore[arg-type]
        ChangeRow(seq=8, position=positions[8], time="2026-01-02T10:00:08+00:00", run_id="r2",
                  request_id="req-7", trigger="request", unit_id="u2", action="apply",
                  status="FAILED", principal="deploy-bot", host="h2",
                  started_at="2026-01-02T10:00:07+00:00", finished_at="2026-01-02T10:00:08+00:00",
                  duration_ms=3.0, checksum="c-u2", error="E: boom", trace_id="ab" * 16,
                  **common),  # type: ignore[arg-type]
        ChangeRow(seq=10, position=positions[10], time="2026-01-02T10:00:10+00:00",
                  run_id="r2", request_id="req-7", trigger="request", unit_id="u2",
                  action="compensate", status="ROLLED_BACK", principal="deploy-bot", host="h2",
                  started_at="", finished_at="2026-01-02T10:00:10+00:00", duration_ms=1.0,
                  checksum="c-u2", error="", trace_id="ab" * 16,
                  **common),  # type: ignore[arg-type]
    ]
    assert [(r.run_id, r.trigger, r.request_id, r.outcome) for r in report.runs] == [
        ("r1", "cli", "", "SUCCEEDED"), ("r2", "request", "req-7", "ROLLED_BACK")]


def test_time_range_selects_rows_but_verifies_everything(tmp_path: Path) -> None:
    _write(tmp_path, _blobs())
    report = replay(bus=f"local:{tmp_path}", namespace="shop", since=T0 + timedelta(seconds=5))
    assert [r.seq for r in report.changes] == [8, 10]
    assert [r.run_id for r in report.runs] == ["r2"]
    assert report.events == 12
    assert report.ok


def test_renderings(tmp_path: Path) -> None:
    _write(tmp_path, _blobs())
    report = replay(bus=f"local:{tmp_path}", namespace="shop")
    doc = json.loads(render(report, "json"))
    assert doc["verified"] is True
    assert len(doc["changes"]) == 3
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert [(r["unit_id"], r["action"], r["status"]) for r in rows] == [
        ("u1", "apply", "APPLIED"), ("u2", "apply", "FAILED"), ("u2", "compensate", "ROLLED_BACK")]
    html = render(report, "html")
    assert "<strong class=\"wrap\">u2</strong>" in html  # its timeline lane and step rows
    assert "req-7" in html


def _tamper_field(blobs: list[bytes]) -> list[bytes]:
    blobs = list(blobs)
    blobs[3] = blobs[3].replace(b"ana", b"eve")  # same length: only the hash can tell
    return blobs


@pytest.mark.parametrize(("tamper", "bad_index", "reason"), [
    (_tamper_field, 3, "hash mismatch"),
    (lambda b: b[:4] + b[5:], 4, "events dropped"),
    (lambda b: [*b[:4], b[5], b[4], *b[6:]], 4, "events dropped"),
])
def test_tampered_copies_are_detected_with_their_position(
        tmp_path: Path, tamper: object, bad_index: int, reason: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    positions = _write(tmp_path, tamper(_blobs()))  # type: ignore[operator]
    report = replay(bus=f"local:{tmp_path}", namespace="shop")
    assert not report.ok
    first = report.breaks[0]
    assert first.position == positions[bad_index]
    assert reason in first.reason
    out = tmp_path / "report.json"
    code = main(["replay", "--bus", f"local:{tmp_path}", "--namespace", "shop", "--format",
                 "json", "--output", str(out), "-q"])
    assert code == 4
    assert json.loads(out.read_text())["breaks"][0]["position"] == positions[bad_index]
    assert f"BREAK at offset {positions[bad_index]}" in capsys.readouterr().err


def test_cli_exports_csv(tmp_path: Path) -> None:
    _write(tmp_path, _blobs())
    out = tmp_path / "r.csv"
    assert main(["replay", "--bus", f"local:{tmp_path}", "--namespace", "shop", "--format",
                 "csv", "-o", str(out), "-q"]) == 0
    assert out.read_text().splitlines()[0].startswith("seq,position,time,namespace,run_id")
