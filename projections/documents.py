"""The read model: the documents that the fold's :class:`~flamingock_es.core.state.State` implies.

Pure: a :class:`Projection` folds records with :meth:`State.apply` (the one definition of what
the history means) and notes, per document key, the log position of the last event that
changed that document. A document is a plain JSON-able dict; every one carries ``position``.

Keys, for namespace ``ns``::

    fes::{ns}::unit::{unit_id}     one per change unit
    fes::{ns}::run::{run_id}       one per run
    fes::{ns}::lock                who holds the namespace's lock (or free)
    fes::{ns}::summary             counts by status, last run, chain head, ids of units, runs
                                   and rollouts, how far trusted signatures cover the log
    fes::{ns}::rollout::{id}       one per rollout, in a rollout namespace (NAMESPACE._rollouts):
                                   who started it and why, its waves, each tenant's result
    fes::{ns}::checkpoint          how far the projection got: position and last hash

Because documents are a function of ``(State, positions)`` only, a rebuild from position 0
and any sequence of incremental batches produce identical documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..core.codec import Recorded
from ..core.events import ErrorInfo
from ..core.state import LockState, RolloutState, RunState, State, UnitState, UnitStatus

__all__ = [
    "HISTORY_LIMIT",
    "Projection",
    "checkpoint_document",
    "checkpoint_key",
    "key_prefix",
    "lock_document",
    "lock_key",
    "rollout_document",
    "rollout_key",
    "run_document",
    "run_key",
    "summary_document",
    "summary_key",
    "unit_document",
    "unit_key",
]

Document = dict[str, Any]

HISTORY_LIMIT = 100
"""A unit document lists the ids of at most this many of its latest runs."""

SCHEMA_VERSION = 3
"""2: unit documents say who applied them and when (``applied_by``, ``applied_at``,
``requested_by``, ``last_attempt.by``); run documents say who requested them. 3: the summary
lists the rollouts (``rollouts``, so that a dashboard finds them by key alone) and says how
far trusted signatures cover the log (``signed_through``)."""


def key_prefix(namespace: str) -> str:
    """What every key of the namespace's documents starts with."""
    return f"fes::{namespace}::"


def unit_key(namespace: str, unit_id: str) -> str:
    """Key of a change unit's document."""
    return f"{key_prefix(namespace)}unit::{unit_id}"


def run_key(namespace: str, run_id: str) -> str:
    """Key of a run's document."""
    return f"{key_prefix(namespace)}run::{run_id}"


def lock_key(namespace: str) -> str:
    """Key of the namespace's lock document."""
    return f"{key_prefix(namespace)}lock"


def rollout_key(namespace: str, rollout_id: str) -> str:
    """Key of a rollout's document (in a rollout namespace)."""
    return f"{key_prefix(namespace)}rollout::{rollout_id}"


def summary_key(namespace: str) -> str:
    """Key of the namespace's summary document."""
    return f"{key_prefix(namespace)}summary"


def checkpoint_key(namespace: str) -> str:
    """Key of the projection's checkpoint document."""
    return f"{key_prefix(namespace)}checkpoint"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _error(error: ErrorInfo | None) -> dict[str, str | None] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "where": error.where}


def _parameters(raw: str) -> Any:
    # The audit log keeps them as redacted JSON text; dashboards want the structure.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _person(run: RunState | None) -> dict[str, str] | None:
    return None if run is None else {"principal": run.actor.principal, "host": run.actor.host}


def _requester(run: RunState | None) -> dict[str, str | None] | None:
    if run is None or run.requested_by is None:
        return None
    return {"principal": run.requested_by, "reason": run.request_reason,
            "request_id": run.request_id}


