"""A namespace's parts, as the composition root (:mod:`flamingock_es.namespace`) built them:
what every flow receives, and nothing builds again.

The ports of its bus (the log, the lock, the request channel, the snapshot store), the
reader every reader of the log goes through, and, where the namespace is signed, the trust
store and this process's signing key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from .logtree import LogTree
from .ports import (
    CheckpointStore,
    Cosigner,
    EventLog,
    Lock,
    RequestChannel,
    SnapshotStore,
    Timestamper,
)
from .reading import LogReader
from .trust import Signer, TrustStore
from .witness import HeadMemory

__all__ = ["NAMESPACE_PATTERN", "Backend"]

NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$"
"""What a namespace may be called: it becomes part of topic and file names."""


@dataclass
class Backend:
    """One namespace's parts, opened together; close them together (a context manager)."""

    bus: str
    namespace: str
    log: EventLog
    lock: Lock
    requests: RequestChannel
    snapshots: SnapshotStore
    reader: LogReader = field(default_factory=LogReader)
    signer: Signer | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    """The bus's options (Kafka: topic prefix, librdkafka properties), as given."""
    heads: HeadMemory | None = None
    """The last head a runner saw of this namespace, kept off the bus (a runner refuses a
    log that lost it); ``None`` for tools that only read."""
    checkpoints: CheckpointStore | None = None
    """Where its signed checkpoints are published, beside the log."""
    proofs: LogTree | None = None
    """The log's tree on disk, for proofs (kept beside a local log; built by ``prove``)."""
    witnesses: tuple[Cosigner, ...] = ()
    """The witnesses its runners submit checkpoints to (from the trust store)."""
    timestamper: Timestamper | None = None
    """The time-stamping authority its runners ask (from the trust store)."""

    @property
    def trust(self) -> TrustStore | None:
        """The trust store the reader checks signatures against, if the namespace has one."""
        return self.reader.trust

    def close(self) -> None:
        self.requests.close()
        self.snapshots.close()
        if self.checkpoints is not None:
            self.checkpoints.close()
        if self.proofs is not None:
            self.proofs.close()
        if self.heads is not None:
            self.heads.store.close()
        self.lock.close()
        self.log.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
