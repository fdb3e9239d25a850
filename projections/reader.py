"""``ProjectionReader``: the projected state of a namespace, read by key.

Everything here is a key-value (or sub-document) lookup, so it works on any Couchbase
deployment and on SQLite alike: listing units goes through the summary document's ``units``
list, never through a query. :meth:`ProjectionReader.query_units_sqlpp` is an optional extra
for clusters that run the query service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..core.ports import EventLog
from .documents import (
    Document,
    checkpoint_key,
    lock_key,
    rollout_key,
    run_key,
    summary_key,
    unit_key,
)
from .stores import ProjectionStore

__all__ = ["Lag", "ProjectionReader"]


@dataclass(frozen=True)
class Lag:
    """How far the projected documents are behind the log they are folded from."""

    projected: int
    """The position of the last event the projection holds (-1: none yet)."""
    last: int
    """The position of the log's last event (-1: an empty log)."""
    behind: int
    """How many events of the log the projection does not hold yet."""


class ProjectionReader:
    """Reads one namespace's documents from ``store``; every method returns plain dicts."""

    def __init__(self, store: ProjectionStore, namespace: str = "default", *,
                 owns_store: bool = False) -> None:
        self.store = store
        self.namespace = namespace
        self._owns_store = owns_store

    def close(self) -> None:
        """Close the store, if this reader was given it to own."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> ProjectionReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _doc(self, key: str) -> Document | None:
        found = self.store.get(key)
        return None if found is None else found.doc

    def summary(self) -> Document | None:
        """Counts by status, last run, chain head; ``None`` if nothing was projected yet."""
        return self._doc(summary_key(self.namespace))

    def checkpoint(self) -> Document | None:
        """How far the projection got (position and last hash)."""
        return self._doc(checkpoint_key(self.namespace))

    def lag(self, log: EventLog) -> Lag:
        """How far behind ``log`` the projection is: its checkpoint against the events the
        log holds after it (read, not decoded)."""
        checkpoint = self.checkpoint()
        projected = int(checkpoint["position"]) if checkpoint else -1
        behind, last = 0, projected
        for position, _ in log.read(projected + 1):
            if position > projected:
                behind, last = behind + 1, position
        return Lag(projected, last, behind)

    def unit(self, unit_id: str) -> Document | None:
        """One change unit's document, or ``None`` if the log never mentioned it."""
        return self._doc(unit_key(self.namespace, unit_id))

    def unit_status(self, unit_id: str) -> str | None:
        """Just a unit's status: a sub-document lookup, not a whole-document read."""
        found = self.store.lookup(unit_key(self.namespace, unit_id), ["status"])
        return None if found is None else found["status"]

    def run(self, run_id: str) -> Document | None:
        """One run's document."""
        return self._doc(run_key(self.namespace, run_id))

    def rollout(self, rollout_id: str) -> Document | None:
        """One rollout's document (in a rollout namespace, ``NAMESPACE._rollouts``)."""
        return self._doc(rollout_key(self.namespace, rollout_id))

    def rollouts(self) -> list[Document]:
        """Every rollout document, in the order they started, found through the summary's
        list of ids (a rollout namespace's; empty elsewhere)."""
        summary = self.summary()
        keys = [rollout_key(self.namespace, r) for r in (summary or {}).get("rollouts", [])]
        found = self.store.get_many(keys)
        return [found[k].doc for k in keys if k in found]

    def lock(self) -> Document | None:
        """The lock document (``held`` false when free); ``None`` before any lock event."""
        return self._doc(lock_key(self.namespace))

    def unit_ids(self) -> list[str]:
        """Every unit id the summary lists."""
        summary = self.summary()
        return list(summary.get("units", [])) if summary else []

    def units(self) -> list[Document]:
        """Every unit document, in id order, found through the summary's list of ids."""
        keys = [unit_key(self.namespace, u) for u in self.unit_ids()]
        found = self.store.get_many(keys)
        return [found[k].doc for k in keys if k in found]

    def runs(self, last: int | None = None) -> list[Document]:
        """Run documents in start order (the ``last`` ones if given)."""
        summary = self.summary()
        ids: list[str] = list(summary.get("runs", [])) if summary else []
        if last is not None:
            ids = ids[-last:] if last > 0 else []
        keys = [run_key(self.namespace, r) for r in ids]
        found = self.store.get_many(keys)
        return [found[k].doc for k in keys if k in found]

    def query_units_sqlpp(self, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Unit documents via SQL++; only where the cluster runs the query service.

        Needs a store that answers SQL++ (the Couchbase store's ``query_units``) and a primary
        (or suitable) index on its collection. Not used by anything else here.
        """
        query = getattr(self.store, "query_units", None)
        if query is None:
            raise TypeError("SQL++ queries need a Couchbase store with the query service")
        rows: Iterator[dict[str, Any]] = query(self.namespace, status)
        yield from rows
