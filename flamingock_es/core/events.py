"""The audit events: frozen dataclasses mirroring ``schemas/AuditEvent.avsc`` one to one.

They are dataclasses, not pydantic models, on purpose: the Avro schema already validates every
field on write and on read, and a replay decodes hundreds of thousands of them, where a second
validation would cost more than the decoding itself (see ``bench/vs_alembic.py``).

An :class:`AuditEvent` is an envelope (who, when, which run, where in the chain, which key
signed it) around one payload record. The codec turns them into Avro single-object bytes and
back; the fold in :mod:`flamingock_es.core.state` turns a sequence of them into the current state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "PAYLOAD_TYPES",
    "ROLLOUT_TRIGGER",
    "Actor",
    "AuditEvent",
    "BudgetChecked",
    "ChangeFailed",
    "ChangeInterrupted",
    "ChangeSkipped",
    "ChangeStarted",
    "ChangeSucceeded",
    "CompensationFailed",
    "CompensationStarted",
    "CompensationSucceeded",
    "ErrorInfo",
    "HistoryVouched",
    "LockAcquired",
    "LockLost",
    "LockReleased",
    "ManualMark",
    "MarkedAs",
    "Payload",
    "PreconditionChecked",
    "RecordQuarantined",
    "Recorded",
    "Requester",
    "RolloutFinished",
    "RolloutResumed",
    "RolloutStarted",
    "RolloutStopped",
    "RunFinished",
    "RunOutcome",
    "RunStarted",
    "SkipCause",
    "TagRecorded",
    "TenantFinished",
    "TraceContext",
    "WavePublished",
    "plain",
]

AVRO_NAMESPACE = "io.flamingock.es"

ROLLOUT_TRIGGER = "rollout:"
"""What the ``trigger`` of a tenant's ``RunStarted`` in a rollout starts with; the rollout's
id follows (docs/tenants.md). The run flow writes it, the dashboard reads it."""


_SCALARS = (str, int, float, bytes, type(None))


def plain(record: object) -> dict[str, Any]:
    """A record's fields as plain values, nested records as dicts: what
    ``dataclasses.asdict`` gives for these immutable records, without its deep copy of every
    leaf (a fresh apply seals two events a unit, and asdict was half of sealing one)."""
    return {name: _plain(getattr(record, name)) for name in _field_names(type(record))}


def _plain(value: Any) -> Any:
    if isinstance(value, _SCALARS):  # enums are str; datetimes are immutable
        return value
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(type(value), "__dataclass_fields__"):
        return plain(value)
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who ran a step, and from where."""

    principal: str
    host: str
    pid: int
    service_version: str | None = None
    tool_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceContext:
    """W3C trace context of the span that wrote the event."""

    traceparent: str
    tracestate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """An exception, reduced to what an auditor needs."""

    type: str
    message: str
    where: str | None = None
    """``file:line`` of the innermost frame in the unit's own code, when it came from there."""

    @classmethod
    def of(cls, exc: BaseException, where: str | None = None) -> ErrorInfo:
        return cls(type=type(exc).__name__, message=str(exc) or repr(exc), where=where)

    def __str__(self) -> str:
        at = f" (at {self.where})" if self.where else ""
        return f"{self.type}: {self.message}{at}"


class MarkedAs(enum.StrEnum):
    """What a person declared a unit to be (``flamingock-es mark --as``)."""

    APPLIED = "APPLIED"
    ROLLED_BACK = "ROLLED_BACK"


