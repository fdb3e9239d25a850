"""The library API: plain functions, one per command. The CLI is a thin layer over these.

Call :func:`run` in an application's start-up path::

    import flamingock_es
    flamingock_es.run("flamingock.yaml")

Every function takes what it is about the same way, first: a :data:`Target` (a workflow
built in code, resolved settings, or the path of a ``flamingock.yaml``, by default the one
here), and keyword ``flags`` (``namespace=``, ``bus=``, ``store=``, ...) that win over it.
Each opens the namespace's parts once, in the composition root
(:mod:`flamingock_es.namespace`), and leaves the deciding to the planner, the runner, the
request service, the compliance replay and the projection worker. Commands that only read
never import unit code and never create a namespace that does not exist.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import namespace as root
from .audit import (
    Checkpoint,
    Entry,
    ReplayReport,
    Window,
    latest_checkpoint,
    render,
    replay_records,
)
from .audit import select_events as _select
from .core import snapshots
from .core.backend import Backend
from .core.events import ErrorInfo, MarkedAs, RunOutcome
from .core.recorder import Observer, OutOfOrder, local_actor
from .core.state import Finding, RolloutState, RunState, State, Tag, UnitStatus
from .core.trust import TrustStore
from .definition.settings import Settings, resolve_settings
from .definition.tenants import Tenant
from .definition.workflow import Workflow, load_workflow
from .errors import (
    ChainBrokenError,
    ConfigError,
    FlamingockError,
    LockLostError,
    LockTimeoutError,
    MissingExtraError,
    NamespaceNotFoundError,
    Remedy,
    RemedyKind,
    RunFailed,
    RunInterrupted,
    Unavailable,
)
from .projections import Lag, ProjectedBatch, ProjectionReader, ProjectionWorker
from .request.client import OutcomeFollower, Request, publish
from .request.model import DEFAULT_TTL, ChangeRequest, target_of
from .request.service import RequestService, ServeStats
from .run.planner import (
    NamespaceStatus,
    OutOfOrderError,
    Plan,
    UndoScope,
    make_plan,
    namespace_status,
    pending_before,
    tagged,
)
from .run.progress import LogProgress, Outcome, Progress
from .run.results import RunResult
from .run.rollout import (
    UP_TO_DATE,
    Apply,
    RolloutOptions,
    TenantOutcome,
    by_fleet,
    coordinate,
    parse_budget,
    plan_waves,
    rollout_namespace,
    rollout_trigger,
    sequential,
    work,
)
from .run.runner import Runner, RunOptions, check_before_lock
from .telemetry.propagation import current_trace
from .telemetry.spans import deploy_span, projection_batch_span, request_process, request_span

if TYPE_CHECKING:  # the evidence flow loads when it is asked for, not with every command
    from .audit.proofs import ProofCheck
    from .core.evidence import Published

__all__ = [
    "Target",
    "apply_tenant",
    "checkpoint",
    "evidence",
    "history",
    "mark",
    "open_projection",
    "open_workflow",
    "plan",
    "project",
    "project_tenants",
    "projection_lag",
    "prove",
    "prove_consistency",
    "quarantine",
    "read_state",
    "replay",
    "request_changes",
    "rollout",
    "rollout_settings",
    "rollout_workflow",
    "rollouts",
    "run",
    "serve",
    "serve_fleet",
    "settings_of",
    "signed_event",
    "snapshot",
    "status",
    "tag",
    "undo",
    "verify",
    "verify_evidence",
    "verify_proof",
    "vouch",
    "wait",
    "wait_for_answer",
]

log = logging.getLogger(__name__)

Target = Workflow | Settings | str | Path | None
"""What a call is about: a workflow built in code, resolved settings, or the path of a
workflow file or its folder (``None``: ``./flamingock.yaml``, or the defaults without one)."""


def settings_of(target: Target = None, **flags: Any) -> Settings:
    """The settings of ``target``, ``flags`` applied; imports no unit code."""
    if isinstance(target, Workflow):
        return target.settings.but(**flags)
    if isinstance(target, Settings):
        return target.but(**flags)
    return resolve_settings(target, **flags)


def open_workflow(target: Target = None, **flags: Any) -> Workflow:
    """The workflow of ``target``, ``flags`` applied: its units loaded (their code imported,
    unless the unit cache holds them)."""
    if isinstance(target, Workflow):
        return target.but(**flags)
    return load_workflow(target, **flags)


# Running ---------------------------------------------------------------------------------

def run(target: Target = None, *, units: Sequence[str] | None = None,
        accept_drift: bool = False, progress: Progress | None = None,
        trigger: str = "library", service_version: str | None = None,
        handle_signals: bool = True, out_of_order: bool = False, to_tag: str | None = None,
        **flags: Any) -> RunResult:
    """Apply every pending unit of the workflow under the namespace lock.

    With ``units``, only those; units before them that are not applied yet are refused
    (:class:`~flamingock_es.run.planner.OutOfOrderError`) unless ``out_of_order`` allows it,
    which the progress then says. With ``to_tag``, the units the tag says were applied (those
    pending now): another namespace brought to where this one was, or this one back to it.

    Returns at once, taking no lock, when nothing is pending. Raises
    :class:`~flamingock_es.errors.UnitFailedError` after compensating when a unit fails.
    With ``handle_signals`` (and called from the main thread), SIGTERM and SIGINT stop the
    run cleanly (see docs/recovery.md) and raise :class:`~flamingock_es.RunInterrupted`.
    Traced when the application installed an OpenTelemetry SDK (see docs/tracing.md).
    """
    wf = _one_namespace(open_workflow(target, **flags))
    interrupts = root.interrupts(wf.settings)
    options = RunOptions(accept_drift=accept_drift, trigger=trigger,
                         service_version=service_version)
    # One root for the lock wait and the run: a deployment is one trace.
    with _observed(wf.namespace, progress or LogProgress()) as told, \
            root.open_namespace(wf.settings, write=True) as backend, \
            deploy_span(wf.namespace), \
            (interrupts.installed() if handle_signals else nullcontext()):
        runner = Runner(wf, backend, options, observers=told, interrupts=interrupts,
                        trace=current_trace)
        if to_tag is not None:
            kept = set(tagged(runner.refresh(), to_tag).applied)
            units, out_of_order = [u.id for _, u in wf.units() if u.id in kept], True
            if not units:
                return RunResult(None, None)
        if units:
            skipped = [p.unit.id for p in pending_before(runner.plan(), units)]
            if skipped and not out_of_order:
                raise OutOfOrderError(units, skipped)
            if skipped:
                for observer in told:
                    observer.notice(OutOfOrder(tuple(units), tuple(skipped)))
        return runner.run(units)


def mark(target: Target, unit_id: str, marked_as: MarkedAs | str, reason: str, *,
         seen: int | None = None, **flags: Any) -> None:
    """Record a person's decision about a unit (manual intervention). Audited; takes the lock.

    ``seen`` is the offset of the unit's last event as the person saw it (``status`` prints
    it): the mark is refused if the unit's history moved since.
    """
    _reason(reason, "a mark")
    wf = _one_namespace(open_workflow(target, **flags))
    with root.open_namespace(wf.settings, write=True) as backend:
        Runner(wf, backend, RunOptions(trigger="mark")).mark(
            unit_id, MarkedAs(marked_as), reason, seen)


def undo(target: Target, *, to: str | None = None, count: int | None = None,
         all_units: bool = False, to_tag: str | None = None, progress: Progress | None = None,
         **flags: Any) -> RunResult:
    """Compensate applied units, newest first: those after ``to`` in the workflow, the newest
    ``count``, those applied after tag ``to_tag``, or (``all_units``) every one. Exactly one of
    the four is given."""
    if sum((to is not None, count is not None, to_tag is not None, all_units)) != 1:
        raise ConfigError("an undo needs exactly one of: a unit to go back to, a count of "
                          "units, a tag, or all of them")
    wf = _one_namespace(open_workflow(target, **flags))
    with _observed(wf.namespace, progress or LogProgress()) as told, \
            root.open_namespace(wf.settings, write=True) as backend:
        return Runner(wf, backend, RunOptions(trigger="undo"), observers=told).undo(
            UndoScope(to=to, count=count, tag=to_tag))


def tag(target: Target, name: str, reason: str, **flags: Any) -> Tag:
    """Record a tag: ``name`` for the log's head and the units applied there. Audited, signed
    like every event; takes the lock; a tag never moves (a name already used is refused)."""
    _reason(reason, "a tag")
    wf = open_workflow(target, **flags)
    with root.open_namespace(wf.settings, write=True) as backend:
        return Runner(wf, backend, RunOptions(trigger="tag")).tag(name, reason)


def quarantine(target: Target, offset: int, reason: str, *, through: int | None = None,
               **flags: Any) -> list[Finding]:
    """Record an operator's decision that the records the readers refuse at ``offset``
    (through ``through``, for a range: undecodable, not valid events, not covered by a
    trusted signature) are not part of the history, one decision each. Audited; takes the
    lock; imports no unit code. Returns the findings it excluded."""
    _reason(reason, "a quarantine")
    settings = settings_of(target, **flags)
    with root.existing_namespace(settings, write=True) as backend:
        return Runner(Workflow(settings), backend,
                      RunOptions(trigger="quarantine")).quarantine(offset, reason, through)


def vouch(target: Target, through: int, reason: str, **flags: Any) -> int:
    """Record an operator's decision that the unsigned history up to ``through`` (written
    before signing was configured) is authentic. Returns how many events it vouched for."""
    _reason(reason, "a vouch")
    settings = settings_of(target, **flags)
    with root.existing_namespace(settings, write=True) as backend:
        return Runner(Workflow(settings), backend, RunOptions(trigger="vouch")).vouch(
            through, reason)


def _reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise ConfigError(f"{what} needs a reason: it is written to the audit log")


# Reading the log: no unit code -------------------------------------------------------------

def plan(target: Target = None, *, accept_drift: bool = False, check: bool = False,
         **flags: Any) -> Plan:
    """What ``run`` would do, and why; reads the log, takes no lock, writes nothing.

    With ``check``, also what ``run`` checks before it takes the lock, for the units it would
    apply (every ``${VAR}`` set, every block fitting its template, a ``python-call`` target
    found): the same :class:`~flamingock_es.errors.ConfigError` ``run`` would stop on."""
    wf = _one_namespace(open_workflow(target, **flags))
    with root.open_namespace(wf.settings, create=False) as backend:
        planned = make_plan(wf, _state(backend), accept_drift)
    if check:
        check_before_lock(planned, wf.settings.environ)
    return planned


def status(target: Target = None, **flags: Any) -> NamespaceStatus:
    """Each unit's derived status; a unit still running (its run's holder holds the lock) is
    told apart from one whose process is gone; what needs a person and how to decide.

    A namespace with no log is the workflow's own, not run yet (every unit pending), or, when
    a flag names another than the workflow does, a typo:
    :class:`~flamingock_es.errors.NamespaceNotFoundError`, as the read-only commands say."""
    wf = _one_namespace(open_workflow(target, **flags))
    settings = wf.settings
    with root.open_namespace(settings, create=False) as backend:
        if not backend.log.exists() and settings.namespace != settings.declared_namespace:
            raise root.not_found(settings, backend)
        state = _state(backend)
        started = any(u.status is UnitStatus.STARTED for u in state.units.values())
        holder = backend.lock.holder() if started else None
        return namespace_status(wf, state, make_plan(wf, state), holder)


def wait(target: Target = None, *, timeout: float = 300.0, poll: float = 1.0,
         **flags: Any) -> Plan:
    """Block until nothing is pending (a readiness check for instances that do not run changes).

    A unit that looks failed or in doubt may still be in another runner's hands, so it means
    "not ready yet", not an error; after ``timeout`` seconds ``LockTimeoutError`` says what is
    still pending and what, if anything, needs a person.
    """
    wf = _one_namespace(open_workflow(target, **flags))
    deadline = time.monotonic() + timeout
    state = State()
    with root.open_namespace(wf.settings, create=False) as backend:
        reader = backend.reader
        while True:
            if backend.log.exists():
                reader.check(reader.catch_up(backend.log, state), backend.log.name)
            current = make_plan(wf, state)
            if current.up_to_date:
                return current
            if time.monotonic() >= deadline:
                pending = ", ".join(p.unit.id for p in current.to_run) or "none"
                blocked = "".join(f"\n  {b.message}" for b in current.blockers)
                raise LockTimeoutError(
                    f"namespace {wf.namespace!r} is still not up to date after {timeout:g}s; "
                    f"pending: {pending}{blocked}",
                    remedies=tuple(r for b in current.blockers for r in b.remedies))
            time.sleep(poll)


def read_state(target: Target = None, **flags: Any) -> State:
    """Fold a namespace's whole log into its state (empty if it has none yet); the findings
    are in the state, not raised."""
    settings = settings_of(target, **flags)
    with root.open_namespace(settings, create=False) as backend:
        if not backend.log.exists():
            return State()
        return backend.reader.catch_up(backend.log)


def history(target: Target = None, *, unit: str | None = None, run_id: str | None = None,
            since: datetime | None = None, until: datetime | None = None,
            **flags: Any) -> list[Entry]:
    """The audit events of a namespace, oldest first, filtered, each with whether it is
    verified or quarantined (undecodable records are left out: ``verify`` names them)."""
    settings = settings_of(target, **flags)
    with root.existing_namespace(settings) as backend:
        report = replay_records(backend.log.read(), backend.reader, rows=False)
        return _select(report, unit=unit, run_id=run_id, window=Window(since, until))


def verify(target: Target = None, *, expect: Sequence[Checkpoint] = (),
           notes: Sequence[Published] = (), strict: bool = False, **flags: Any) -> ReplayReport:
    """Replay the whole log with the shared fold: its hash chain and sequence, every
    signature against the trust store, the ``expect``ed points and checkpoint ``notes``, and
    the latest published checkpoint (with the witness cosignatures the trust policy needs).
    ``strict``: a log no trusted signature covers (no trust store) is a finding too."""
    from .audit.proving import check_published

    settings = settings_of(target, **flags)
    with root.existing_namespace(settings) as backend:
        report = replay_records(backend.log.read(), backend.reader, log=backend.log.name,
                                namespace=settings.namespace, rows=False, expect=expect)
        found, report.evidence = check_published(backend.log, backend.reader,
                                                 backend.checkpoints, settings.namespace, notes,
                                                 tokens=_tsa_check(backend.trust))
        if strict and backend.trust is None and report.events:
            found.append(Finding(report.state.position, "unsigned", UNSIGNED_LOG))
        report.findings = sorted([*report.findings, *found], key=lambda f: f.position)
        return report


UNSIGNED_LOG = ("no trust store: nothing says who wrote this log, and anyone with write access "
                "to it could have appended, altered or rewritten any event (the hash chain is "
                "recomputed as easily); configure signing (`flamingock-es keys init`)")
"""What ``verify`` says of a log it cannot tie to a signer (and ``--strict`` refuses)."""


def prove(target: Target = None, *, unit: str | None = None, run_id: str | None = None,
          position: int | None = None, every: bool = False, **flags: Any) -> dict[str, Any]:
    """A proof bundle (docs/compliance.md): the event(s) of ``unit`` (the one that set its
    status; ``every``: each), of ``run_id``, or at ``position``, each with its inclusion
    proof in the latest published checkpoint, that checkpoint, and the public keys."""
    if sum(x is not None for x in (unit, run_id, position)) != 1:
        raise ConfigError("prove needs exactly one of: a unit id, --run RUN_ID, --position N")
    from .audit import proving

    settings = settings_of(target, **flags)
    with root.existing_namespace(settings, proofs=True) as backend:
        if position is not None:
            positions = [position]
        else:
            state = _state(backend) if unit is not None and not every else State()
            positions = proving.positions_of(backend, state, unit=unit, run_id=run_id, every=every)
        return proving.prove(backend, positions)


def prove_consistency(target: Target, old: str, new: str, **flags: Any) -> dict[str, Any]:
    """A bundle proving that the checkpoint ``new`` extends ``old`` (each a tree size of a
    published checkpoint, or a file ``checkpoint --json`` wrote)."""
    from .audit import proving

    settings = settings_of(target, **flags)
    with root.existing_namespace(settings, proofs=True) as backend:
        return proving.prove_consistency(backend, proving.published_of(backend, old),
                                         proving.published_of(backend, new))


def evidence(target: Target = None, *, since: datetime | None = None,
             name: str = "evidence.zip", **flags: Any) -> bytes:
    """One file for an auditor (a zip archive): every event since ``since`` with its
    inclusion proof in the latest published checkpoint, the checkpoints of the range with
    their cosignatures and time-stamps and a consistency proof between each two, the public
    keys and witness policy, the TSA's CA, and the HTML report; checked offline from itself
    alone (``verify-proof``)."""
    from .audit import proving
    from .audit.evidence_file import write_evidence
    from .core.evidence import history as checkpoints_of

    settings = settings_of(target, **flags)
    with root.existing_namespace(settings, proofs=True) as backend:
        report = replay_records(backend.log.read(), backend.reader, log=backend.log.name,
                                namespace=settings.namespace, window=Window(since, None))
        if not report.ok:
            first = report.findings[0]
            raise ChainBrokenError(f"{report.log} has {len(report.findings)} finding(s), the "
                                   f"first at offset {first.position}: {first.reason}. "
                                   "Evidence vouches for a log.",
                                   remedies=(Remedy(RemedyKind.VERIFY),))
        latest = proving.trusted_latest(backend)
        positions = [r.position for r in report.records
                     if (since is None or r.event.time >= since) and r.position <= latest.position]
        proof = proving.prove(backend, positions)
        kept = [p for p in (checkpoints_of(backend.checkpoints) if backend.checkpoints else [])
                if since is None or datetime.fromisoformat(p.time) >= since or p is latest
                or p.size == latest.size]
        consistency = [proving.prove_consistency(backend, a, b)
                       for a, b in itertools.pairwise(kept)]
        tsa = backend.trust.timestamp_authority if backend.trust else None
        return write_evidence(
            namespace=settings.namespace, origin=latest.checkpoint.origin, since=since,
            proof=proof, consistency=consistency,
            checkpoints=[{"size": p.size, "note": p.note, "cosigned": p.cosigned(),
                          "timestamp": p.timestamp, "record": p.to_bytes()} for p in kept],
            report_html=render(report, "html"),
            tsa_ca=tsa.ca.read_bytes() if tsa is not None and tsa.ca.exists() else None,
            name=name)


def verify_evidence(data: bytes, *, trust: TrustStore | None = None,
                    tsa_ca: str | Path | None = None) -> ProofCheck:
    """Check an evidence file (``evidence``) from itself alone: ``trust`` and ``tsa_ca``
    pin what an auditor was given elsewhere (else the file's own keys and CA are used)."""
    from .audit.evidence_file import check_evidence

    tokens = root.token_checker(Path(tsa_ca)).verify if tsa_ca else None
    return check_evidence(data, trust=trust, tokens=tokens, ca_check=_ca_check)


def _tsa_check(trust: TrustStore | None) -> Callable[[bytes, bytes], datetime] | None:
    """The trust store's TSA CA check for RFC 3161 tokens, where it names a CA file that
    exists and the ``timestamp`` extra is installed (else tokens are reported unchecked)."""
    tsa = trust.timestamp_authority if trust is not None else None
    if tsa is None or not tsa.ca.exists():
        return None
    try:
        return root.token_checker(tsa.ca).verify
    except MissingExtraError:
        return None


def _ca_check(pem: bytes) -> Callable[[bytes, bytes], datetime]:
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as out:
        out.write(pem)
    return root.token_checker(Path(out.name)).verify


def verify_proof(bundle: dict[str, Any], *, trust: TrustStore | None = None,
                 tsa_ca: str | Path | None = None) -> ProofCheck:
    """Check a proof bundle with nothing but itself: no log, no workflow file. ``trust``: the
    keys an auditor pins (instead of the bundle's own); ``tsa_ca``: the TSA's CA, to check
    the checkpoint's RFC 3161 token."""
    from .audit.proofs import check_bundle

    tokens = root.token_checker(Path(tsa_ca)).verify if tsa_ca else None
    return check_bundle(bundle, trust=trust, tokens=tokens)


def replay(target: Target = None, *, since: datetime | None = None,
           until: datetime | None = None, expect: Sequence[Checkpoint] = (),
           **flags: Any) -> ReplayReport:
    """The compliance replay of the namespace's whole log; rows limited to ``[since,
    until]``."""
    settings = settings_of(target, **flags)
    with root.existing_namespace(settings) as backend:
        return replay_records(backend.log.read(), backend.reader, log=backend.log.name,
                              namespace=settings.namespace, window=Window(since, until),
                              expect=expect)


def snapshot(target: Target = None, **flags: Any) -> int | None:
    """Write a snapshot of the namespace's whole log (signed with the settings' key), for
    the next start-ups to fold only what follows it. Returns its position, or ``None`` when
    nothing was written (the latest snapshot is as new)."""
    settings = settings_of(target, **flags)
    with root.existing_namespace(settings) as backend:
        state = backend.reader.check(backend.reader.catch_up(backend.log), backend.log.name)
        written = snapshots.save(backend.snapshots, state, settings.namespace, backend.signer)
        return state.position if written else None


def checkpoint(target: Target = None, **flags: Any) -> Published:
    """Sign a C2SP checkpoint of the log's tree now with the settings' key and publish it
    beside the log (cosigned by the trust store's witnesses, time-stamped by its TSA, as a
    runner does at the end of every run); refused for a log with findings."""
    from .core.evidence import publish

    settings = settings_of(target, **flags)
    with root.existing_namespace(settings) as backend:
        if backend.signer is None:
            raise ConfigError("a checkpoint is signed with the runner's key: set signing_key "
                              "in the workflow file (or FLAMINGOCK_SIGNING_KEY)",
                              remedies=(Remedy(RemedyKind.KEYS),))
        state = _state(backend)
        trust = backend.trust
        published = publish(
            backend.checkpoints, backend.log, state, signer=backend.signer, trust=trust,
            namespace=settings.namespace, witnesses=root.witnesses_of(trust) if trust else (),
            timestamper=root.timestamper_of(trust), force=True)
        assert published is not None  # a signer, a store and a log with events
        if backend.proofs is not None:
            backend.proofs.catch_up(backend.log)
        return published


def signed_event(target: Target = None, **flags: Any) -> Checkpoint:
    """The log's latest signed event, as a point an auditor can publish and check later
    (``checkpoint --json``); refused for a log with findings (``verify`` names them)."""
    report = verify(target, **flags)
    if not report.ok:
        first = report.findings[0]
        raise ChainBrokenError(f"{report.log} has {len(report.findings)} finding(s), the first "
                               f"at offset {first.position}: {first.reason}. A checkpoint "
                               "vouches for a log.", remedies=(Remedy(RemedyKind.VERIFY),))
    found = latest_checkpoint(report.records, report.log)
    if found is None:
        raise ConfigError(f"namespace {report.namespace!r} has no signed event yet: "
                          "checkpoints need runners that sign (see docs/compliance.md)")
    return found


# Rollouts ----------------------------------------------------------------------------------

def rollout(target: Target = None, *, reason: str, canary: str | None = None,
            wave_size: str | None = None, max_failures: str = "0",
            rollout_id: str | None = None, past_budget: bool = False, wait: float | None = None,
            tell: Callable[[str], None] | None = None, apply: Apply | None = None,
            fleet: bool = False, partitions: int | None = None,
            **flags: Any) -> RolloutState:
    """Apply the workflow to every tenant, in waves: the ``canary`` (named tenants,
    ``acme,globex``, or the first N), then waves of ``wave_size`` (a count, or a share of
    the tenants: ``25%``). A wave with more failed tenants than ``max_failures`` allows (a
    count, or a share of the wave: ``2%``) stops the rollout before the next wave; what was
    applied stays applied. A rollout a coordinator left unfinished (it was killed) is
    resumed, its tenants with a result never run again; a stopped one only with
    ``past_budget`` and a reason. Every decision is an audit event in the rollout namespace
    (``NAMESPACE._rollouts``), under its lock: another coordinator is told who holds it
    (after ``wait`` seconds; default: at once on the embedded bus, after 15 s on Kafka,
    where taking a free lock is a group join of a few seconds). ``apply`` runs a wave's
    tenants (default: one after the other, here); with ``fleet``, the workers of
    :func:`serve_fleet` run them, sharing the work topic's ``partitions`` through one Kafka
    consumer group (docs/tenants.md)."""
    _reason(reason, "a rollout")
    wf = open_workflow(target, **flags)
    if wf.settings.tenant is not None:
        raise ConfigError("a rollout applies the workflow to every tenant: leave --tenant out")
    tenants = wf.settings.tenant_list()  # a file read, a command run, everything checked
    ids = [t.id for t in tenants]
    parse_budget(max_failures)  # bad input stops here, before any lock or event
    plan_waves(ids, canary, wave_size)
    options = RolloutOptions(reason, rollout_id, canary, wave_size, max_failures, past_budget)
    if wait is None:
        wait = _KAFKA_LOCK_JOIN if wf.settings.bus.startswith("kafka://") else 0.0
    coordinator = rollout_workflow(wf, lock_timeout=wait)
    tell = tell or log.info
    shared = root.fleet_of(coordinator.settings, coordinator.namespace, partitions) \
        if fleet else None
    if shared is not None:
        apply = by_fleet(shared, tell)
    try:
        with root.open_namespace(coordinator.settings, write=True) as backend:
            runner = Runner(coordinator, backend, RunOptions(trigger="rollout"))
            with runner.frame("rollout") as frame:
                return coordinate(frame.recorder, runner.state, wf.name, ids, options,
                                  apply or sequential(lambda rid, tenant: apply_tenant(
                                      wf, tenants, rid, tenant)), tell)
    finally:
        if shared is not None:
            shared.close()


def serve_fleet(target: Target = None, *, stop: threading.Event | None = None,
                tell: Callable[[str], None] | None = None, worker: str | None = None,
                handle_signals: bool = False, **flags: Any) -> int:
    """Work in the fleet of the workflow's rollouts until ``stop`` is set: Kafka's group
    assignment gives this worker a share of the work topic's partitions, and each tenant it
    receives is run here, under that tenant's lock, its outcome reported to the
    coordinator. With ``handle_signals`` (the CLI), SIGTERM or SIGINT stops it after the
    tenant in progress. Returns how many tenants it ran."""
    wf = open_workflow(target, **flags)
    tenants = wf.settings.tenant_list()
    known = {t.id for t in tenants}
    coordinator = rollout_workflow(wf)
    stop = stop or threading.Event()
    name = worker or f"{local_actor().host}:{os.getpid()}"
    fleet = root.fleet_of(coordinator.settings, coordinator.namespace)

    def one(rollout_id: str, tenant: str) -> TenantOutcome:
        nonlocal tenants, known
        if tenant not in known:  # the coordinator found a tenant this worker did not
            tenants = wf.settings.tenant_list()
            known = {t.id for t in tenants}
        return apply_tenant(wf, tenants, rollout_id, tenant)

    member = fleet.worker(name)
    previous = _stop_on_signals(stop) if handle_signals else None
    try:
        return work(member, fleet, one, name, stop.is_set, tell or log.info)
    finally:
        member.close()
        fleet.close()
        if previous is not None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM and SIGINT set ``stop`` (a tenant's run in progress installs its own
    handlers, and finishes its unit first); the handlers they replaced, to put back."""
    previous: dict[int, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


_KAFKA_LOCK_JOIN = 15.0
"""Seconds a coordinator tries for a Kafka rollout lock before it says who holds it: a
free lock takes a group join (a few seconds), a held one never comes."""


def rollout_workflow(wf: Workflow, *, lock_timeout: float | None = None) -> Workflow:
    """The workflow of ``wf``'s rollout namespace: no units, its own log and lock."""
    name = rollout_namespace(wf.settings.parent_namespace)
    settings = replace(wf.settings, namespace=name, declared_namespace=name, tenants=None,
                       tenant=None)
    return Workflow(settings.but(lock_timeout=lock_timeout), ())


def apply_tenant(wf: Workflow, tenants: Sequence[Tenant], rollout_id: str,
                 tenant: str) -> TenantOutcome:
    """Run ``wf`` for one tenant of rollout ``rollout_id`` (under the tenant's lock, in its
    own namespace) and say how it ended; a signal, an unreachable bus or a lock the group
    took away mid-run (a broker failing over: the run stopped before its next step, and a
    rerun goes on) stops this try instead: a fleet worker tries the tenant again, a
    coordinator stops the rollout, to be resumed. Neither is the tenant's failure."""
    heard = Outcome()
    try:
        result = run(wf.for_tenant(tenant, list(tenants)), progress=heard,
                     trigger=rollout_trigger(rollout_id))
    except (RunInterrupted, Unavailable, LockLostError):
        raise
    except RunFailed as exc:
        outcome = heard.result.outcome or RunOutcome.FAILED
        return TenantOutcome(tenant, outcome.value, heard.result.run_id, ErrorInfo.of(exc))
    except FlamingockError as exc:  # blocked for a person, drift, a lock held too long
        return TenantOutcome(tenant, "BLOCKED", heard.result.run_id, ErrorInfo.of(exc))
    if result.outcome is None:
        return TenantOutcome(tenant, UP_TO_DATE)
    return TenantOutcome(tenant, result.outcome.value, result.run_id)


def rollout_settings(target: Target = None, **flags: Any) -> Settings:
    """The settings of the workflow's rollout namespace (``NAMESPACE._rollouts``)."""
    wf_settings = settings_of(target, **flags)
    name = rollout_namespace(wf_settings.parent_namespace)
    return replace(wf_settings, namespace=name, declared_namespace=name, tenant=None)


def rollouts(target: Target = None, **flags: Any) -> list[RolloutState]:
    """The workflow's rollouts, oldest first, as its rollout namespace's log says."""
    settings = rollout_settings(target, **flags)
    with root.open_namespace(settings, create=False) as backend:
        return list(_state(backend).rollouts.values())


# Requests ----------------------------------------------------------------------------------

def request_changes(target: Target = None, *, stages: Sequence[str] | None = None,
                    units: Sequence[str] | None = None, undo_to: str | None = None,
                    reason: str = "", requested_by: str | None = None,
                    service: str | None = None, request_id: str | None = None,
                    wait: bool = False, timeout: float = 300.0,
                    ttl: float | None = DEFAULT_TTL, **flags: Any) -> Request:
    """Publish a change request for the namespace, signed with the settings' key when they
    name one (a runner with a trust store accepts only signed requests by keys it trusts to
    request changes there). After ``ttl`` seconds a runner refuses it, so that a captured
    request cannot be replayed later. With ``wait``, block until the runner's answer (the
    ``RunFinished`` carrying the request id) is in the log, and return it in
    ``Request.answer``; :class:`~flamingock_es.errors.RequestTimeoutError` after
    ``timeout`` seconds."""
    settings = _one_namespace(settings_of(target, **flags))
    now = datetime.now(UTC)
    request = ChangeRequest(
        request_id=request_id or str(uuid.uuid4()), namespace=settings.namespace, time=now,
        target=target_of(stages, units, undo_to),
        requested_by=requested_by or local_actor(principal=settings.principal).principal,
        service=service, reason=reason or "requested over the bus",
        expires=now + timedelta(seconds=ttl) if ttl is not None else None)
    with root.open_namespace(settings) as backend:
        follower = OutcomeFollower(backend) if wait else None
        try:
            end = follower.position if follower else -1
            with request_span(backend.requests.messaging, request.request_id,
                              settings.namespace) as (trace, headers):
                position = publish(backend, replace(request, trace=trace) if trace else request,
                                   headers)
            if follower is None:
                return Request(request.request_id, end)
            return Request(request.request_id, end, follower.wait(
                request.request_id, timeout, position=position, digest=request.digest()))
        finally:
            if follower is not None:
                follower.close()


def wait_for_answer(target: Target, request_id: str, *, timeout: float = 300.0,
                    **flags: Any) -> RunState:
    """Block until the run answering ``request_id`` (published earlier) is in the log, as
    :func:`request_changes` with ``wait`` does."""
    settings = settings_of(target, **flags)
    with root.open_namespace(settings, create=False) as backend:
        follower = OutcomeFollower(backend)
        try:
            return follower.wait(request_id, timeout)
        finally:
            follower.close()


def serve(target: Target = None, *, progress: Progress | None = None,
          allow: Sequence[str] = (), stop: threading.Event | None = None,
          max_requests: int | None = None, group: str | None = None,
          handle_signals: bool = False, require_signed: bool = False,
          **flags: Any) -> ServeStats:
    """Execute change requests for the workflow's namespace until ``stop`` is set.

    ``max_requests`` ends the service after that many requests (tests, one-shot jobs).
    With ``handle_signals`` (the CLI; main thread only), a first SIGTERM or SIGINT sets
    ``stop``: the current unit finishes within the grace period (or is compensated), the
    run's outcome is recorded, the lock is released, and ``serve`` returns; a second signal,
    or the end of the grace period, interrupts the unit and records it as interrupted.
    ``require_signed`` insists on a trust store (which has every request signed by a key it
    trusts): without one it is a ``ConfigError``, as no signature could be checked.
    """
    wf = open_workflow(target, **flags)
    interrupts = root.interrupts(wf.settings, stop)
    shown = progress or LogProgress()
    with root.open_namespace(wf.settings, write=True) as backend, \
            (interrupts.installed() if handle_signals else nullcontext()):
        service = RequestService(
            wf, backend, observers=lambda: root.observers(wf.namespace, shown),
            interrupts=interrupts, allow=allow, require_signed=require_signed,
            process_span=lambda delivery, request, group: request_process(
                backend.requests.messaging, delivery, request.request_id,
                request.namespace, request.trace, group),
            trace=current_trace)
        return service.serve(interrupts.stop, max_requests, group)


# The read side -----------------------------------------------------------------------------

def project(target: Target = None, *, once: bool = False, rebuild: bool = False,
            stop: threading.Event | None = None,
            on_batch: Callable[[ProjectedBatch], None] | None = None,
            batch_size: int = 500, **flags: Any) -> int:
    """Project the namespace's log into the settings' projection store. Returns the
    position of the last projected event; with ``once`` when the log is caught up,
    otherwise (following the log) once ``stop`` is set."""
    settings = settings_of(target, **flags)
    stop = stop or threading.Event()
    opened = root.existing_namespace(settings) if once else \
        root.open_namespace(settings, create=False)
    with opened as backend:
        if not backend.log.exists():
            log.warning("namespace %r has no audit log at %s yet; waiting for a runner to "
                        "create it", settings.namespace, backend.log.name)
            while not backend.log.exists():
                if stop.wait(1.0):
                    return -1
        store = root.settings_store(settings)
        try:
            worker = ProjectionWorker(
                backend.log, store, settings.namespace, reader=backend.reader,
                batch_size=batch_size, rebuild=rebuild, on_batch=on_batch,
                batch_span=lambda records: projection_batch_span(
                    records, backend.log.messaging, settings.namespace))
            return worker.run(stop, once=once)
        finally:
            store.close()


def project_tenants(target: Target = None, *, once: bool = False, rebuild: bool = False,
                    stop: threading.Event | None = None,
                    on_batch: Callable[[str, ProjectedBatch], None] | None = None,
                    batch_size: int = 500, **flags: Any) -> dict[str, int]:
    """:func:`project` for a workflow with tenants: its rollout namespace and every tenant's
    namespace, one worker (a thread) each, into the settings' store. Returns each
    namespace's last projected position (-1: no log yet); with ``once`` when all are caught
    up (a namespace with no log is left out), otherwise once ``stop`` is set. The first
    worker that fails stops the others, and its error is raised."""
    settings = settings_of(target, **flags)
    stop = stop or threading.Event()
    tenants = settings.tenant_list()
    targets = [rollout_settings(settings),
               *(settings.for_tenant(t, tenants) for t in tenants)]
    positions: dict[str, int] = {}
    failed: list[BaseException] = []

    def one(each: Settings) -> None:
        told = None if on_batch is None else \
            (lambda batch: on_batch(each.namespace, batch))
        try:
            positions[each.namespace] = project(each, once=once, rebuild=rebuild, stop=stop,
                                                on_batch=told, batch_size=batch_size)
        except NamespaceNotFoundError:
            positions[each.namespace] = -1  # --once: nothing was ever run there
        except BaseException as exc:  # raised again below, in the caller
            failed.append(exc)
            stop.set()

    threads = [threading.Thread(target=one, args=(each,), name=f"project {each.namespace}",
                                daemon=True) for each in targets]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)  # a timeout, so that Ctrl-C reaches this thread
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    if failed:
        raise failed[0]
    return {each.namespace: positions.get(each.namespace, -1) for each in targets}


