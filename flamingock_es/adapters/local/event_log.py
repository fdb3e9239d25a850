"""``LocalEventLog``: the audit log as an append-only, fsynced file of framed Avro records.

Frame: 4-byte big-endian length, 4-byte CRC-32 of the record, the record (the same
single-object Avro bytes Kafka carries). A position is the frame's byte offset.

A process killed mid-append can leave a *torn tail*: a frame shorter than its header says, or
whose CRC does not match, at the very end of the file. Such bytes were never acknowledged (the
fsync had not returned), so they are not part of the log: readers stop before them and warn;
the next writer moves them to a ``.torn-<offset>`` file beside the log (nothing is deleted)
and reports it. A bad frame anywhere else is corruption and raises ``CorruptLogError``.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from ...errors import AppendError, CorruptLogError
from ...ports import Lease, StoredRecord

__all__ = ["LocalEventLog", "LocalLogWriter"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")
_MAX_RECORD = 16 * 1024 * 1024


def _frame_at(file: BinaryIO, offset: int) -> int | None:
    """The record length if a whole frame with a matching CRC starts at ``offset``."""
    file.seek(offset)
    header = file.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    length, crc = _FRAME.unpack(header)
    if length > _MAX_RECORD:
        return None
    record = file.read(length)
    return length if len(record) == length and zlib.crc32(record) == crc else None


class LocalEventLog:
    """One namespace's audit log in ``path`` (created on first write)."""

    def __init__(self, path: str | os.PathLike[str], poll_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self.poll_interval = poll_interval

    def read(self, start: int = 0) -> Iterator[StoredRecord]:
        records, _ = self._scan(start)
        yield from records

    def _scan(self, start: int) -> tuple[list[StoredRecord], int | None]:
        """Intact records from ``start``, and the offset of a torn tail if there is one."""
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return [], None
        with file:
            base = self._first_frame_at_or_after(file, start)
            file.seek(base)
            data = file.read()
        records: list[StoredRecord] = []
        end = base + len(data)
        unpack, crc32 = _FRAME.unpack_from, zlib.crc32
        offset = base
        while offset < end:
            if end - offset < _FRAME.size:
                return records, self._torn(offset, end, "incomplete frame header")
            length, crc = unpack(data, offset - base)
            body_end = offset + _FRAME.size + length
            if length > _MAX_RECORD:
                raise CorruptLogError(
                    f"{self.path}: frame at byte {offset} claims {length} bytes; the file is "
                    "damaged there. Restore it from a backup or a Kafka copy of the log.",
                    offset,
                )
            if body_end > end:
                return records, self._torn(offset, end, "record shorter than its header says")
            record = data[offset - base + _FRAME.size : body_end - base]
            if crc32(record) != crc:
                if body_end == end:
                    return records, self._torn(offset, end, "checksum mismatch in the last frame")
                raise CorruptLogError(
                    f"{self.path}: the record at byte {offset} fails its CRC check and is not "
                    "the last one, so this is damage, not an interrupted write. Nothing was "
                    "read past it; restore the file from a backup.",
                    offset,
                )
            records.append((offset, record))
            offset = body_end
        return records, None

    @staticmethod
    def _first_frame_at_or_after(file: BinaryIO, start: int) -> int:
        """Where to begin reading for ``start``, without reading the file before it.

        Positions are frame offsets, and callers ask for ``start`` = the last position they
        saw (plus one, as with Kafka offsets): so ``start`` or ``start - 1`` is a frame, which
        its CRC confirms. Anything else is found by walking the frame headers from 0.
        """
        if start <= 0:
            return 0
        if start >= file.seek(0, os.SEEK_END):  # a tail that has nothing new: read nothing
            return start
        for candidate in (start - 1, start):
            frame = _frame_at(file, candidate)
            if frame is not None:
                return candidate if candidate >= start else candidate + _FRAME.size + frame
        offset = 0
        while offset < start:
            file.seek(offset)
            header = file.read(_FRAME.size)
            if len(header) < _FRAME.size:
                break
            offset += _FRAME.size + _FRAME.unpack(header)[0]
        return offset

    def _torn(self, offset: int, end: int, why: str) -> int:
        log.warning(
            "%s: %d bytes at byte %d are an unfinished append (%s) from a writer that was "
            "killed mid-write; they were never acknowledged and are not read. The next run "
            "moves them aside to %s.torn-%d.",
            self.path, end - offset, offset, why, self.path.name, offset,
        )
        return offset

    def follow(self, start: int, stop: threading.Event) -> Iterator[StoredRecord | None]:
        position = start
        while not stop.is_set():
            records, _ = self._scan(position)
            if records:
                yield from records
                last, blob = records[-1]
                position = last + _FRAME.size + len(blob)
            else:
                yield None
                stop.wait(self.poll_interval)

    def writer(self, lease: Lease) -> LocalLogWriter:
        lease.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _, torn = self._scan(0)
        if torn is not None:
            self._quarantine(torn)
        return LocalLogWriter(self.path, lease)

    def _quarantine(self, offset: int) -> None:
        side = self.path.with_name(f"{self.path.name}.torn-{offset}")
        with self.path.open("r+b") as f:
            f.seek(offset)
            side.write_bytes(f.read())
            f.truncate(offset)
            os.fsync(f.fileno())
        log.warning("%s: moved the unfinished append at byte %d to %s", self.path, offset, side)

    def close(self) -> None:
        pass


class LocalLogWriter:
    """Appends frames with ``O_APPEND`` and fsyncs before returning."""

    def __init__(self, path: Path, lease: Lease) -> None:
        self._lease = lease
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if created:  # make the new directory entry itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._position = os.fstat(self._fd).st_size

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        self._lease.check()
        positions, frames = [], []
        position = self._position
        for record in records:
            positions.append(position)
            frames.append(_FRAME.pack(len(record), zlib.crc32(record)) + record)
            position += _FRAME.size + len(record)
        try:
            os.write(self._fd, b"".join(frames))
            os.fsync(self._fd)
        except OSError as exc:
            raise AppendError(
                f"could not make {len(records)} audit event(s) durable: {exc}. The run stops "
                "here; check the disk, then rerun (the log is still consistent)."
            ) from exc
        self._position = position
        return positions

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
