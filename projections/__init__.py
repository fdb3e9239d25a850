"""The read side: audit events folded into documents that dashboards and the CLI read.

A :class:`ProjectionWorker` follows a namespace's audit log and writes one document per change
unit, per run, the lock, a summary and its checkpoint into a :class:`ProjectionStore`
(SQLite by default, Couchbase by configuration); a :class:`ProjectionReader` reads them back
by key. See ``docs/projections.md``.

The folder is ``projections/`` at the top of the repository; setup.py's ``package_dir``
installs it as ``flamingock_es.projections``, so installing flamingock-es adds one top-level
name to an application's environment, not a generic ``projections``. The stores are opened
by the composition root (:func:`flamingock_es.namespace.open_store`).
"""

from __future__ import annotations

from .documents import Projection
from .reader import Lag, ProjectionReader
from .stores import ProjectionStore, StoreUnavailable, VersionConflict, Versioned
from .worker import ProjectedBatch, ProjectionWorker

__all__ = [
    "Lag",
    "ProjectedBatch",
    "Projection",
    "ProjectionReader",
    "ProjectionStore",
    "ProjectionWorker",
    "StoreUnavailable",
    "VersionConflict",
    "Versioned",
]