def open_projection(target: Target = None, **flags: Any) -> ProjectionReader:
    """A reader of the namespace's projected documents (close it, or use it in ``with``)."""
    settings = settings_of(target, **flags)
    return ProjectionReader(root.settings_store(settings), settings.namespace, owns_store=True)


def projection_lag(target: Target = None, **flags: Any) -> Lag:
    """How far the projected documents are behind the namespace's log: the projection's
    checkpoint against the log's last position (a log that does not exist is not ahead)."""
    settings = settings_of(target, **flags)
    with root.open_namespace(settings, create=False) as backend, \
            open_projection(settings) as reader:
        if not backend.log.exists():
            checkpoint = reader.checkpoint()
            projected = int(checkpoint["position"]) if checkpoint else -1
            return Lag(projected, -1, 0)
        return reader.lag(backend.log)


# Helpers -----------------------------------------------------------------------------------

_Of = TypeVar("_Of", Workflow, Settings)


def _one_namespace(of: _Of) -> _Of:
    """``of`` (a workflow, or settings), if it names one namespace to run units in: a
    workflow with tenants runs them per tenant, so one must be named."""
    settings = of.settings if isinstance(of, Workflow) else of
    if settings.tenant_unnamed:
        raise root.tenant_needed(settings)
    return of

@contextmanager
def _observed(namespace: str, progress: Observer) -> Iterator[list[Observer]]:
    """Who hears of a run: ``progress`` and the spans; told when the run is over."""
    told = root.observers(namespace, progress)
    try:
        yield told
    finally:
        for observer in told:
            observer.close()


def _state(backend: Backend) -> State:
    if not backend.log.exists():
        return State()
    reader = backend.reader
    return reader.check(snapshots.read(backend.log, backend.snapshots, backend.namespace,
                                       reader), backend.log.name)
