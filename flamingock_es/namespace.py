"""The composition root: a namespace's settings in, its parts out.

The one module that chooses and builds adapters (``local:PATH``, the embedded default, or
``kafka://HOST:PORT`` for the log, the lock, the request channel and the snapshot store;
``sqlite:PATH`` or ``couchbase://...`` for the projection store) and the one place where a
port is wrapped for tracing. It also loads what the settings name for signing (the trust
store, this process's key) and makes the reader every flow reads the log through. The
flows receive the :class:`~flamingock_es.core.backend.Backend` it returns::

    with open_namespace(resolve_settings("flamingock.yaml")) as backend:
        state = backend.reader.catch_up(backend.log)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path

from .core.backend import NAMESPACE_PATTERN, Backend
from .core.codec import AuditCodec
from .core.logtree import LogTree
from .core.ports import Cosigner, Fleet, Timestamper
from .core.reading import LogReader
from .core.recorder import Observer
from .core.trust import Signer, TrustStore, check_writer, load_signer
from .core.witness import HeadMemory
from .definition.settings import Settings
from .definition.trust_config import load_trust
from .errors import ConfigError, MissingExtraError, NamespaceNotFoundError, Remedy, RemedyKind
from .projections.stores.base import ProjectionStore
from .run.signals import Interrupts
from .telemetry.spans import TracingObserver, enabled, traced_lock

__all__ = [
    "Backend",
    "existing_namespace",
    "fleet_of",
    "interrupts",
    "not_found",
    "observers",
    "open_backend",
    "open_namespace",
    "open_store",
    "settings_store",
    "signer_of",
    "timestamper_of",
    "token_checker",
    "trust_of",
    "witnesses_of",
]

_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def trust_of(settings: Settings) -> TrustStore | None:
    """The trust store the settings name, loaded; ``None`` when there is none."""
    return load_trust(settings.trust, settings.base)


def signer_of(settings: Settings) -> Signer | None:
    """This process's signing key, as the settings name it; ``None`` when there is none."""
    if not settings.signing_key:
        return None
    return load_signer(settings.signing_key, settings.key_passphrase)


def open_namespace(settings: Settings, *, create: bool = True, write: bool = False,
                   proofs: bool = False) -> Backend:
    """The parts of ``settings``' namespace. ``create=False`` is for commands that only read:
    they never create what is missing (``log.exists()`` then says so). ``write``: a runner
    that appends, which with a trust store must sign with a key it trusts (and submits its
    checkpoints to the trust store's witnesses and TSA). ``proofs``: the log's tree on disk
    too, for ``prove`` (a local log always keeps one beside it)."""
    trust, signer = trust_of(settings), signer_of(settings)
    if write:
        check_writer(trust, signer, settings.namespace)
    reader = LogReader(AuditCodec(reader=False if settings.pure_python else None), trust)
    backend = open_backend(settings.bus, settings.namespace, settings.bus_options,
                           create=create, reader=reader, signer=signer)
    if write:
        backend.heads = _heads(settings)
        if trust is not None:
            backend.witnesses = witnesses_of(trust)
            backend.timestamper = timestamper_of(trust)
    if proofs and backend.proofs is None:
        backend.proofs = LogTree(_off_bus(settings, "tree"))
    return backend


def witnesses_of(trust: TrustStore) -> tuple[Cosigner, ...]:
    """The witnesses the trust store names with a URL, as clients runners submit to (the
    HTTP client, and the ssl and http modules under it, imported only when there is one:
    ~35 ms of every run's start-up)."""
    asked = [w for w in trust.witnesses if w.url]
    if not asked:
        return ()
    from .adapters.witness import HttpWitness

    return tuple(HttpWitness(w.name, w.vkey, w.url) for w in asked)


def timestamper_of(trust: TrustStore | None, *, asking: bool = True) -> Timestamper | None:
    """The trust store's time-stamping authority as a client (``asking``: only one with a
    URL to ask; otherwise one that only checks tokens against its CA). Needs the
    ``timestamp`` extra."""
    tsa = trust.timestamp_authority if trust is not None else None
    if tsa is None or (asking and not tsa.url):
        return None
    from .adapters.timestamp import Rfc3161Timestamper

    return Rfc3161Timestamper(tsa.url, tsa.ca)


