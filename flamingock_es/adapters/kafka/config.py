"""Kafka settings: the bus URL and options turned into topic names and librdkafka configs.

``kafka://HOST:PORT[,HOST2:PORT2][?topic_prefix=...]`` plus an options mapping (from
``flamingock.yaml`` or the CLI). Options without a dot are ours (``topic_prefix``,
``replication_factor``, ``min_insync_replicas``); every option with a dot in its name is a
librdkafka property (``security.protocol``, ``sasl.password``, ...) passed through to every
client. Their values never reach a log: see :func:`redacted`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ...errors import ConfigError

__all__ = [
    "DEFAULT_PREFIX",
    "KafkaSettings",
    "Topics",
    "new_client",
    "parse_bus",
    "redacted",
    "topic_name",
    "topics_for",
]

DEFAULT_PREFIX = "flamingock"
_OWN_OPTIONS = frozenset({"topic_prefix", "replication_factor", "min_insync_replicas"})
_SECRET = re.compile(r"password|secret|key", re.IGNORECASE)
_PREFIX = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$")
# Properties the project sets itself: letting options override them would break fencing,
# or (allow.auto.create.topics) let a broker create a namespace's topic with its defaults.
_RESERVED = frozenset({
    "transactional.id", "enable.idempotence", "acks", "isolation.level", "group.id",
    "enable.auto.commit", "group.protocol", "bootstrap.servers", "allow.auto.create.topics",
})
_NEVER_AUTO_CREATE = {"allow.auto.create.topics": False}
"""Every client's: a metadata request for a missing topic (``topic_exists`` of a read-only
command, the topic check of a first run) or a produce to one must never let a broker with
``auto.create.topics.enable=true`` (Kafka's default) create it with the broker's defaults
(seven days' retention for an audit log). librdkafka's default is true for producers, and an
AdminClient is one; topics are created by ``ensure_topics``, with their configs."""

KINDS = ("audit", "lock", "requests", "requests-dlq", "snapshots", "checkpoints")
_LIBRDKAFKA_LOG = logging.getLogger("flamingock_es.kafka.librdkafka")


class _Repeats(logging.Filter):
    """librdkafka says so again at every reconnect attempt while a broker is away (a run
    across a broker restart printed 165 lines of it): each kind of line is shown once a
    minute, with how many like it were left out, and a connection refused is a warning (the
    clients retry; an error is what they give up on, which this project reports itself)."""

    WINDOW = 60.0
    _DIGITS = re.compile(r"\d+")
    _ENDING = "another concurrent operation on the same transaction"
    _RETRIED = ("Connection refused", "Disconnected", "Connect to ipv", "Broker transport failure",
                "Timed out")

    def __init__(self) -> None:
        super().__init__()
        self._seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        key = self._DIGITS.sub("#", text)[:240]
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.WINDOW:
                seen[1] += 1
                return False
            left_out = int(seen[1]) if seen is not None else 0
            self._seen[key] = [now, 0]
        if left_out:
            record.msg, record.args = f"{text} ({left_out} more like it left out)", ()
        if record.levelno >= logging.ERROR and any(word in text for word in self._RETRIED):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        elif "ConsumerGroupHeartbeat" in text:  # a broker without KIP-848: the lock falls back
            record.levelno, record.levelname = logging.INFO, "INFO"
        elif self._ENDING in text:  # a writer's init_transactions ends what a dead one left
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = (
                "a transaction left open by an earlier holder of this writer's transactional "
                "id (a process that died mid-append) is being aborted by the broker; waiting "
                "for it (librdkafka: %s)", (text,))
        return True


_LIBRDKAFKA_LOG.addFilter(_Repeats())
_CLIENT = TypeVar("_CLIENT")
# librdkafka's words for a property it does not know or a value it refuses
_BAD_PROPERTY = re.compile(r'No such configuration property: "([^"]+)"|'
                           r'Invalid value "[^"]*" for configuration property "([^"]+)"|'
                           r'configuration property "([^"]+)"')


def topic_name(prefix: str, kind: str, namespace: str) -> str:
    """``{prefix}.{kind}.{namespace}``: the one naming rule every module uses."""
    return f"{prefix}.{kind}.{namespace}"


@dataclass(frozen=True, slots=True)
class Topics:
    """A namespace's topics, and its consumer groups (named by the same rule)."""

    audit: str
    lock: str
    requests: str
    dead_letters: str
    snapshots: str
    runner_group: str
    checkpoints: str = ""

    @property
    def lock_group(self) -> str:
        """The lock is the assignment of the lock topic's partition in this group."""
        return self.lock


def topics_for(prefix: str, namespace: str) -> Topics:
    """The topic and group names of ``namespace``."""
    audit, lock, requests, dead_letters, snapshots, checkpoints = (
        topic_name(prefix, kind, namespace) for kind in KINDS)
    return Topics(audit, lock, requests, dead_letters, snapshots,
                  topic_name(prefix, "runner", namespace), checkpoints)


@dataclass(frozen=True)
class KafkaSettings:
    """Everything a Kafka client of this project needs, parsed and checked once."""

    bootstrap: str
    topic_prefix: str = DEFAULT_PREFIX
    replication_factor: int | None = None
    """Of created topics; ``None``: chosen from the cluster's size (see ``admin.replication``)."""
    min_insync_replicas: int | None = None
    client: Mapping[str, str] = field(default_factory=dict)
    """Pass-through librdkafka properties (security and tuning); may hold secrets."""

    def topics(self, namespace: str) -> Topics:
        return topics_for(self.topic_prefix, namespace)

    def config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A librdkafka config: bootstrap, pass-through properties, then ``extra``."""
        return {"bootstrap.servers": self.bootstrap, "logger": _LIBRDKAFKA_LOG,
                **_NEVER_AUTO_CREATE, **self.client, **(extra or {})}

    def describe(self) -> str:
        """For messages: where, and the non-secret settings."""
        return f"Kafka at {self.bootstrap} (topic prefix {self.topic_prefix!r})"


def new_client(factory: Callable[[dict[str, Any]], _CLIENT], conf: dict[str, Any]) -> _CLIENT:
    """``factory(conf)`` (a ``Producer``, ``Consumer`` or ``AdminClient``); a property
    librdkafka refuses (a typo in the ``kafka:`` block) becomes a ``ConfigError`` naming it,
    never a traceback. Values are not echoed: they may be secrets."""
    from confluent_kafka import KafkaException

    try:
        return factory(conf)
    except KafkaException as exc:
        text = str(exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else exc)
        found = _BAD_PROPERTY.search(text)
        if found is None:
            raise
        name = next(group for group in found.groups() if group)
        problem = "is not a librdkafka configuration property" if text.startswith("No such") \
            else "has a value librdkafka refuses"
        raise ConfigError(
            f"Kafka option {name!r} {problem}. Check the kafka: block of the workflow file (or "
            "the bus URL's query) against librdkafka's CONFIGURATION.md.") from exc


def redacted(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``conf`` safe to log: values of keys naming a password, secret or key are hidden."""
    return {k: ("***" if _SECRET.search(k) else v) for k, v in conf.items()}


def _positive_int(name: str, raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"Kafka option {name}={raw!r} must be a positive whole number.")
    return value


def parse_bus(bus: str, options: Mapping[str, Any] | None = None) -> KafkaSettings:
    """Parse ``kafka://HOST:PORT[,...][?topic_prefix=...]`` and ``options``.

    The URL's query and ``options`` are merged (``options`` win). Raises ``ConfigError``
    naming the problem; secrets are never echoed.
    """
    parts = urlsplit(bus)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ConfigError(f"bus {bus!r} is not a Kafka URL: use kafka://HOST:PORT[,HOST:PORT].")
    hosts = [h.strip() for h in parts.netloc.split(",") if h.strip()]
    bad = [h for h in hosts if not _HOST_PORT.match(h)]
    if not hosts or bad:
        raise ConfigError(
            f"bus {bus!r}: every broker must be written HOST:PORT (bad: {', '.join(bad)})."
        )
    merged: dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
    merged.update({str(k): str(v) for k, v in (options or {}).items()})

    client: dict[str, str] = {}
    for key, value in merged.items():
        if key in _OWN_OPTIONS:
            continue
        if "." not in key:
            raise ConfigError(
                f"unknown Kafka option {key!r}: use topic_prefix, replication_factor, "
                "min_insync_replicas, or a librdkafka property such as security.protocol."
            )
        if key in _RESERVED:
            raise ConfigError(
                f"Kafka option {key!r} is set by flamingock-es itself (fencing, or the "
                "topics' own configs, depend on it) and cannot be overridden."
            )
        client[key] = value

    prefix = merged.get("topic_prefix", DEFAULT_PREFIX)
    if not _PREFIX.match(prefix):
        raise ConfigError(
            f"topic_prefix {prefix!r} is not valid: use letters, digits, '.', '_' or '-'."
        )
    raw_rf = merged.get("replication_factor")
    rf = _positive_int("replication_factor", raw_rf) if raw_rf is not None else None
    raw_isr = merged.get("min_insync_replicas")
    isr = _positive_int("min_insync_replicas", raw_isr) if raw_isr is not None else None
    if isr is not None and rf is not None and isr > rf:
        raise ConfigError(
            f"min_insync_replicas={isr} is greater than replication_factor={rf}: no write "
            "could ever succeed."
        )
    return KafkaSettings(",".join(hosts), prefix, rf, isr, client)
