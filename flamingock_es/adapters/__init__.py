"""The composition root: a bus URL in, a namespace's log, lock and request channel out.

``open_backend`` is the one place that chooses and builds adapters (``local:PATH``, the
embedded default, or ``kafka://HOST:PORT``) and the one place where tracing wraps a port.
Everything else receives a :class:`Backend` and uses it as a context manager::

    with open_backend("kafka://127.0.0.1:19092", "shop") as backend:
        backend.log.read()
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..core.ports import EventLog, Lock, RequestChannel, SnapshotStore
from ..errors import ConfigError, MissingExtraError
from ..telemetry.spans import traced_lock

__all__ = ["DEFAULT_BUS", "Backend", "open_backend"]

DEFAULT_BUS = "local:.flamingock"

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")


@dataclass
class Backend:
    """A namespace's event log, lock and request channel, opened together from one bus URL."""

    bus: str
    namespace: str
    log: EventLog
    lock: Lock
    requests: RequestChannel
    snapshots: SnapshotStore
    options: Mapping[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.requests.close()
        self.snapshots.close()
        self.lock.close()
        self.log.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_backend(bus: str, namespace: str, options: Mapping[str, str] | None = None, *,
                 create: bool = True) -> Backend:
    """Open the log, lock and request channel of ``namespace`` on ``bus``.

    ``options`` are adapter settings (Kafka: ``topic_prefix``, ``replication_factor``, and any
    librdkafka property such as ``security.protocol``). ``create=False`` is for commands that
    only read: they never create what is missing (``EventLog.exists`` then says so).
    """
    if not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"namespace {namespace!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(it becomes part of topic and file names)."
        )
    options = dict(options or {})
    if bus.startswith("kafka://"):
        backend = _kafka(bus, namespace, options, create)
    elif bus == "local" or bus.startswith(("local:", "file:")):
        backend = _local(bus, namespace, options)
    else:
        raise ConfigError(
            f"unknown bus {bus!r}: use local:PATH for the embedded log, or kafka://HOST:PORT."
        )
    backend.lock = traced_lock(backend.lock, namespace)
    return backend


def _local(bus: str, namespace: str, options: Mapping[str, str]) -> Backend:
    from .local import FileLock, LocalEventLog, LocalRequestChannel, LocalSnapshots

    root = Path(bus.partition(":")[2] or ".flamingock") / namespace
    return Backend(bus, namespace, LocalEventLog(root / "audit.log"), FileLock(root / "lock"),
                   LocalRequestChannel(root), LocalSnapshots(root), options)


def _kafka(bus: str, namespace: str, options: Mapping[str, str], create: bool) -> Backend:
    try:
        from .kafka import (
            KafkaEventLog,
            KafkaGroupLock,
            KafkaRequestChannel,
            KafkaSnapshots,
            ensure_topics,
            parse_bus,
        )
    except ImportError as exc:
        raise MissingExtraError(f"the Kafka bus ({bus})", "kafka",
                                exc.name or "confluent-kafka") from exc
    settings = parse_bus(bus, options)
    topics = settings.topics(namespace)
    if create:
        ensure_topics(settings, topics)
    return Backend(bus, namespace, KafkaEventLog(settings, topics),
                   KafkaGroupLock(settings, topics), KafkaRequestChannel(settings, topics),
                   KafkaSnapshots(settings, topics), options)