def token_checker(ca: Path) -> Timestamper:
    """Checks RFC 3161 tokens against the CA certificate(s) in ``ca`` (``verify-proof``,
    ``evidence``); needs the ``timestamp`` extra."""
    from .adapters.timestamp import Rfc3161Timestamper

    return Rfc3161Timestamper("", ca)


def _off_bus(settings: Settings, what: str) -> Path:
    """A folder of this namespace's beside its workflow, off the bus (like the heads)."""
    prefix = settings.bus_options.get("topic_prefix", "")
    bus = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{settings.bus}{prefix}").strip("_")
    return settings.base / ".flamingock" / what / f"{settings.namespace}@{bus}"


def _heads(settings: Settings) -> HeadMemory:
    """Where a runner keeps the last head it saw: beside the workflow, off the bus, one file
    per namespace and bus (``.flamingock/heads/NAMESPACE@BUS.json``)."""
    from .adapters.local import LocalSnapshots

    prefix = settings.bus_options.get("topic_prefix", "")
    bus = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{settings.bus}{prefix}").strip("_")
    folder = settings.base / ".flamingock" / "heads"
    name = f"{settings.namespace}@{bus}.json"
    return HeadMemory(LocalSnapshots(folder, name), str(folder / name))


def existing_namespace(settings: Settings, *, write: bool = False,
                       proofs: bool = False) -> Backend:
    """The parts of a namespace that was written before (read-only commands, and the
    decisions about its history); a namespace with no log is an error (a typo, usually), and
    nothing is created."""
    backend = open_namespace(settings, create=False, write=write, proofs=proofs)
    if not backend.log.exists():
        backend.close()
        raise not_found(settings, backend)
    return backend


def not_found(settings: Settings, backend: Backend) -> ConfigError:
    """The error for a namespace whose log does not exist where a command looked for it;
    for a workflow that runs per tenant, named without one, that it needs ``--tenant``."""
    if settings.tenant_unnamed:
        return tenant_needed(settings, reading=True)
    declared = settings.declared_namespace
    named = f" (the workflow file names {declared!r})" \
        if declared is not None and declared != settings.namespace else ""
    return NamespaceNotFoundError(
        f"namespace {settings.namespace!r} has no audit log at {backend.log.name}: nothing "
        f"was ever recorded there{named}. Check the namespace and the bus (flags, or the "
        "workflow file).")


def tenant_needed(settings: Settings, *, reading: bool = False) -> ConfigError:
    """The error for a command that needs one namespace, given a workflow that runs per
    tenant and no tenant: its own namespace holds nothing (its rollouts have theirs)."""
    elsewhere = "; its rollouts are in `flamingock-es rollout status`" if reading else \
        ", or apply it to every tenant with `flamingock-es rollout`"
    kind = NamespaceNotFoundError if reading else ConfigError
    return kind(
        f"workflow {settings.name!r} runs per tenant (tenants: in {settings.source}): name one "
        f"with --tenant ID (its namespace is {settings.namespace}.ID){elsewhere}.",
        remedies=(Remedy(RemedyKind.TENANT),
                  Remedy(RemedyKind.ROLLOUT_STATUS if reading else RemedyKind.ROLLOUT)))


def open_backend(bus: str, namespace: str, options: Mapping[str, str] | None = None, *,
                 create: bool = True, reader: LogReader | None = None,
                 signer: Signer | None = None) -> Backend:
    """The log, lock, request channel and snapshot store of ``namespace`` on ``bus``.

    ``options`` are adapter settings (Kafka: ``topic_prefix``, ``replication_factor``, and any
    librdkafka property such as ``security.protocol``). Tools and tests that need the ports
    alone call this; commands call :func:`open_namespace`.
    """
    if not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"namespace {namespace!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(it becomes part of topic and file names).")
    options = dict(options or {})
    if bus.startswith("kafka://"):
        backend = _kafka(bus, namespace, options, create)
    elif bus == "local" or bus.startswith(("local:", "file:")):
        backend = _local(bus, namespace, options)
    else:
        raise ConfigError(
            f"unknown bus {bus!r}: use local:PATH for the embedded log, or kafka://HOST:PORT.")
    backend.lock = traced_lock(backend.lock, namespace)
    backend.reader = reader or LogReader()
    backend.signer = signer
    return backend


