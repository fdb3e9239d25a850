"""The projection worker: follows a namespace's audit log and keeps its documents current.

On start it reads its checkpoint, then folds the log from the beginning (the fold is cheap
and is the only way to know the full state) but writes documents only for events after the
checkpoint. Then it follows the log, batching events (up to ``batch_size``, or until the log
is idle), and writes each changed document with compare-and-set, the checkpoint last:

* a document never moves backwards: if the stored one reflects a position at or past the new
  one, the write is skipped. Redelivery is a no-op, and two racing workers are safe;
* the checkpoint is written only after every document of its batch, so a worker killed
  mid-batch redoes that batch on restart, and the result equals a clean rebuild.

A record the readers refuse (undecodable, not a valid event, not covered by a trusted
signature) stops the documents where they were: the worker keeps following the log, marks
the summary ``stale`` (what, where, and the command an operator runs) and writes nothing
more until an operator's quarantine decision arrives. Then it catches up, re-deriving every
document when the decision excluded a record it had already folded.

``flamingock-es project`` runs it; :func:`run_projection` is the library entry point.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from ..core.codec import Recorded
from ..core.ports import EventLog
from ..core.reading import LogReader
from ..core.state import Finding
from ..errors import ChainBrokenError, Remedy, RemedyKind, StoreError
from .documents import (
    Document,
    Projection,
    checkpoint_key,
    key_prefix,
    lock_key,
    run_key,
    summary_key,
    unit_key,
)
from .stores import (
    ProjectionStore,
    StoreUnavailable,
    VersionConflict,
    Versioned,
)

__all__ = ["BatchSpan", "ProjectedBatch", "ProjectionWorker"]

BatchSpan = Callable[[list[Recorded]], AbstractContextManager[object]]
"""Around the writing of one batch (its records): the span the composition root supplies."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectedBatch:
    """What one flushed batch wrote, for progress output."""

    events: int
    written: int
    skipped: int
    position: int
    seconds: float