def unit_document(namespace: str, unit: UnitState, position: int,
                  running: bool = False, last_run: RunState | None = None) -> Document:
    """The document of one change unit: its status and last attempt, with a run history,
    and (from ``last_run``, the run of its last attempt) who applied it, when, and who
    requested that.

    ``running``: its run still holds the lock per the log, so it is not in need of attention
    (a dashboard must not alert on every deployment).
    """
    applied = unit.status.is_applied
    return {
        "type": "unit",
        "schema": SCHEMA_VERSION,
        "namespace": namespace,
        "unit_id": unit.unit_id,
        "status": unit.status.value,
        "applied": unit.status.is_applied,
        "needs_attention": unit.needs_attention and not running,
        "running": running,
        "author": unit.author,
        "checksum": unit.checksum,
        "stage": unit.stage,
        "template": unit.template,
        "parameters": _parameters(unit.parameters),
        "applied_by": _person(last_run) if applied else None,
        "applied_at": _time(unit.finished_at) if applied else None,
        "requested_by": _requester(last_run),
        "attempts": unit.attempts,
        "last_attempt": {
            "run_id": unit.last_run_id,
            "by": _person(last_run),
            "started_at": _time(unit.started_at),
            "finished_at": _time(unit.finished_at),
            "duration_ms": unit.duration_ms,
            "error": _error(unit.error),
            "rollback_error": _error(unit.rollback_error),
            "compensating": unit.compensating,
            "mark_reason": unit.mark_reason,
            "interrupted": unit.interrupted,
            "failed_before_start": unit.failed_before_start,
            "trace_id": unit.trace_id,
        },
        "started_at": _time(unit.started_at),
        "finished_at": _time(unit.finished_at),
        "duration_ms": unit.duration_ms,
        "error": _error(unit.error),
        "rollback_error": _error(unit.rollback_error),
        "history": {
            "runs": unit.runs[-HISTORY_LIMIT:],
            "runs_total": len(unit.runs),
            "first_run_id": unit.runs[0] if unit.runs else None,
        },
        "seq": unit.seq,
        "position": position,
    }


def run_document(namespace: str, run: RunState, position: int) -> Document:
    """The document of one run: who, where, when, what it planned and what came of it."""
    actor = run.actor
    return {
        "type": "run",
        "schema": SCHEMA_VERSION,
        "namespace": namespace,
        "run_id": run.run_id,
        "who": actor.principal,
        "where": actor.host,
        "actor": {
            "principal": actor.principal,
            "host": actor.host,
            "pid": actor.pid,
            "service_version": actor.service_version,
            "tool_version": actor.tool_version,
        },
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "workflow": run.workflow,
        "trigger": run.trigger,
        "planned": list(run.planned),
        "applied": list(run.applied),
        "failed": list(run.failed),
        "compensated": list(run.compensated),
        "not_started": list(run.not_started),
        "outcome": run.outcome.value if run.outcome is not None else None,
        "error": _error(run.error),
        "trace_id": run.trace_id,
        "request_id": run.request_id,
        "requested_by": _requester(run),
        "position": position,
    }


def lock_document(namespace: str, lock: LockState | None, position: int) -> Document:
    """The lock document: the current holder, or ``held: false``."""
    doc: Document = {"type": "lock", "schema": SCHEMA_VERSION, "namespace": namespace,
                     "held": lock is not None}
    if lock is not None:
        doc.update(holder=lock.holder, lock=lock.lock, generation=lock.generation,
                   run_id=lock.run_id, since=_time(lock.since))
    else:
        doc.update(holder=None, lock=None, generation=None, run_id=None, since=None)
    doc["position"] = position
    return doc


def rollout_document(namespace: str, r: RolloutState, position: int) -> Document:
    """A rollout: who started it and why, its budget, each wave with its counts and budget
    check, every tenant's result (failed ones with their error), its resumptions."""
    return {"type": "rollout", "schema": SCHEMA_VERSION, "namespace": namespace,
            **r.as_json(), "position": position}


def summary_document(namespace: str, state: State) -> Document:
    """The namespace's summary; its ``units`` and ``runs`` lists make key-only listing work."""
    last = state.last_run
    return {
        "type": "summary",
        "schema": SCHEMA_VERSION,
        "namespace": namespace,
        "counts": dict(sorted(state.counts().items())),
        "units": sorted(state.units),
        "runs": list(state.runs),
        "rollouts": list(state.rollouts),
        "attention": sorted(u.unit_id for u in state.attention()),
        "last_run": None if last is None else {
            "run_id": last.run_id,
            "outcome": last.outcome.value if last.outcome is not None else None,
            "started_at": _time(last.started_at),
            "finished_at": _time(last.finished_at),
            "who": last.actor.principal,
        },
        "lock_held": state.lock is not None,
        "head_hash": state.head_hash.hex(),
        "events": state.events,
        "next_seq": state.next_seq,
        "last_event_at": _time(state.last_time),
        # Documents are written only while nothing in the log is a finding, so what the
        # summary shows is verified up to ``position``; this says how much of it a trusted
        # signature covers (-1: none, or no trust store to check them against).
        "signed_through": state.signed_through,
        "chain_breaks": [
            {"position": b.position, "seq": b.seq, "reason": b.reason} for b in state.breaks
        ],
        "quarantined": [
            {"position": q.position, "finding": q.finding, "reason": q.reason, "by": q.by,
             "at": _time(q.at)} for q in sorted(state.quarantined.values(),
                                                 key=lambda q: q.position)
        ],
        "stale": None,
        "position": state.position,
    }


