"""LocalEventLog reads from any position without reading the file before it."""

from __future__ import annotations

from pathlib import Path

from flamingock_es.adapters.local import FileLock, LocalEventLog


def _log_with(tmp_path: Path, records: list[bytes]) -> tuple[LocalEventLog, list[int]]:
    log = LocalEventLog(tmp_path / "audit.log")
    lease = FileLock(tmp_path / "lock").acquire("t", 5)
    writer = log.writer(lease)
    positions = writer.append(records)
    writer.close()
    lease.release()
    return log, positions


def test_reads_from_a_position_or_just_after_it_match_a_full_scan(tmp_path: Path) -> None:
    records = [bytes([n]) * (n + 1) for n in range(40)]
    log, positions = _log_with(tmp_path, records)
    assert list(log.read()) == list(zip(positions, records, strict=True))
    for index, position in enumerate(positions):
        assert [p for p, _ in log.read(position)] == positions[index:]
        assert [p for p, _ in log.read(position + 1)] == positions[index + 1:]
    assert [p for p, _ in log.read(positions[3] + 5)] == positions[4:]  # inside a frame


def test_a_read_past_the_end_is_empty(tmp_path: Path) -> None:
    log, positions = _log_with(tmp_path, [b"a", b"b"])
    end = positions[-1] + 9 + 1
    assert list(log.read(end)) == []
    assert list(log.read(end + 100)) == []
