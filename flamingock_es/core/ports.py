"""The ports: what the engine needs from a log, a lock and a request channel, as Protocols.

Adapters live under ``adapters/<tech>/`` (``LocalEventLog``, ``KafkaEventLog``, ...) and pass
the same contract suites in ``tests/contracts/``. They translate driver errors into
:mod:`flamingock_es.errors`; nothing above this layer sees a driver exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = [
    "CheckpointStore",
    "Cosigner",
    "DeadLetter",
    "Delivery",
    "EventLog",
    "Fleet",
    "FleetMember",
    "FleetResult",
    "Lease",
    "Lock",
    "LogWriter",
    "RequestChannel",
    "RequestConsumer",
    "SnapshotStore",
    "StoredRecord",
    "Timestamper",
    "WaitCallback",
    "WorkItem",
]

StoredRecord = tuple[int, bytes]
"""``(position, bytes)``: a record as the log stores it; positions only ever grow."""

WaitCallback = Callable[[float], None]
"""Called now and then while a lock is being waited for, with the seconds waited so far."""


@runtime_checkable
class Lease(Protocol):
    """Proof of holding a namespace's lock. Writers are bound to one, and refuse once it is lost."""

    holder: str
    """Who holds it, e.g. ``host:pid:run-id``."""
    lock: str
    """Which lock, e.g. ``file:/path/lock`` or ``kafka-group:flamingock.lock.ns``."""

    @property
    def generation(self) -> int:
        """Fencing generation: grows with every acquisition that records anything."""
        ...

    @property
    def lost(self) -> bool:
        """True once the lock was revoked, evicted or fenced."""
        ...

    def check(self) -> None:
        """Raise :class:`~flamingock_es.errors.LockLostError` if the lock is gone."""
        ...

    def release(self) -> None:
        """Give the lock up. Idempotent."""
        ...


class Lock(Protocol):
    """A namespace's distributed lock: one holder at a time, across processes and hosts."""

    def acquire(
        self, holder: str, timeout: float, on_wait: WaitCallback | None = None
    ) -> Lease:
        """Block until held or ``timeout`` seconds pass (then raise ``LockTimeoutError``)."""
        ...

    def holder(self) -> str | None:
        """Who holds the lock right now (``host:pid:run-id``), if anyone; asked without
        taking it. What tells a change that is running from one whose process is gone."""
        ...

    def close(self) -> None:
        ...


class LogWriter(Protocol):
    """Appends to the log on behalf of one lease."""

    def append(
        self, records: Sequence[bytes], headers: Mapping[str, str] | None = None
    ) -> list[int]:
        """Make ``records`` durable, in order, and return their positions.

        Returns only once the store confirmed them (fsync; broker acks=all and transaction
        commit). Raises ``AppendError`` if that cannot be confirmed and ``LockLostError`` if
        the lease was lost: a runner that lost its lock can never append. Raises
        ``ForeignRecordError`` (with the positions of both) when the records are durable but
        records this writer did not write landed since its previous append.
        """
        ...

    def close(self) -> None:
        ...


class EventLog(Protocol):
    """A namespace's append-only audit log of encoded events."""

    name: str
    """Where it lives, for messages: ``file:/path/audit.log`` or ``kafka:topic@host``."""
    @property
    def messaging(self) -> Mapping[str, str]:
        """OpenTelemetry messaging attributes of where it lives (system, destination name)."""
        ...

    def read(self, start: int = 0) -> Iterator[StoredRecord]:
        """Every record from position ``start`` up to the log's end as of the call."""
        ...

    def record_at(self, position: int) -> bytes | None:
        """The bytes of the record stored at ``position``, if one starts there (a proof's
        event: read alone, not with the rest of the log)."""
        ...

    def follow(self, start: int, stop: threading.Event) -> Iterator[StoredRecord | None]:
        """Records from ``start`` on, forever; ``None`` when idle, so a caller can flush.

        Ends when ``stop`` is set.
        """
        ...

    def exists(self) -> bool:
        """True once the namespace was created (by any writer); its log may still be empty."""
        ...

    def writer(self, lease: Lease) -> LogWriter:
        """A writer fenced by ``lease``."""
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change request as consumed: where it sits, its raw bytes and headers."""

    position: int
    value: bytes
    key: str | None
    headers: Mapping[str, str]
    end: int
    """The position to commit once it is handled (the next record's)."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One tenant of a rollout's wave, as a fleet worker consumed it (and where from)."""

    rollout_id: str
    wave: int
    tenant: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class FleetResult:
    """How a fleet worker's run of one tenant ended (``result``: a run outcome's value,
    ``UP_TO_DATE`` or ``BLOCKED``; ``error`` in words)."""

    rollout_id: str
    wave: int
    tenant: str
    result: str
    run_id: str | None
    error: str | None
    worker: str


class FleetMember(Protocol):
    """One worker's share of a fleet: the bus's group assignment decides which tenants."""

    def poll(self, timeout: float = 0.2) -> WorkItem | None:
        """The next tenant to run, or ``None`` when there is none now."""

    def commit(self, item: WorkItem) -> None:
        """``item`` is done and reported: the next owner of its place starts after it."""

    def close(self) -> None: ...


class Fleet(Protocol):
    """Where a rollout's coordinator hands tenants to a fleet of workers and reads back
    what each run did."""

    def ensure(self) -> None:
        """Create what is missing (topics)."""

    def publish(self, rollout_id: str, wave: int, tenants: Sequence[str]) -> None:
        """Hand ``tenants`` to the fleet; returns once they are durable."""

    def report(self, result: FleetResult) -> None:
        """A worker's outcome of one tenant; returns once it is durable."""

    def results(self, rollout_id: str, until: Callable[[], bool],
                idle: Callable[[], None] = ...) -> Iterator[FleetResult]:
        """Every result of ``rollout_id`` ever reported, as they come, until ``until()``."""

    def worker(self, member: str) -> FleetMember:
        """Join the fleet's group as ``member``."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A request the runners refused before anything was recorded about it, and why; signed
    by the runner that refused it, when it has a key (so a requester can believe it)."""

    position: int
    """Where it is among the dead letters."""
    source: int
    """Where the request was on the channel."""
    reason: str
    value: bytes
    key_id: str | None = None
    signature: bytes | None = None


