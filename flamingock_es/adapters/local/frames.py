"""Framed records in an append-only file: the format both local adapters share.

Frame: 4-byte big-endian length, 4-byte CRC-32 of the record, the record. A position is the
frame's byte offset. An append is durable when every byte was written and ``fsync`` returned;
an append that fails part-way is cut off again, so a failed append leaves nothing behind.

Reading tells two things apart. A last frame that is *shorter than its header says* is an
append that never finished (the writer was killed mid-write, before its fsync returned): it was
never acknowledged and is not part of the file. A frame that is whole but fails its CRC, or
claims an impossible length, is damage, wherever it is.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ...core.ports import StoredRecord
from ...errors import AppendError, CorruptLogError, NoRoomError

__all__ = [
    "HEADER",
    "MAX_RECORD",
    "Scan",
    "append_durably",
    "encode",
    "first_frame_at",
    "replace_durably",
    "scan",
    "sync_directory",
]

log = logging.getLogger(__name__)

HEADER = struct.Struct(">II")
MAX_RECORD = 16 * 1024 * 1024


def encode(records: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """The frames of ``records``, and each frame's offset relative to the first."""
    frames, offsets, at = [], [], 0
    for record in records:
        offsets.append(at)
        frames.append(HEADER.pack(len(record), zlib.crc32(record)) + record)
        at += HEADER.size + len(record)
    return b"".join(frames), offsets


def append_durably(fd: int, data: bytes, start: int, path: Path) -> None:
    """Write every byte of ``data`` at ``start`` (the file's end) and fsync.

    ``os.write`` may write less than asked (a filesystem that fills up does): the rest is
    written by further calls, and any failure cuts the file back to ``start`` so that no part
    of the frames stays behind to be mistaken for a record later. Raises ``AppendError``.
    """
    view, done, syncing = memoryview(data), 0, False
    try:
        while done < len(data):
            done += os.pwrite(fd, view[done:], start + done)
        syncing = True
        os.fsync(fd)
    except OSError as exc:
        _cut(fd, start, path)
        # Out of room while writing: nothing dirty was dropped, only this append is refused.
        # A failed fsync is another matter: the kernel may have dropped pages of any write.
        kind = NoRoomError if not syncing and exc.errno in _NO_ROOM else AppendError
        raise kind(
            f"could not make {len(data)} bytes durable in {path} ({exc.strerror or exc}; "
            f"{done} written before it failed, and cut off again). Nothing of this append is "
            "in the log. Free the disk, then rerun."
        ) from exc


_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def replace_durably(path: Path, data: bytes) -> None:
    """Make ``data`` the content of ``path`` atomically and durably: written aside, fsynced,
    renamed over it, the rename fsynced. A reader sees the old content or the new, whole.
    Raises ``OSError`` for the caller to name what could not be kept."""
    aside = path.with_suffix(".tmp")
    with aside.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(aside, path)
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (a file created or renamed in it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cut(fd: int, start: int, path: Path) -> None:
    try:
        os.ftruncate(fd, start)
        os.fsync(fd)
    except OSError as exc:  # what stays is an unfinished frame, which readers never take
        log.error("%s: could not cut a failed append back to byte %d: %s", path, start, exc)


def first_frame_at(file: BinaryIO, offset: int) -> int | None:
    """The record length if a whole frame with a matching CRC starts at ``offset``."""
    file.seek(offset)
    header = file.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    length, crc = HEADER.unpack(header)
    if length > MAX_RECORD:
        return None
    record = file.read(length)
    return length if len(record) == length and zlib.crc32(record) == crc else None


@dataclass(frozen=True, slots=True)
class Scan:
    """What a read found: the whole frames, and where an unfinished append begins, if any."""

    records: list[StoredRecord]
    unfinished: int | None
    end: int
    """The offset after the last whole frame."""


def scan(path: Path, data: bytes, base: int) -> Scan:
    """The frames in ``data``, which was read from ``path`` at byte ``base``."""
    records: list[StoredRecord] = []
    unpack, crc32 = HEADER.unpack_from, zlib.crc32
    end, offset = base + len(data), base
    while offset < end:
        if end - offset < HEADER.size:
            return Scan(records, offset, offset)
        length, crc = unpack(data, offset - base)
        if length > MAX_RECORD:
            raise CorruptLogError(
                f"{path}: the frame at byte {offset} claims {length} bytes; the file is damaged "
                "there. Nothing was read past it; restore the file from a backup.", offset)
        body_end = offset + HEADER.size + length
        if body_end > end:
            return Scan(records, offset, offset)
        record = data[offset - base + HEADER.size : body_end - base]
        if crc32(record) != crc:
            raise CorruptLogError(
                f"{path}: the record at byte {offset} fails its CRC check. It is whole, so this "
                "is damage, not an interrupted write. Nothing was read past it; restore the "
                "file from a backup.", offset)
        records.append((offset, record))
        offset = body_end
    return Scan(records, None, offset)
