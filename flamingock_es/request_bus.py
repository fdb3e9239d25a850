"""Where change requests travel: the Kafka requests topic, or a local file beside the log.

Kafka: ``{prefix}.requests.{ns}`` (named by the adapter's :func:`topic_name`), keyed by request
id, with the W3C trace context in the message headers; publishing returns only after the
broker's delivery report (acks=all). The runner reads it in its own consumer group
(``{prefix}.runner.{ns}``) and commits an offset by hand, after the run's outcome is durable.

Local (``local:PATH``): ``PATH/<ns>/requests.log`` in the same framing as
:class:`~flamingock_es.adapters.local.LocalEventLog`, and the group's committed position in
``requests.<group>.offset``. Headers are not stored there; the request's own ``trace`` field
carries the context.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from .errors import AppendError, ConfigError
from .requests import ChangeRequest, RequestCodec

__all__ = ["Delivery", "RequestBus", "RequestConsumer", "open_request_bus"]

_FRAME = struct.Struct(">II")  # LocalEventLog's framing: length, CRC-32


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request as consumed: where it sits, its raw bytes and headers."""

    position: int
    value: bytes
    key: str | None
    headers: Mapping[str, str]
    end: int
    """The position to commit once it is handled (the next record's)."""


class RequestConsumer(Protocol):
    def poll(self, timeout: float) -> Delivery | None: ...
    def commit(self, delivery: Delivery) -> None: ...
    def close(self) -> None: ...


class RequestBus:
    """A namespace's request channel. Use as a context manager."""

    destination: str
    codec: RequestCodec

    def publish(self, request: ChangeRequest, headers: Mapping[str, str] | None = None) -> None:
        raise NotImplementedError

    def consumer(self, group: str) -> RequestConsumer:
        raise NotImplementedError

    def close(self) -> None: ...

    def __enter__(self) -> RequestBus:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_request_bus(bus: str, namespace: str,
                     options: Mapping[str, str] | None = None) -> RequestBus:
    """The request channel of ``namespace`` on ``bus`` (``kafka://...`` or ``local:PATH``)."""
    if bus.startswith("kafka://"):
        return KafkaRequestBus(bus, namespace, options)
    if bus == "local" or bus.startswith(("local:", "file:")):
        root = Path(bus.partition(":")[2] or ".flamingock") / namespace
        return LocalRequestBus(root)
    raise ConfigError(f"unknown bus {bus!r}: use local:PATH or kafka://HOST:PORT.")


def runner_group(prefix: str, namespace: str) -> str:
    """The consumer group of the runners serving ``namespace``."""
    from .adapters.kafka.config import topic_name

    return topic_name(prefix, "runner", namespace)


# Kafka ------------------------------------------------------------------------------------

class KafkaRequestBus(RequestBus):
    """Requests on ``{prefix}.requests.{ns}``."""

    def __init__(self, bus: str, namespace: str, options: Mapping[str, str] | None) -> None:
        from .adapters.kafka.config import parse_bus

        self.settings = parse_bus(bus, options)
        self.destination = self.settings.topics(namespace).requests
        self.group = runner_group(self.settings.topic_prefix, namespace)
        self.codec = RequestCodec()
        self._producer: Any = None

    def publish(self, request: ChangeRequest, headers: Mapping[str, str] | None = None) -> None:
        from confluent_kafka import KafkaException, Producer

        if self._producer is None:
            self._producer = Producer(self.settings.config(
                {"acks": "all", "enable.idempotence": True, "linger.ms": 0}))
        errors: list[object] = []
        try:
            self._producer.produce(
                self.destination, self.codec.encode(request), key=request.request_id.encode(),
                headers=[(k, v.encode()) for k, v in (headers or {}).items()] or None,
                on_delivery=lambda err, _msg: errors.append(err) if err else None)
            left = self._producer.flush(30)
        except KafkaException as exc:
            raise AppendError(f"could not publish request {request.request_id} to "
                              f"{self.destination}: {exc}") from exc
        if errors or left:
            raise AppendError(f"the broker did not confirm request {request.request_id} on "
                              f"{self.destination} ({errors or 'no delivery report'}); "
                              "publish it again with the same id (it runs once).")

    def consumer(self, group: str | None = None) -> KafkaRequestConsumer:
        return KafkaRequestConsumer(self, group or self.group)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


