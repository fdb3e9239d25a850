"""What the dashboard shows, as JSON-able data read from the projection store, never the log.

Every value comes from a projected document (:mod:`flamingock_es.projections.documents`),
read by key through :class:`~flamingock_es.projections.ProjectionReader`: the rollouts from
the rollout namespace's summary and rollout documents, the grid and a tenant's history from
each tenant's unit and run documents. Nothing here folds events or re-decides what they
mean; it only arranges documents for a page. A namespace that was never projected, or whose
projection stopped (``stale``), is said in ``notices`` with the command that fixes it, which
the caller (the CLI) supplies as text: this module builds no command line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..core.events import ROLLOUT_TRIGGER
from ..core.secrets import redact
from ..projections import ProjectionReader, ProjectionStore

__all__ = ["Hints", "Tenant", "Views"]

Json = dict[str, Any]


@dataclass(frozen=True)
class Tenant:
    """One row of the grid: a tenant id (or, for a workflow without tenants, the
    namespace itself) and the namespace its documents are under."""

    id: str
    namespace: str


@dataclass(frozen=True)
class Hints:
    """What the page tells a person to run, written by the CLI (the engine tells, the CLI
    speaks)."""

    project: str
    """Brings every namespace's projection up to date (and keeps it so)."""
    remedy: Callable[[str, int | None, str], str] = field(
        default=lambda kind, position, namespace: "")
    """The command of a remedy a stale summary names: ``(kind, position, namespace)`` in,
    text out."""