class RequestConsumer(Protocol):
    """A runner group's cursor over the request channel; commits are explicit."""

    def poll(self, timeout: float) -> Delivery | None:
        """The next request, or ``None`` if none arrived within ``timeout`` seconds."""
        ...

    def commit(self, delivery: Delivery) -> None:
        """Mark ``delivery`` handled: the group will not be given it again."""
        ...

    def close(self) -> None:
        ...


class RequestChannel(Protocol):
    """Where services publish change requests for a namespace, and runners consume them."""

    destination: str
    """Where it lives, for messages: a topic name or ``file:/path/requests.log``."""
    @property
    def messaging(self) -> Mapping[str, str]:
        """OpenTelemetry messaging attributes of where it lives (system, destination name)."""
        ...
    group: str
    """The consumer group of the namespace's runners."""

    def publish(self, key: str, value: bytes, headers: Mapping[str, str] | None = None) -> int:
        """Make one request durable; returns its position once the store confirmed it.

        Raises ``AppendError`` if that cannot be confirmed.
        """
        ...

    def consumer(self, group: str | None = None) -> RequestConsumer:
        """A consumer in ``group`` (default: the namespace's runner group)."""
        ...

    dead_letter_destination: str
    """Where refused requests go, for messages."""

    def dead_letter(self, delivery: Delivery, reason: str, key_id: str | None = None,
                    signature: bytes | None = None) -> None:
        """Keep a refused request, with why (signed by the refusing runner, when given),
        where an operator can look at it and its requester can learn of it."""
        ...

    def dead_letters(self, start: int = 0) -> Iterator[DeadLetter]:
        """The dead letters from position ``start`` on, as far as the channel has them."""
        ...

    def dead_letter_end(self) -> int:
        """The position the next dead letter will take: a requester reads from there on."""
        ...

    def close(self) -> None:
        ...


class SnapshotStore(Protocol):
    """Where a namespace's latest snapshot lives, beside its log (a cache: the log decides)."""

    def latest(self) -> bytes | None:
        """The latest snapshot's bytes, or ``None`` if there is none."""
        ...

    def save(self, data: bytes) -> None:
        """Make ``data`` the latest snapshot. Raises ``AppendError`` if it cannot."""
        ...

    def close(self) -> None: ...


class CheckpointStore(Protocol):
    """Where a namespace's signed checkpoints are published, beside its log: one record per
    tree size (publishing a size again replaces it: cosignatures added later)."""

    where: str
    """Where it lives, for messages: a folder or a topic."""

    def publish(self, size: int, data: bytes) -> None:
        """Make ``data`` the checkpoint of tree size ``size``. Raises ``AppendError`` if the
        store cannot confirm it."""
        ...

    def latest(self) -> bytes | None:
        """The checkpoint published last, or ``None``."""
        ...

    def history(self) -> list[bytes]:
        """Every checkpoint kept, oldest first (the last one published for each size)."""
        ...

    def close(self) -> None: ...


class Cosigner(Protocol):
    """A witness (c2sp.org/tlog-witness) this namespace's runners submit checkpoints to."""

    name: str
    """Its key name, as its cosignature lines carry it."""
    vkey: str
    """Its verifier key (type 0x04), which its cosignatures verify with."""

    def cosign(self, note: bytes, old_size: int, proof: Sequence[bytes]) -> list[str]:
        """Its cosignature lines for the signed checkpoint ``note``, given the size it last
        cosigned and the consistency proof from there. Raises a ``WitnessError``."""
        ...


class Timestamper(Protocol):
    """An RFC 3161 time-stamping authority."""

    def timestamp(self, digest: bytes) -> bytes:
        """A verified token (DER ``TimeStampResp``) over the SHA-256 ``digest``. Raises a
        ``TimestampError``."""
        ...

    def verify(self, token: bytes, digest: bytes) -> datetime:
        """When the TSA says ``token`` was made for ``digest`` (its genTime, UTC). Raises
        ``TimestampInvalidError`` when it does not verify against the TSA's CA."""
        ...
