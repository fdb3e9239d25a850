"""Choosing the adapters from a bus URL: ``local:PATH`` (default) or ``kafka://HOST:PORT``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .ports import EventLog, Lock

__all__ = ["DEFAULT_BUS", "Backend", "open_backend"]

DEFAULT_BUS = "local:.flamingock"

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")


@dataclass
class Backend:
    """A namespace's event log and lock, opened together from one bus URL."""

    bus: str
    namespace: str
    log: EventLog
    lock: Lock
    options: Mapping[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.lock.close()
        self.log.close()


def open_backend(
    bus: str, namespace: str, options: Mapping[str, str] | None = None
) -> Backend:
    """Open the log and lock of ``namespace`` on ``bus``.

    ``options`` are adapter settings (Kafka: ``topic_prefix``, ``replication_factor``, and any
    librdkafka property such as ``security.protocol`` or ``sasl.password``).
    """
    if not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"namespace {namespace!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(it becomes part of topic and file names)."
        )
    options = dict(options or {})
    if bus.startswith("kafka://"):
        from .adapters.kafka import open_kafka_backend  # imported only when used: start-up cost

        return open_kafka_backend(bus, namespace, options)
    if bus == "local" or bus.startswith(("local:", "file:")):
        from .adapters.local import FileLock, LocalEventLog

        root = Path(bus.partition(":")[2] or ".flamingock") / namespace
        return Backend(bus, namespace, LocalEventLog(root / "audit.log"), FileLock(root / "lock"),
                       options)
    raise ConfigError(
        f"unknown bus {bus!r}: use local:PATH for the embedded log, or kafka://HOST:PORT."
    )