class Views:
    """The dashboard's reads: one at a time, since a store's connection is one."""

    def __init__(self, store: ProjectionStore, workflow: str, tenants: list[Tenant],
                 rollout_namespace: str | None, hints: Hints) -> None:
        self.store, self.workflow, self.hints = store, workflow, hints
        self.tenants = {t.id: t for t in tenants}
        self.rollout_namespace = rollout_namespace
        self._one = threading.Lock()

    def _reader(self, namespace: str) -> ProjectionReader:
        return ProjectionReader(self.store, namespace)

    # The whole page --------------------------------------------------------------------------

    def overview(self) -> Json:
        """The rollouts (newest first), the tenants x units grid, and what is missing."""
        with self._one:
            notices: list[Json] = []
            rollouts = self._rollouts(notices)
            latest = rollouts[0] if rollouts else None
            rows, units = [], set()
            for tenant in self.tenants.values():
                row = self._row(tenant, latest, notices)
                units |= set(row["cells"])
                rows.append(row)
            notices += self._unprojected(rows)
            return {"workflow": self.workflow, "generated_at": _now(),
                    "rollouts": rollouts, "units": sorted(units), "tenants": rows,
                    "notices": notices}

    def _rollouts(self, notices: list[Json]) -> list[Json]:
        if self.rollout_namespace is None:
            return []
        reader = self._reader(self.rollout_namespace)
        summary = reader.summary()
        if summary is None:
            notices.append(self._empty(self.rollout_namespace, "the rollouts"))
            return []
        self._stale(self.rollout_namespace, summary, notices)
        return [_rollout(doc) for doc in reversed(reader.rollouts())]

    def _row(self, tenant: Tenant, latest: Json | None, notices: list[Json]) -> Json:
        reader = self._reader(tenant.namespace)
        summary = reader.summary()
        result = (latest or {}).get("results", {}).get(tenant.id)
        row: Json = {"tenant": tenant.id, "namespace": tenant.namespace,
                     "projected": summary is not None, "cells": {}, "rollout": result,
                     "lock_held": False, "last_run": None, "position": None}
        if latest is not None and result is None and any(
                tenant.id in w["tenant_ids"] for w in latest["waves"]):
            row["rollout"] = {"result": "PENDING", "wave": None, "run_id": None}
        if summary is None:
            return row
        self._stale(tenant.namespace, summary, notices)
        row.update(lock_held=summary.get("lock_held", False), position=summary["position"],
                   last_run=summary.get("last_run"))
        row["cells"] = {u["unit_id"]: {"status": u["status"], "running": u["running"]}
                        for u in reader.units()}
        return row

    # One tenant ------------------------------------------------------------------------------

    def tenant(self, tenant_id: str) -> Json | None:
        """One tenant's units, its history (each unit's outcome in each run: who asked, who
        applied, when) and what its projection says about verification; ``None`` for a
        tenant this dashboard does not show."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            return None
        with self._one:
            reader = self._reader(tenant.namespace)
            summary = reader.summary()
            out: Json = {"tenant": tenant.id, "namespace": tenant.namespace,
                         "projected": summary is not None, "units": [], "runs": [],
                         "history": [], "verification": None, "lock": None, "notices": []}
            if summary is None:
                out["notices"].append(self._empty(tenant.namespace, f"tenant {tenant.id}"))
                return out
            self._stale(tenant.namespace, summary, out["notices"])
            requesters = self._rollout_starters()
            runs = [_run(doc, requesters) for doc in reversed(reader.runs())]
            asked = {run["run_id"]: run["requested_by"] for run in runs}
            out.update(units=[_unit(doc, asked) for doc in reader.units()], runs=runs,
                       history=[row for run in runs for row in _history(run)],
                       verification=_verification(summary), lock=reader.lock())
            return out

    def _rollout_starters(self) -> dict[str, Json]:
        if self.rollout_namespace is None:
            return {}
        return {doc["rollout_id"]: {"principal": doc["started_by"], "reason": doc["reason"],
                                    "rollout_id": doc["rollout_id"]}
                for doc in self._reader(self.rollout_namespace).rollouts()}

    # Notices ---------------------------------------------------------------------------------

    def _unprojected(self, rows: list[Json]) -> list[Json]:
        """One notice for the tenants with nothing projected: expected of those no run has
        reached yet, a projection behind the log for those the rollout has a result of."""
        missing = [r for r in rows if not r["projected"]]
        behind = [r["tenant"] for r in missing
                  if r["rollout"] and r["rollout"]["result"] != "PENDING"]
        waiting = [r["tenant"] for r in missing if r["tenant"] not in behind]
        out = []
        if behind:
            out.append({"kind": "stale", "namespace": None, "tenants": behind,
                        "message": f"the rollout has a result for {_few(behind)} but nothing "
                                   "of theirs is projected: is a projection worker running?",
                        "command": self.hints.project})
        if waiting:
            out.append({"kind": "empty", "namespace": None, "tenants": waiting,
                        "message": f"nothing projected yet for {_few(waiting)} (no run there "
                                   "yet, or no projection worker)",
                        "command": self.hints.project})
        return out

    def _empty(self, namespace: str, what: str) -> Json:
        return {"kind": "empty", "namespace": namespace,
                "message": f"nothing projected yet for {what} (namespace {namespace})",
                "command": self.hints.project}

    def _stale(self, namespace: str, summary: Json, notices: list[Json]) -> None:
        stale = summary.get("stale")
        if not stale:
            return
        remedy = stale.get("remedy") or {}
        notices.append({
            "kind": "stale", "namespace": namespace,
            "message": f"the projection of {namespace} stopped before offset "
                       f"{stale['position']} ({stale['kind']}: {stale['reason']}); what is "
                       "shown may be out of date",
            "command": self.hints.remedy(str(remedy.get("kind", "")), remedy.get("position"),
                                        namespace)})


# Documents into rows -------------------------------------------------------------------------

def _few(tenants: list[str], shown: int = 8) -> str:
    more = f" and {len(tenants) - shown} more" if len(tenants) > shown else ""
    return f"{len(tenants)} tenant(s): {', '.join(tenants[:shown])}{more}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _rollout(doc: Json) -> Json:
    failed_in: dict[int, int] = {}
    for f in doc.get("failed", []):
        failed_in[f["wave"]] = failed_in.get(f["wave"], 0) + 1
    waves = [{"wave": w["wave"], "label": "canary" if w["wave"] == 0 else f"wave {w['wave']}",
              "tenants": len(w["tenants"]), "tenant_ids": w["tenants"], "counts": w["counts"],
              "failed": failed_in.get(w["wave"], 0), "allowed": w["allowed_failures"],
              "checked": w["failures"] is not None, "exceeded": w["exceeded"]}
             for w in doc.get("waves", [])]
    return {"rollout_id": doc["rollout_id"], "workflow": doc["workflow"],
            "status": doc["status"], "result": doc["result"], "reason": doc["reason"],
            "started_by": doc["started_by"], "started_at": doc["started_at"],
            "finished_at": doc["finished_at"], "max_failures": doc["max_failures"],
            "stop_reason": doc["stop_reason"], "counts": doc["counts"],
            "tenants": sum(doc["counts"].values()), "waves": waves,
            "budget": {"failed": sum(failed_in.values()),
                       "allowed": sum(w["allowed"] for w in waves)},
            "failed": doc.get("failed", []), "resumed": doc.get("resumed", []),
            "results": {t: {"result": r["result"], "wave": r["wave"], "run_id": r["run_id"]}
                        for t, r in doc.get("tenants", {}).items()}}


def _unit(doc: Json, asked: dict[str, Json | None]) -> Json:
    """A unit's row; who requested its last attempt is its run's requester (a change
    request's, or the rollout's)."""
    last = doc.get("last_attempt") or {}
    return {"unit_id": doc["unit_id"], "status": doc["status"], "running": doc["running"],
            "needs_attention": doc["needs_attention"], "stage": doc.get("stage"),
            "author": doc.get("author"), "attempts": doc.get("attempts"),
            "applied_by": doc.get("applied_by"), "applied_at": doc.get("applied_at"),
            "requested_by": doc.get("requested_by") or asked.get(last.get("run_id") or ""),
            "last_by": last.get("by"),
            "last_run_id": last.get("run_id"), "finished_at": doc.get("finished_at"),
            "error": doc.get("error"), "parameters": redact(doc.get("parameters"))}


def _run(doc: Json, rollouts: dict[str, Json]) -> Json:
    trigger = str(doc.get("trigger") or "")
    requested = doc.get("requested_by")
    if requested is None and trigger.startswith(ROLLOUT_TRIGGER):
        rollout_id = trigger.removeprefix(ROLLOUT_TRIGGER)
        requested = rollouts.get(rollout_id) or {"principal": None, "reason": None,
                                                 "rollout_id": rollout_id}
    return {"run_id": doc["run_id"], "trigger": trigger, "outcome": doc["outcome"],
            "applied_by": {"principal": doc["who"], "host": doc["where"]},
            "requested_by": requested, "started_at": doc["started_at"],
            "finished_at": doc["finished_at"], "planned": doc["planned"],
            "applied": doc["applied"], "failed": doc["failed"],
            "compensated": doc["compensated"], "error": doc["error"]}


def _history(run: Json) -> list[Json]:
    """Each unit of a run with what its run document says came of it."""
    named = [*run["planned"], *(u for u in run["applied"] + run["failed"] + run["compensated"]
                                if u not in run["planned"])]
    rows = []
    for unit in named:
        if unit in run["compensated"]:
            outcome = "ROLLED_BACK"
        elif unit in run["failed"]:
            outcome = "FAILED"
        elif unit in run["applied"]:
            outcome = "APPLIED"
        else:
            outcome = "NOT_STARTED" if run["finished_at"] else "PENDING"
        rows.append({"run_id": run["run_id"], "unit_id": unit, "outcome": outcome,
                     "failed": unit in run["failed"],
                     "requested_by": run["requested_by"], "applied_by": run["applied_by"],
                     "at": run["finished_at"] or run["started_at"]})
    return rows


def _verification(summary: Json) -> Json:
    position, signed = summary["position"], summary.get("signed_through", -1)
    return {"position": position, "events": summary["events"],
            "head_hash": summary["head_hash"], "last_event_at": summary.get("last_event_at"),
            "chain_intact": not summary.get("chain_breaks"),
            "chain_breaks": summary.get("chain_breaks", []),
            "quarantined": summary.get("quarantined", []),
            "stale": summary.get("stale"), "signed_through": signed,
            "signed": "none" if signed < 0 else "all" if signed >= position else "partly"}
