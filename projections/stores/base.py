"""The ``ProjectionStore`` port: a key-value store of JSON documents with compare-and-set.

Every adapter (``SqliteProjectionStore``, ``CouchbaseProjectionStore``) passes the contract
suite in ``tests/contracts/projection_store_contract.py``. Adapters translate their driver's
errors into :class:`~flamingock_es.errors.StoreError` (and :class:`VersionConflict` for a lost
compare-and-set); nothing above them sees a driver exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ...errors import StoreError

__all__ = ["Document", "ProjectionStore", "StoreUnavailable", "Version", "VersionConflict",
           "Versioned"]

Document = dict[str, Any]
Version = int
"""An opaque version (Couchbase: the CAS). Equal versions mean an unchanged document."""


class Versioned(NamedTuple):
    """A stored document and the version to pass back to :meth:`ProjectionStore.write`."""

    doc: Document
    version: Version


class VersionConflict(StoreError):
    """A compare-and-set lost: the document changed (or appeared, or vanished) meanwhile."""

    def __init__(self, key: str, message: str = "") -> None:
        super().__init__(message or f"document {key!r} was changed by another writer")
        self.key = key


class StoreUnavailable(StoreError):
    """The store could not be reached, even after the adapter's bounded retries."""


@runtime_checkable
class ProjectionStore(Protocol):
    """Where projected documents live; reads and writes are by key only (no query service)."""

    name: str
    """Where it is, for messages: ``sqlite:/path`` or ``couchbase://host/bucket``."""

    def get(self, key: str) -> Versioned | None:
        """The document under ``key`` and its version, or ``None`` if there is none."""
        ...

    def get_many(self, keys: Sequence[str]) -> dict[str, Versioned]:
        """The documents that exist among ``keys`` (missing keys are left out)."""
        ...

    def lookup(self, key: str, paths: Sequence[str]) -> dict[str, Any] | None:
        """Some fields of a document (dotted paths; sub-document lookup on Couchbase).

        A path that the document lacks maps to ``None``; a missing document gives ``None``.
        """
        ...

    def write(self, key: str, doc: Document, expected: Version | None) -> Version:
        """Compare-and-set: store ``doc`` if the current version is ``expected``.

        ``expected=None`` means the document must not exist yet. Returns the new version;
        raises :class:`VersionConflict` if the condition does not hold.
        """
        ...

    def write_many(self, items: Sequence[tuple[str, Document, Version | None]]
                   ) -> dict[str, Version | VersionConflict]:
        """:meth:`write` for several documents at once (pipelined where the store can).

        Maps each key to its new version, or to the :class:`VersionConflict` it met; any other
        failure raises. The writes are not atomic together.
        """
        ...

    def delete(self, key: str, expected: Version | None = None) -> bool:
        """Remove ``key`` (only at version ``expected`` if given). False if it did not exist."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Group the writes of one projection batch (SQLite: one transaction)."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


def write_each(store: ProjectionStore, items: Sequence[tuple[str, Document, Version | None]]
               ) -> dict[str, Version | VersionConflict]:
    """:meth:`ProjectionStore.write_many` done one write at a time."""
    out: dict[str, Version | VersionConflict] = {}
    for key, doc, expected in items:
        try:
            out[key] = store.write(key, doc, expected)
        except VersionConflict as conflict:
            out[key] = conflict
    return out


def dig(doc: Document, path: str) -> Any:
    """The value at dotted ``path`` in ``doc``, or ``None``."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size``."""
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
