"""Helpers for the projection tests: writing realistic histories, comparing stores."""

from __future__ import annotations

import random
import uuid

from flamingock_es.projections.documents import Document, Projection
from flamingock_es.projections.stores import ProjectionStore

from flamingock_es.core.backend import Backend
from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import (
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockReleased,
    Payload,
    RunFinished,
    RunOutcome,
    RunStarted,
)
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import State, fold


def run_payloads(run: int, units: list[str], rng: random.Random, holder: str,
                 generation: int) -> list[Payload]:
    """One run's events: applies ``units`` in order, sometimes failing and compensating."""
    out: list[Payload] = [RunStarted(workflow="wf", trigger="test", planned=tuple(units)),
                          LockAcquired(holder=holder, lock="test", generation=generation)]
    applied: list[str] = []
    for unit in units:
        out.append(ChangeStarted(unit_id=unit, stage="main", author="tester",
                                 checksum=f"sum-{unit}", template=None, parameters="{}",
                                 attempt=run, reason="pending"))
        if rng.random() < 0.1:
            error = ErrorInfo(type="RuntimeError", message=f"run {run} broke {unit}")
            out.append(ChangeFailed(unit_id=unit, checksum=f"sum-{unit}", duration_ms=1.0,
                                    error=error))
            for done in reversed(applied):
                out += [CompensationStarted(unit_id=done, reason="run failed"),
                        CompensationSucceeded(unit_id=done, duration_ms=1.0)]
            out += [RunFinished(outcome=RunOutcome.ROLLED_BACK, applied=(), error=error),
                    LockReleased(holder=holder)]
            return out
        out.append(ChangeSucceeded(unit_id=unit, checksum=f"sum-{unit}", duration_ms=2.0))
        applied.append(unit)
    out += [RunFinished(outcome=RunOutcome.SUCCEEDED, applied=tuple(applied)),
            LockReleased(holder=holder)]
    return out


def write_history(backend: Backend, runs: int, units: int = 6, seed: int = 7,
                  per_append: int = 3) -> State:
    """Append ``runs`` runs over ``units`` units to ``backend``'s log, a few events per append."""
    rng = random.Random(seed)
    state = fold(AuditCodec().decode_all(backend.log.read(0)))
    for run in range(runs):
        holder = f"writer-{uuid.uuid4().hex[:6]}"
        lease = backend.lock.acquire(holder, 60)
        writer = backend.log.writer(lease)
        try:
            identity = RunIdentity(backend.namespace, f"run-{run:04d}-{uuid.uuid4().hex[:6]}",
                                   local_actor())
            recorder = Recorder(writer, state, identity)
            chosen = [f"unit-{i:03d}" for i in sorted(rng.sample(range(units * 2), units))]
            payloads = run_payloads(run, chosen, rng, holder, lease.generation)
            for start in range(0, len(payloads), per_append):
                recorder.record(*payloads[start:start + per_append])
        finally:
            writer.close()
            lease.release()
    return state


def stored_documents(store: ProjectionStore, projection: Projection) -> dict[str, Document]:
    """What ``store`` holds under every key ``projection`` knows."""
    found = store.get_many(projection.keys())
    return {key: value.doc for key, value in found.items()}


def expected_documents(backend: Backend) -> tuple[Projection, dict[str, Document]]:
    """A clean fold of the whole log, and the documents it implies."""
    projection = Projection(backend.namespace)
    for record in AuditCodec().decode_all(backend.log.read(0)):
        projection.apply(record)
    return projection, projection.documents()
