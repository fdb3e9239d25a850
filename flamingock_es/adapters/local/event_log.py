"""``LocalEventLog``: the audit log as an append-only, fsynced file of framed Avro records.

Each frame (see :mod:`.frames`) holds the same single-object Avro bytes Kafka carries; a
position is the frame's byte offset. An append returns only once every byte is on disk; one
that fails is cut off again, so a full disk never leaves a half-written event behind.

A process killed mid-append can still leave an *unfinished* frame at the very end (shorter
than its header says): it was never acknowledged, so it is not part of the log. Readers stop
before it and warn; the next writer moves it to ``audit.log.torn-<offset>`` beside the log
(nothing is deleted). A whole frame that fails its CRC is damage, wherever it is, and stops
every reader with ``CorruptLogError``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
)

from ...core.ports import Lease, StoredRecord
from ...errors import AppendError, CorruptLogError, ForeignRecordError
from .frames import HEADER, Scan, append_durably, encode, first_frame_at, scan, sync_directory

__all__ = ["LocalEventLog", "LocalLogWriter"]

log = logging.getLogger(__name__)
_TOLD: set[tuple[str, int]] = set()
"""The unfinished appends already warned about: a command reads a log several times."""


class LocalEventLog:
    """One namespace's audit log in ``path`` (created on first write)."""

    def __init__(self, path: str | os.PathLike[str], poll_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self.messaging = {MESSAGING_DESTINATION_NAME: self.name}
        self.poll_interval = poll_interval

    def exists(self) -> bool:
        return self.path.parent.is_dir()  # the namespace's folder: any writer creates it

    def read(self, start: int = 0) -> Iterator[StoredRecord]:
        yield from self._scan(start).records

    def _scan(self, start: int) -> Scan:
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return Scan([], None, 0)
        with file:
            base = _first_frame_at_or_after(file, start)
            file.seek(base)
            found = scan(self.path, file.read(), base)
        if found.unfinished is not None and (str(self.path), found.unfinished) not in _TOLD:
            _TOLD.add((str(self.path), found.unfinished))  # once per file and offset a process
            log.warning(
                "%s: the bytes at byte %d are an unfinished append from a writer that was "
                "killed mid-write; they were never acknowledged and are not read. The next run "
                "moves them aside to %s.torn-%d.",
                self.path, found.unfinished, self.path.name, found.unfinished)
        return found

    def record_at(self, position: int) -> bytes | None:
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return None
        with file:
            length = first_frame_at(file, position) if position >= 0 else None
            if length is None:
                return None
            file.seek(position + HEADER.size)
            return file.read(length)

    def follow(self, start: int, stop: threading.Event) -> Iterator[StoredRecord | None]:
        position = start
        while not stop.is_set():
            found = self._scan(position)
            if found.records:
                yield from found.records
                position = found.end
            else:
                yield None
                stop.wait(self.poll_interval)

    def writer(self, lease: Lease) -> LocalLogWriter:
        lease.check()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            unfinished = self._scan(0).unfinished
            if unfinished is not None:
                self._move_aside(unfinished)
            return LocalLogWriter(self.path, lease)
        except OSError as exc:
            raise AppendError(f"cannot write the audit log {self.path}: {exc.strerror or exc}. "
                              "Check that its directory exists and is writable.") from exc

    def _move_aside(self, offset: int) -> None:
        side = self.path.with_name(f"{self.path.name}.torn-{offset}")
        with self.path.open("r+b") as f:
            f.seek(offset)
            side.write_bytes(f.read())
            f.truncate(offset)
            os.fsync(f.fileno())
        log.warning("%s: moved the unfinished append at byte %d to %s", self.path, offset, side)

    def close(self) -> None:
        pass


def _first_frame_at_or_after(file: BinaryIO, start: int) -> int:
    """Where to begin reading for ``start``, without reading the file before it.

    Positions are frame offsets, and callers ask for ``start`` = the last position they saw
    (plus one, as with Kafka offsets): so ``start`` or ``start - 1`` is a frame, which its CRC
    confirms. Anything else is found by walking the frame headers from 0.
    """
    if start <= 0:
        return 0
    if start >= file.seek(0, os.SEEK_END):  # a tail that has nothing new: read nothing
        return start
    for candidate in (start - 1, start):
        frame = first_frame_at(file, candidate)
        if frame is not None:
            return candidate if candidate >= start else candidate + HEADER.size + frame
    offset = 0
    while offset < start:
        file.seek(offset)
        header = file.read(HEADER.size)
        if len(header) < HEADER.size:
            break
        offset += HEADER.size + HEADER.unpack(header)[0]
    return offset


class LocalLogWriter:
    """Appends whole frames at the end of the file and fsyncs before returning.

    It appends at the file's real end, never over what is there: bytes someone else added
    since its previous append (a writer without the lock) are kept, as evidence, and named
    (``ForeignRecordError``) once this writer's own frames are durable after them."""

    def __init__(self, path: Path, lease: Lease) -> None:
        self._lease, self._path = lease, path
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        if created:  # make the new directory entry itself durable
            sync_directory(path.parent)
        self._position = os.fstat(self._fd).st_size

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        self._lease.check()
        if self._fd < 0:
            raise AppendError(f"the writer of {self._path} is closed (an earlier append failed);"
                              " nothing more is appended by this run.")
        data, offsets = encode(records)
        expected, end = self._position, os.fstat(self._fd).st_size
        try:
            append_durably(self._fd, data, end, self._path)
        except AppendError:
            # After a failed fsync the kernel may have dropped dirty pages: nothing this writer
            # believes about the file can be trusted any more, so it appends nothing else.
            self.close()
            raise
        positions = [end + at for at in offsets]
        self._position = end + len(data)
        if end != expected:
            foreign = self._frames_between(expected, end)
            raise ForeignRecordError.landed(str(self._path), foreign, positions, unit="byte")
        return positions

    def _frames_between(self, start: int, end: int) -> list[int]:
        """The positions of the frames others wrote in ``start..end`` (``start`` itself when
        what is there is not a whole frame: every reader then names it as damage)."""
        try:
            with self._path.open("rb") as file:
                file.seek(start)
                data = file.read(end - start)
        except OSError:
            return [start]
        try:
            found = scan(self._path, data, start)
        except CorruptLogError:
            return [start]
        return [position for position, _ in found.records] or [start]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