class ProjectionWorker:
    """Projects one namespace's log into ``store``. Not thread-safe: one thread runs it."""

    def __init__(self, log: EventLog, store: ProjectionStore, namespace: str, *,
                 reader: LogReader | None = None, batch_size: int = 500,
                 max_delay: float = 0.05, rebuild: bool = False,
                 on_batch: Callable[[ProjectedBatch], None] | None = None,
                 batch_span: BatchSpan | None = None) -> None:
        self.log, self.store, self.namespace = log, store, namespace
        self.reader = reader or LogReader()
        self._batch_span = batch_span
        self.batch_size, self.rebuild, self.on_batch = batch_size, rebuild, on_batch
        self.max_delay = max_delay
        """Flush a batch at the latest this many seconds after its first event, even while
        the log keeps delivering (a busy log is never idle)."""
        self._since = 0.0
        self.projection = Projection(namespace)
        self._versions: dict[str, Versioned] = {}
        self._pending: set[str] = set()
        self._pending_events = 0
        self._batch: list[Recorded] = []  # for the batch's trace span (telemetry)
        self._resume = -1
        self._resume_hash = ""
        self._checked = False
        self._resume_held = False
        """The log holds the checkpoint's record (a follower asked it, not yet folded it)."""
        self.events_written = 0
        self.stale: dict[str, object] | None = None
        """What the summary says stopped the projection, while something does."""

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, once: bool = False) -> int:
        """Project until ``stop`` is set (or, with ``once``, until the log is caught up).

        Returns the position of the last event projected (-1 for an empty log).
        """
        stop = stop or threading.Event()
        self._start()
        if once:
            for position, data in self.log.read(0):
                self._take_stored(position, data)
                if self._pending_events >= self.batch_size:
                    self.flush()
            self.flush(idle=True)
            self._verify_resume()
            if self.stale is not None:
                position = int(str(self.stale["position"]))
                raise ChainBrokenError(
                    f"the projection of {self.namespace!r} stops before offset {position}: "
                    f"{self.stale['reason']}. An operator decides (see docs/recovery.md).",
                    remedies=(Remedy(RemedyKind.QUARANTINE, position=position),))
            return self.projection.state.position
        for item in self.log.follow(0, stop):
            if item is None:
                self._flush_patiently(stop)
                self._verify_resume(at_the_end=False)
                continue
            self._take_stored(*item)
            if self._pending_events >= self.batch_size or (
                    self._pending_events and time.monotonic() - self._since >= self.max_delay):
                self._flush_patiently(stop, idle=False)
        self.flush()
        return self.projection.state.position

    def _take_stored(self, position: int, data: bytes) -> None:
        state = self.projection.state
        if self.reader.take(state, position, data, self._take) is None:
            self._pending.add(summary_key(self.namespace))  # it says what stopped it
        if state.needs_refold:
            self._rederive()

    def _rederive(self) -> None:
        """A quarantine decision excluded a record already folded: fold the whole log again
        without it, and write every document as of now (never backwards in position)."""
        log.warning("%s: a quarantine decision excludes a record already projected; "
                    "re-deriving every document", self.namespace)
        state = self.projection.state
        self.reader.refold(self.log, state)
        self.projection = Projection(self.namespace, state)
        self._pending |= set(self.projection.rederived())
        self._pending_events += 1

    def _flush_patiently(self, stop: threading.Event, idle: bool = True) -> None:
        """Flush; while the store is down (past its own retries), wait and try again.

        Nothing is lost meanwhile: the pending set only grows, and the checkpoint stays
        where the last complete batch left it.
        """
        delay = 0.5
        while True:
            try:
                self.flush(idle=idle)
                return
            except StoreUnavailable as exc:
                if stop.is_set():
                    raise
                log.warning("%s: %s; trying again in %.1fs", self.namespace, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _start(self) -> None:
        if self.rebuild:
            self._clear()
            return
        found = self.store.get(checkpoint_key(self.namespace))
        if found is not None:
            self._resume = int(found.doc.get("position", -1))
            self._resume_hash = str(found.doc.get("last_hash", ""))
            log.info("%s: resuming after position %d", self.namespace, self._resume)

    def _clear(self) -> None:
        """Forget what the store holds for this namespace: a rebuild starts from nothing."""
        ns = self.namespace
        keys: list[str] = []
        lister = getattr(self.store, "keys", None)
        if callable(lister):
            keys = list(lister(key_prefix(ns)))
        else:  # key-value only: the summary lists every unit and run
            summary = self.store.get(summary_key(ns))
            if summary is not None:
                keys = [unit_key(ns, u) for u in summary.doc.get("units", [])]
                keys += [run_key(ns, r) for r in summary.doc.get("runs", [])]
            keys += [lock_key(ns), summary_key(ns)]
        # The checkpoint goes first, so that a rebuild interrupted here restarts from zero.
        for key in [checkpoint_key(ns), *keys]:
            self.store.delete(key)
        log.info("%s: rebuild: removed %d documents", ns, len(keys))

    # -- folding and writing -----------------------------------------------------------------

    def _take(self, record: Recorded) -> None:
        """Fold one record through the projection, noting the documents it changed."""
        touched = self.projection.apply(record)
        if record.position == self._resume:
            self._check_resume_hash()
        if record.position > self._resume and touched:
            if not self._pending_events:
                self._since = time.monotonic()
            self._pending |= touched
            self._pending_events += 1
            self._batch.append(record)

    def _check_resume_hash(self) -> None:
        self._checked = True
        head = self.projection.state.head_hash.hex()
        if self._resume_hash and head != self._resume_hash:
            raise StoreError(
                f"{self.store.name}: the checkpoint of namespace {self.namespace!r} says the "
                f"event at position {self._resume} has hash {self._resume_hash[:16]}..., but "
                f"the log {self.log.name} has {head[:16]}... there. The documents describe "
                "another log: rebuild the projection.",
                remedies=(Remedy(RemedyKind.PROJECT_REBUILD),))

    def _verify_resume(self, *, at_the_end: bool = True) -> None:
        """Refuse a checkpoint past the log's end. ``at_the_end``: everything the log holds
        was read; a follower that is only idle (its first fetch may not have come back yet,
        on a busy machine or with hundreds of tenants' followers in one process) asks the
        log whether it holds the checkpoint's record, once, and waits for it if so (its hash
        is checked when it is folded)."""
        if not self._checked and self._resume >= 0:
            behind = self.projection.state.position < self._resume and not at_the_end
            if behind and (self._resume_held or self.log.record_at(self._resume) is not None):
                self._resume_held = True
                return
            if self.projection.state.position < self._resume:
                raise StoreError(
                    f"{self.store.name}: the checkpoint of namespace {self.namespace!r} is at "
                    f"position {self._resume}, past the end of {self.log.name} (at "
                    f"{self.projection.state.position}). The log was replaced: rebuild the "
                    "projection.", remedies=(Remedy(RemedyKind.PROJECT_REBUILD),))
            self._checked = True

    def flush(self, idle: bool = True) -> ProjectedBatch | None:
        """Write the documents the pending events changed, then the checkpoint; or, while
        the log holds a record the readers refuse, only mark the summary stale."""
        if not self._pending:
            return None
        state = self.projection.state
        self.reader.settle(state)
        findings = self.reader.findings(state)
        if findings:
            # The tail of an append in progress is unsigned for an instant: only an idle log
            # with unsigned events is a finding.
            if idle or any(f.kind != "unsigned" for f in findings):
                self._mark_stale(findings[0], len(findings))
            return None
        started = time.monotonic()
        ns = self.namespace
        keys = sorted(self._pending - {checkpoint_key(ns)})
        written = skipped = 0
        span = self._batch_span(self._batch) if self._batch_span else nullcontext()
        with span, self.store.batch():
            unknown = [k for k in keys if k not in self._versions]
            self._versions.update(self.store.get_many(unknown))
            docs = {key: self.projection.document(key) for key in keys}
            fresh = [(k, d, self._version(k)) for k, d in docs.items() if not self._stale(k, d)]
            skipped = len(keys) - len(fresh)
            for key, outcome in self.store.write_many(fresh).items():
                if isinstance(outcome, VersionConflict):
                    # Someone else wrote it meanwhile: re-read, and write unless theirs is newer.
                    self._versions.pop(key, None)
                    if self._put(key, docs[key]):
                        written += 1
                    else:
                        skipped += 1
                else:
                    self._versions[key] = Versioned(docs[key], outcome)
                    written += 1
            # Last: the checkpoint says "everything up to here is written".
            self._put(checkpoint_key(ns), self.projection.document(checkpoint_key(ns)))
        report = ProjectedBatch(self._pending_events, written, skipped,
                                self.projection.state.position, time.monotonic() - started)
        self.stale = None
        self.events_written += self._pending_events
        self._pending.clear()
        self._pending_events = 0
        self._batch = []
        if self.on_batch is not None:
            self.on_batch(report)
        return report

    def _mark_stale(self, finding: Finding, count: int) -> None:
        """Say in the summary document, once, that it stopped before ``finding``."""
        stale = {"position": finding.position, "kind": finding.kind, "reason": finding.reason,
                 "findings": count,
                 "remedy": {"kind": RemedyKind.QUARANTINE.value, "position": finding.position}}
        if stale == self.stale:
            return
        log.warning("%s: the log cannot be projected past offset %d (%s: %s); the documents "
                    "stay as they were and the summary says stale", self.namespace,
                    finding.position, finding.kind, finding.reason)
        key = summary_key(self.namespace)
        for _ in range(100):
            current = self.store.get(key)
            doc = dict(current.doc) if current is not None else \
                self.projection.document(key) | {"position": -1}
            try:
                version = self.store.write(key, doc | {"stale": stale},
                                           current.version if current else None)
            except VersionConflict:
                continue
            self._versions[key] = Versioned(doc | {"stale": stale}, version)
            self.stale = stale
            return
        raise StoreError(f"{self.store.name}: {key!r} kept changing; is something else "
                         "writing this namespace's documents?")

    def _version(self, key: str) -> int | None:
        current = self._versions.get(key)
        return None if current is None else current.version

    def _stale(self, key: str, doc: Document) -> bool:
        current = self._versions.get(key)
        return current is not None and int(current.doc.get("position", -1)) >= doc["position"]

    def _put(self, key: str, doc: Document) -> bool:
        """Compare-and-set ``doc`` unless the stored one is as new or newer. True if written."""
        position = int(doc["position"])
        for _ in range(100):
            if key not in self._versions:
                found = self.store.get(key)
                if found is not None:
                    self._versions[key] = found
            current = self._versions.get(key)
            if current is not None and int(current.doc.get("position", -1)) >= position:
                return False
            try:
                version = self.store.write(key, doc, current.version if current else None)
            except VersionConflict:
                fresh = self.store.get(key)
                if fresh is None:
                    self._versions.pop(key, None)
                else:
                    self._versions[key] = fresh
                continue
            self._versions[key] = Versioned(doc, version)
            return True
        raise StoreError(f"{self.store.name}: {key!r} kept changing under 100 attempts to "
                         "write it; is something else writing this namespace's documents?")