def _local(bus: str, namespace: str, options: Mapping[str, str]) -> Backend:
    from .adapters.local import (
        FileLock,
        LocalCheckpoints,
        LocalEventLog,
        LocalRequestChannel,
        LocalSnapshots,
    )

    root = Path(bus.partition(":")[2] or ".flamingock") / namespace
    return Backend(bus, namespace, LocalEventLog(root / "audit.log"), FileLock(root / "lock"),
                   LocalRequestChannel(root), LocalSnapshots(root), options=options,
                   checkpoints=LocalCheckpoints(root), proofs=LogTree(root / "tree"))


def _kafka(bus: str, namespace: str, options: Mapping[str, str], create: bool) -> Backend:
    try:
        from .adapters.kafka import (
            KafkaCheckpoints,
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
                   KafkaSnapshots(settings, topics), options=options,
                   checkpoints=KafkaCheckpoints(settings, topics))


def fleet_of(settings: Settings, namespace: str, partitions: int | None = None) -> Fleet:
    """The fleet that shares ``namespace``'s rollouts (the work topic with ``partitions``,
    created if missing): a Kafka consumer group, so only on a Kafka bus."""
    if not settings.bus.startswith("kafka://"):
        raise ConfigError(f"a fleet of workers shares tenants through a Kafka consumer group: "
                          f"the bus {settings.bus!r} is not Kafka (--bus kafka://HOST:PORT); "
                          "without --fleet the rollout runs its tenants here")
    try:
        from .adapters.kafka import parse_bus
        from .adapters.kafka.fleet import DEFAULT_PARTITIONS, KafkaFleet
    except ImportError as exc:
        raise MissingExtraError(f"the Kafka bus ({settings.bus})", "kafka",
                                exc.name or "confluent-kafka") from exc
    fleet = KafkaFleet(parse_bus(settings.bus, settings.bus_options), namespace,
                       partitions or DEFAULT_PARTITIONS)
    fleet.ensure()
    return fleet


def open_store(url: str, options: Mapping[str, str] | None = None,
               defaults: Mapping[str, str] | None = None) -> ProjectionStore:
    """The projection store ``url`` names (``sqlite:PATH`` or ``couchbase[s]://HOSTS?...``);
    ``options`` (credentials and the like) win over ``defaults`` (the settings'
    connections). The Couchbase adapter, and its SDK, load only when used."""
    if url.startswith("sqlite:"):
        from .projections.stores.sqlite import SqliteProjectionStore

        path = url.removeprefix("sqlite:").removeprefix("//") or ".flamingock/projections.db"
        return SqliteProjectionStore(path)
    if url.startswith(("couchbase://", "couchbases://")):
        try:
            from .projections.stores.couchbase import CouchbaseProjectionStore
        except ImportError as exc:
            raise MissingExtraError(f"the Couchbase store ({url})", "couchbase",
                                    exc.name or "couchbase") from exc
        return CouchbaseProjectionStore.from_url(url, options, defaults)
    raise ConfigError(
        f"unknown projection store {url!r}: use sqlite:PATH or couchbase://HOST?bucket=NAME")


def settings_store(settings: Settings) -> ProjectionStore:
    """The projection store of ``settings``."""
    return open_store(settings.store, settings.store_options, settings.connections)


def interrupts(settings: Settings, stop: threading.Event | None = None) -> Interrupts:
    """What signals ask of a run (or of ``serve``), with the settings' grace period."""
    return Interrupts(settings.grace_period, stop)


def observers(namespace: str, progress: Observer) -> list[Observer]:
    """Who hears of a run's steps: ``progress``, and the spans when tracing is on."""
    return [progress, TracingObserver(namespace)] if enabled() else [progress]