class RunOutcome(enum.StrEnum):
    """How a run ended: applied all, compensated, left partial state, lost its lock, refused
    a change request, was stopped on request between units, or (``on_failure: isolate``)
    applied what did not depend on a failed unit."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"
    LOCK_LOST = "LOCK_LOST"
    REJECTED = "REJECTED"
    STOPPED = "STOPPED"
    PARTIAL = "PARTIAL"


class SkipCause(enum.StrEnum):
    """Why a run did not apply a unit it considered."""

    CONDITION = "CONDITION"
    PRECONDITION = "PRECONDITION"
    DEPENDENCY = "DEPENDENCY"


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """Base of the payload records; ``avro_name`` is the record's full Avro name."""

    avro_name: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """The payload's fields as plain Python values, nested records as dicts."""
        return plain(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Requester:
    """Who asked for a run through a change request, and why. ``principal`` is the one the
    request's verified key is bound to in the trust store, never a name the requester chose."""

    principal: str
    key_id: str | None = None
    reason: str
    service: str | None = None
    request_digest: str | None = None
    """SHA-256 of what the request asked (its namespace and target)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Payload):
    """A run took the lock and is about to apply ``planned`` (unit ids, in order)."""

    workflow: str
    trigger: str
    planned: tuple[str, ...]
    requester: Requester | None = None
    environment: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAcquired(Payload):
    """Who holds the namespace lock from now on, and its fencing ``generation``."""

    holder: str
    lock: str
    generation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeStarted(Payload):
    """A unit's apply is about to run. Durable before its side effect: an event like this
    without an outcome after it means the process died mid-change (the unit is in doubt)."""

    unit_id: str
    stage: str
    author: str
    checksum: str
    template: str | None = None
    parameters: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeSucceeded(Payload):
    """The unit's apply returned; the unit is ``APPLIED`` with this ``checksum``."""

    unit_id: str
    checksum: str
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeFailed(Payload):
    """The unit's apply raised ``error``; its compensation follows, when it has one.
    ``not_started``: it failed before its side effect could start, so its own rollback is
    not run (there is nothing to compensate)."""

    unit_id: str
    checksum: str
    duration_ms: float
    error: ErrorInfo
    not_started: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationStarted(Payload):
    """A unit's rollback is about to run, and why (its own failure, a later one, an undo)."""

    unit_id: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationSucceeded(Payload):
    """The rollback returned; the unit is ``ROLLED_BACK`` (pending again)."""

    unit_id: str
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationFailed(Payload):
    """The rollback raised ``error`` too; the unit is ``ROLLBACK_FAILED`` and needs a person.
    ``original_error`` keeps the apply's failure when the rollback was compensating it."""

    unit_id: str
    duration_ms: float
    error: ErrorInfo
    original_error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ManualMark(Payload):
    """A person's decision about a unit, with why; ``checksum`` when marked applied."""

    unit_id: str
    marked_as: MarkedAs
    reason: str
    checksum: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LockReleased(Payload):
    """The holder gave the lock up at the end of its run."""

    holder: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LockLost(Payload):
    """The holder learned it lost the lock (revoked, evicted or fenced) and stopped."""

    holder: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Payload):
    """How the run ended and which units it applied; answers a change request when the
    envelope carries its ``request_id``. ``not_started``: planned units it never started (it
    was stopped first), pending for the next run."""

    outcome: RunOutcome
    applied: tuple[str, ...]
    error: ErrorInfo | None = None
    not_started: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeInterrupted(Payload):
    """A signal stopped the process while a unit's step ran, and the step did not finish in
    the grace period: the unit is in doubt (its side effect may be partly done)."""

    unit_id: str
    signal: str
    reason: str
    compensating: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordQuarantined(Payload):
    """An operator's audited decision that the record at ``position`` (whose bytes hash to
    ``record_sha256``) is not part of the history; ``finding`` says what was wrong with it."""

    position: int
    record_sha256: str
    finding: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryVouched(Payload):
    """An operator's audited decision that the ``unsigned`` events up to ``through`` (head
    hash ``head``), written before signing was configured, are authentic."""

    through: int
    head: bytes
    unsigned: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeSkipped(Payload):
    """A unit the run did not apply, and why (``cause``). ``marked_applied``: a
    precondition's ``on_fail: mark-applied`` made it count as applied without running."""

    unit_id: str
    stage: str
    checksum: str
    cause: SkipCause
    reason: str
    marked_applied: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PreconditionChecked(Payload):
    """A unit's precondition, checked before its apply: whether it ``holds``, and what its
    ``on_fail`` (``halt``, ``skip``, ``mark-applied``) made of it when it did not."""

    unit_id: str
    holds: bool
    on_fail: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TagRecorded(Payload):
    """A name for the log's position ``through``, with the units applied there, in order."""

    name: str
    through: int
    applied: tuple[str, ...]
    reason: str


