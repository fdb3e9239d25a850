"""The read side: audit events folded into documents that dashboards and the CLI read.

A :class:`ProjectionWorker` follows a namespace's audit log and writes one document per change
unit, per run, the lock, a summary and its checkpoint into a :class:`ProjectionStore`
(SQLite by default, Couchbase by configuration); a :class:`ProjectionReader` reads them back
by key. See ``docs/projections.md``.

The folder is ``projections/`` at the top of the repository; the package is imported as
``flamingock_es.projections`` (a link inside ``flamingock_es``), so installing flamingock-es
adds one top-level name to an application's environment, not a generic ``projections``.
"""

from __future__ import annotations

from .documents import Projection
from .reader import ProjectionReader
from .stores import (
    DEFAULT_STORE,
    ProjectionStore,
    SqliteProjectionStore,
    StoreUnavailable,
    VersionConflict,
    Versioned,
    open_store,
)
from .worker import ProjectedBatch, ProjectionWorker, run_projection

__all__ = [
    "DEFAULT_STORE",
    "ProjectedBatch",
    "Projection",
    "ProjectionReader",
    "ProjectionStore",
    "ProjectionWorker",
    "SqliteProjectionStore",
    "StoreUnavailable",
    "VersionConflict",
    "Versioned",
    "open_store",
    "run_projection",
]
