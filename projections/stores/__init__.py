"""Projection stores: where the worker writes documents and the reader finds them.

The port is :class:`ProjectionStore`; its adapters are ``sqlite.py`` (the embedded default)
and ``couchbase.py``. The composition root (:func:`flamingock_es.namespace.open_store`)
chooses one from a URL; the Couchbase adapter, and its SDK, load only when used.
"""

from __future__ import annotations

from .base import (
    Document,
    ProjectionStore,
    StoreUnavailable,
    Version,
    VersionConflict,
    Versioned,
)

__all__ = [
    "Document",
    "ProjectionStore",
    "StoreUnavailable",
    "Version",
    "VersionConflict",
    "Versioned",
]
