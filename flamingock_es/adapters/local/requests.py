"""``LocalRequestChannel``: change requests in a framed file beside the local audit log.

``ROOT/requests.log`` holds one frame per request (the framing of :mod:`.frames`); a runner
group's committed position is ``requests.<group>.offset``; undecodable requests are copied to
``requests.dead.log`` with the reason. Publishers take an exclusive ``flock`` around each
append, so concurrent requesters never interleave their frames. Headers are not stored: a
request carries its trace context in its own ``trace`` field.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from base64 import b64decode, b64encode
from collections.abc import Iterator, Mapping
from pathlib import Path

from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
)

from ...core.ports import DeadLetter, Delivery, StoredRecord
from ...errors import AppendError
from .event_log import LocalEventLog
from .frames import HEADER, append_durably, encode, replace_durably

__all__ = ["LocalRequestChannel", "LocalRequestConsumer"]

DEFAULT_GROUP = "runner"


class LocalRequestChannel:
    """The request channel of one namespace directory ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "requests.log"
        self.dead = root / "requests.dead.log"
        self.destination = f"file:{self.path}"
        self.dead_letter_destination = f"file:{self.dead}"
        self.messaging = {MESSAGING_DESTINATION_NAME: self.destination}
        self.group = DEFAULT_GROUP

    def publish(self, key: str, value: bytes, headers: Mapping[str, str] | None = None) -> int:
        return _append(self.path, value)

    def consumer(self, group: str | None = None) -> LocalRequestConsumer:
        name = group or DEFAULT_GROUP
        return LocalRequestConsumer(self.path, self.root / f"requests.{name}.offset")

    def dead_letter(self, delivery: Delivery, reason: str, key_id: str | None = None,
                    signature: bytes | None = None) -> None:
        entry = {"position": delivery.position, "reason": reason,
                 "value": b64encode(delivery.value).decode(), "key_id": key_id,
                 "signature": signature.hex() if signature is not None else None}
        _append(self.dead, json.dumps(entry).encode())

    def dead_letters(self, start: int = 0) -> Iterator[DeadLetter]:
        for position, record in LocalEventLog(self.dead).read(start):
            try:
                entry = json.loads(record)
                signature = entry.get("signature")
                yield DeadLetter(position, int(entry["position"]), str(entry["reason"]),
                                 b64decode(entry["value"]), entry.get("key_id"),
                                 bytes.fromhex(signature) if signature else None)
            except (ValueError, KeyError, TypeError):  # not one of ours: not an answer
                continue

    def dead_letter_end(self) -> int:
        try:
            return self.dead.stat().st_size
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        pass


def _append(path: Path, record: bytes) -> int:
    data, _ = encode([record])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AppendError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one publisher at a time: frames never interleave
        position = os.fstat(fd).st_size
        append_durably(fd, data, position, path)
        return position
    finally:
        os.close(fd)


class LocalRequestConsumer:
    """Follows ``requests.log`` from the group's committed position."""

    def __init__(self, path: Path, offset_file: Path) -> None:
        self._offset_file = offset_file
        start = int(offset_file.read_text()) if offset_file.exists() else 0
        self._stop = threading.Event()
        log = LocalEventLog(path, poll_interval=0.02)
        self._records: Iterator[StoredRecord | None] = log.follow(start, self._stop)

    def poll(self, timeout: float) -> Delivery | None:
        item = next(self._records)  # waits the log's poll interval when idle
        if item is None:
            return None
        position, blob = item
        return Delivery(position, blob, None, {}, position + HEADER.size + len(blob))

    def commit(self, delivery: Delivery) -> None:
        try:
            replace_durably(self._offset_file, str(delivery.end).encode())
        except OSError as exc:
            raise AppendError(f"cannot record the position of handled requests in "
                              f"{self._offset_file}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._records, "close", None)
        if close is not None:
            close()
