"""Projection stores: where the worker writes documents and the reader finds them.

:func:`open_store` picks the adapter from a URL: ``sqlite:PATH`` (the embedded default) or
``couchbase[s]://HOSTS?bucket=...``. The Couchbase adapter, and its SDK, load only when used.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...definition.settings import DEFAULT_STORE
from ...errors import ConfigError, MissingExtraError
from .base import (
    Document,
    ProjectionStore,
    StoreUnavailable,
    Version,
    VersionConflict,
    Versioned,
)
from .sqlite import SqliteProjectionStore

__all__ = [
    "DEFAULT_STORE",
    "Document",
    "ProjectionStore",
    "SqliteProjectionStore",
    "StoreUnavailable",
    "Version",
    "VersionConflict",
    "Versioned",
    "open_store",
]


def open_store(url: str, options: Mapping[str, str] | None = None) -> ProjectionStore:
    """Open the projection store that ``url`` names (``options``: credentials and the like)."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:").removeprefix("//") or ".flamingock/projections.db"
        return SqliteProjectionStore(path)
    if url.startswith(("couchbase://", "couchbases://")):
        try:
            from .couchbase import CouchbaseProjectionStore
        except ImportError as exc:
            raise MissingExtraError(f"the Couchbase store ({url})", "couchbase",
                                    exc.name or "couchbase") from exc

        return CouchbaseProjectionStore.from_url(url, options)
    raise ConfigError(
        f"unknown projection store {url!r}: use sqlite:PATH or couchbase://HOST?bucket=NAME")