def checkpoint_document(namespace: str, state: State) -> Document:
    """How far the projection got. Written after every other document of a batch."""
    return {
        "type": "checkpoint",
        "schema": SCHEMA_VERSION,
        "namespace": namespace,
        "position": state.position,
        "last_hash": state.head_hash.hex(),
        "events": state.events,
        "next_seq": state.next_seq,
    }


def _unit(namespace: str, state: State, unit: UnitState, position: int) -> Document:
    return unit_document(namespace, unit, position, state.in_progress(unit),
                         state.runs.get(unit.last_run_id))


@dataclass
class Projection:
    """The fold plus, per document key, the position of the last event that changed it."""

    namespace: str
    state: State = field(default_factory=State)
    positions: dict[str, int] = field(default_factory=dict)

    def apply(self, record: Recorded) -> set[str]:
        """Fold ``record`` in; return the keys of the documents it changed (none if redelivered).

        Which documents changed is found by comparing them before and after the fold, so this
        module never re-states what an event means.
        """
        state, ns, event = self.state, self.namespace, record.event
        unit_id: str | None = getattr(event.payload, "unit_id", None)
        rollout_id: str | None = getattr(event.payload, "rollout_id", None)
        before = self._candidates(unit_id, event.run_id, rollout_id)
        if not state.apply(record):
            return set()
        after = self._candidates(unit_id, event.run_id, rollout_id)
        touched = {key for key, doc in after.items() if before.get(key) != doc}
        touched |= {summary_key(ns), checkpoint_key(ns)}
        for key in touched:
            self.positions[key] = record.position
        return touched

    def _candidates(self, unit_id: str | None, run_id: str,
                    rollout_id: str | None = None) -> dict[str, Document | None]:
        # The documents an event could change, rendered without their position.
        ns, state = self.namespace, self.state
        out: dict[str, Document | None] = {lock_key(ns): lock_document(ns, state.lock, 0)}
        run = state.runs.get(run_id)
        out[run_key(ns, run_id)] = run_document(ns, run, 0) if run is not None else None
        if unit_id is not None:
            unit = state.units.get(unit_id)
            out[unit_key(ns, unit_id)] = _unit(ns, state, unit, 0) if unit else None
        if rollout_id is not None:
            rollout = state.rollouts.get(rollout_id)
            out[rollout_key(ns, rollout_id)] = rollout_document(ns, rollout, 0) \
                if rollout is not None else None
        for uid, unit in state.units.items():  # whether one is running depends on the lock
            if unit.status is UnitStatus.STARTED:
                out[unit_key(ns, uid)] = _unit(ns, state, unit, 0)
        return out

    def rederived(self) -> list[str]:
        """Every document's key, each now said to reflect the current position: after a fold
        that started over, a document may have changed whatever its last event was."""
        for key in self.keys():
            self.positions[key] = self.state.position
        return self.keys()

    def document(self, key: str) -> Document:
        """The current document under ``key`` (which must be a key this projection knows)."""
        ns, state = self.namespace, self.state
        position = self.positions.get(key, -1)
        kind, _, ident = key.removeprefix(key_prefix(ns)).partition("::")
        if kind == "unit":
            return _unit(ns, state, state.units[ident], position)
        if kind == "run":
            return run_document(ns, state.runs[ident], position)
        if kind == "lock":
            return lock_document(ns, state.lock, position)
        if kind == "rollout":
            return rollout_document(ns, state.rollouts[ident], position)
        if kind == "summary":
            return summary_document(ns, state)
        if kind == "checkpoint":
            return checkpoint_document(ns, state)
        raise KeyError(key)

    def documents(self) -> dict[str, Document]:
        """Every document the history so far implies, by key."""
        return {key: self.document(key) for key in self.keys()}

    def keys(self) -> list[str]:
        """The keys of every document, in a stable order (checkpoint last)."""
        ns = self.namespace
        keys = [unit_key(ns, u) for u in sorted(self.state.units)]
        keys += [run_key(ns, r) for r in self.state.runs]
        keys += [rollout_key(ns, r) for r in self.state.rollouts]
        if lock_key(ns) in self.positions:
            keys.append(lock_key(ns))
        if self.state.position >= 0:
            keys += [summary_key(ns), checkpoint_key(ns)]
        return keys