# A rollout's decisions, in the workflow's rollout namespace (NAMESPACE._rollouts): the
# coordinator records them under that namespace's lock, signed like every other event, and
# the fold (State.rollouts) makes of them where a rollout is, so that a coordinator that
# died resumes where it was.

@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutStarted(Payload):
    """A rollout of ``workflow`` to ``tenants`` began, why, with its failure budget as
    given (``2`` or ``2%`` of each wave) and its number of ``waves`` (the canary first)."""

    rollout_id: str
    workflow: str
    reason: str
    tenants: tuple[str, ...]
    max_failures: str
    waves: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WavePublished(Payload):
    """The ``tenants`` of wave ``wave`` (0: the canary), and the failures it may have."""

    rollout_id: str
    wave: int
    tenants: tuple[str, ...]
    allowed_failures: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantFinished(Payload):
    """One tenant's run in a rollout ended with ``result`` (a :class:`RunOutcome`, or
    ``UP_TO_DATE``); ``run_id`` is the run in the tenant's own namespace."""

    rollout_id: str
    wave: int
    tenant: str
    result: str
    run_id: str | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetChecked(Payload):
    """Wave ``wave`` ended with ``failures`` failed tenants against ``allowed``."""

    rollout_id: str
    wave: int
    failures: int
    allowed: int
    exceeded: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutStopped(Payload):
    """The rollout stopped before wave ``wave``; what was applied stays applied."""

    rollout_id: str
    wave: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutResumed(Payload):
    """A coordinator took the rollout up again; ``past_budget``: past an exceeded budget,
    on a person's decision (``reason``)."""

    rollout_id: str
    reason: str
    past_budget: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutFinished(Payload):
    """Every wave ran: the rollout's ``result`` and its counts."""

    rollout_id: str
    result: str
    succeeded: int
    failed: int


PAYLOAD_TYPES: tuple[type[Payload], ...] = (
    RunStarted,
    LockAcquired,
    ChangeStarted,
    ChangeSucceeded,
    ChangeFailed,
    CompensationStarted,
    CompensationSucceeded,
    CompensationFailed,
    ManualMark,
    LockReleased,
    LockLost,
    RunFinished,
    ChangeInterrupted,
    RecordQuarantined,
    HistoryVouched,
    ChangeSkipped,
    PreconditionChecked,
    TagRecorded,
    RolloutStarted,
    WavePublished,
    TenantFinished,
    BudgetChecked,
    RolloutStopped,
    RolloutResumed,
    RolloutFinished,
)

for _cls in PAYLOAD_TYPES:
    _cls.avro_name = f"{AVRO_NAMESPACE}.{_cls.__name__}"

ZERO_HASH = bytes(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """The envelope every audit record shares. ``hash`` chains it to ``prev_hash``."""

    event_id: str
    seq: int
    time: datetime
    namespace: str
    run_id: str
    actor: Actor
    trace: TraceContext | None = None
    request_id: str | None = None
    payload: Payload
    prev_hash: bytes = ZERO_HASH
    key_id: str | None = None
    """The writer's signing key (trust store id), when it has one."""
    signed_from: int | None = None
    """On a signed event: the seq of the first event of the append it ends; its signature
    covers ``signed_from..seq`` and nothing before (``None`` in version 2 events)."""
    hash: bytes = ZERO_HASH
    signature: bytes | None = None
    """Ed25519 signature of the hash by ``key_id``: on the last event of each append."""

    def replace(self, **changes: object) -> AuditEvent:
        """A copy with ``changes`` applied (events are immutable)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def kind(self) -> str:
        """The payload's short record name, e.g. ``ChangeStarted``."""
        return type(self.payload).__name__

    @property
    def trace_id(self) -> str | None:
        """The 32-hex trace id of the W3C traceparent, if the event carries one."""
        if self.trace is None:
            return None
        parts = self.trace.traceparent.split("-")
        return parts[1] if len(parts) == 4 else None


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as read from a log: where it sits, whether its own hash holds, and its leaf
    in the log's Merkle tree."""

    position: int
    event: AuditEvent
    intact: bool
    leaf: bytes = b""
    """``SHA-256(0x00 || the record's bytes as stored)``: its RFC 6962 leaf hash (the fold
    adds it to the tree; see :mod:`flamingock_es.core.merkle`)."""