class KafkaRequestConsumer:
    """The runner group's consumer; offsets are committed by hand, synchronously."""

    def __init__(self, bus: KafkaRequestBus, group: str) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(bus.settings.config({
            "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "enable.partition.eof": False}))
        self._consumer.subscribe([bus.destination])

    def poll(self, timeout: float) -> Delivery | None:
        msg = self._consumer.poll(timeout)
        if msg is None:
            return None
        err = msg.error()
        if err is not None:
            from confluent_kafka import KafkaError

            if err.code() == KafkaError._PARTITION_EOF:
                return None
            raise AppendError(f"reading change requests: {err}")
        headers: dict[str, str] = {}
        for name, raw in list(msg.headers() or []):
            if raw is not None:
                headers[str(name)] = raw.decode() if isinstance(raw, bytes) else str(raw)
        key = msg.key()
        offset = int(msg.offset() or 0)
        value = msg.value()
        return Delivery(offset, value if isinstance(value, bytes) else b"",
                        key.decode(errors="replace") if isinstance(key, bytes) else None,
                        headers, offset + 1)

    def commit(self, delivery: Delivery) -> None:
        from confluent_kafka import TopicPartition

        assignment = self._consumer.assignment()
        topic = assignment[0].topic if assignment else None
        if topic is not None:
            self._consumer.commit(offsets=[TopicPartition(topic, 0, delivery.end)],
                                  asynchronous=False)

    def close(self) -> None:
        self._consumer.close()


# Local ------------------------------------------------------------------------------------

class LocalRequestBus(RequestBus):
    """Requests in ``ROOT/requests.log`` (LocalEventLog framing, fsynced)."""

    def __init__(self, root: Path) -> None:
        self.path = root / "requests.log"
        self.destination = f"file:{self.path}"
        self.codec = RequestCodec()

    def publish(self, request: ChangeRequest, headers: Mapping[str, str] | None = None) -> None:
        blob = self.codec.encode(request)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:  # one write of one frame: O_APPEND keeps concurrent requesters' frames whole
            os.write(fd, _FRAME.pack(len(blob), zlib.crc32(blob)) + blob)
            os.fsync(fd)
        except OSError as exc:
            raise AppendError(f"could not write request to {self.path}: {exc}") from exc
        finally:
            os.close(fd)

    def consumer(self, group: str = "runner") -> LocalRequestConsumer:
        return LocalRequestConsumer(self.path, self.path.with_name(f"requests.{group}.offset"))


class LocalRequestConsumer:
    """Follows ``requests.log`` from the committed position."""

    def __init__(self, path: Path, offset_file: Path) -> None:
        from .adapters.local import LocalEventLog

        self._offset_file = offset_file
        start = int(offset_file.read_text()) if offset_file.exists() else 0
        self._stop = threading.Event()
        log = LocalEventLog(path, poll_interval=0.02)
        self._records: Iterator[tuple[int, bytes] | None] = log.follow(start, self._stop)

    def poll(self, timeout: float) -> Delivery | None:
        item = next(self._records)  # waits the log's poll interval when idle
        if item is None:
            return None
        position, blob = item
        return Delivery(position, blob, None, {}, position + _FRAME.size + len(blob))

    def commit(self, delivery: Delivery) -> None:
        tmp = self._offset_file.with_suffix(".tmp")
        tmp.write_text(str(delivery.end))
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self._offset_file)

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._records, "close", None)
        if close is not None:
            close()
