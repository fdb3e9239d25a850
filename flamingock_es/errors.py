"""The project's own errors, grouped by what a caller does about them.

Adapters translate driver exceptions into these; nothing above them sees a driver's. Every
message says what happened and what to do next; where the next step is one of the
project's own commands, the error carries it as data (:attr:`FlamingockError.remedies`) and
the CLI writes the command line. Exit codes are the CLI's (``cli/status_codes.py``)::

    FlamingockError
    ├── ConfigError               what a person wrote is wrong: fix it, run again
    │   ├── MissingExtraError         an optional dependency is not installed
    │   ├── NamespaceNotFoundError    a read-only command names a namespace with no log
    │   └── TemplateError             an unknown template, or parameters that do not fit
    ├── Transient                 worth retrying as it is: :func:`retryable` says so
    │   ├── Unavailable               a service did not answer, or did not confirm a write
    │   │   ├── AppendError               an audit event could not be made durable
    │   │   ├── StoreError                a projection store failed (after retries)
    │   │   ├── RequestTimeoutError       no answer to a change request in time
    │   │   └── OpenTransactionError      someone else's transaction hides the log's end
    │   └── LockError                 someone else has, or took, the namespace's lock
    │       ├── LockTimeoutError
    │       └── LockLostError
    ├── Refused                   the other side said no: fix access, or the request
    │   └── RequestRefusedError       the runners refused a change request (its reason)
    ├── Conflict                  what a decision was about changed: look again, decide
    │   ├── ChangedMeanwhileError
    │   └── RequestConflictError      a request id reused for another request
    ├── HistoryError              the log is not what was written, or not trusted: an
    │   ├── DecodeError               operator decides (verify, quarantine, restore)
    │   │   └── CorruptLogError
    │   ├── ChainBrokenError
    │   ├── EvidenceError             a checkpoint, proof, cosignature or time-stamp fails
    │   └── ForeignRecordError        someone else appended among a runner's own appends
    ├── WitnessError              a witness did not cosign a checkpoint (each kind is also
    │   ├── WitnessUnreachableError   Unavailable, Refused or HistoryError, for its exit code)
    │   ├── WitnessProtocolError
    │   └── WitnessRejectedError
    │       ├── WitnessBadRequestError, WitnessConflictError
    │       ├── WitnessNotTrustedError: WitnessForbiddenError, WitnessUnknownLogError
    │       └── WitnessInconsistentError  the witness saw another history: a fork
    ├── TimestampError            no valid RFC 3161 token (also Unavailable, Refused or
    │   ├── TsaUnreachableError       HistoryError)
    │   ├── TsaRefusedError
    │   └── TimestampInvalidError
    ├── DecisionRequired          a unit needs a person before any run goes on
    │   ├── ChecksumDriftError
    │   └── ManualInterventionRequired
    ├── RunFailed                 the run stopped; its outcome is recorded
    │   ├── UnitFailedError
    │   └── RunInterrupted
    └── StepNotStarted            raised by a unit's step that provably did nothing
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AppendError",
    "ChainBrokenError",
    "ChangedMeanwhileError",
    "ChecksumDriftError",
    "ConfigError",
    "Conflict",
    "CorruptLogError",
    "DecisionRequired",
    "DecodeError",
    "EvidenceError",
    "FlamingockError",
    "ForeignRecordError",
    "HistoryError",
    "LockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "MissingExtraError",
    "NamespaceNotFoundError",
    "NoRoomError",
    "OpenTransactionError",
    "Refused",
    "Remedy",
    "RemedyKind",
    "RequestConflictError",
    "RequestRefusedError",
    "RequestTimeoutError",
    "RunFailed",
    "RunInterrupted",
    "StepNotStarted",
    "StoreError",
    "TemplateError",
    "TimestampError",
    "TimestampInvalidError",
    "Transient",
    "TsaRefusedError",
    "TsaUnreachableError",
    "Unavailable",
    "UnitFailedError",
    "WitnessBadRequestError",
    "WitnessConflictError",
    "WitnessError",
    "WitnessForbiddenError",
    "WitnessInconsistentError",
    "WitnessNotTrustedError",
    "WitnessProtocolError",
    "WitnessRejectedError",
    "WitnessUnknownLogError",
    "WitnessUnreachableError",
    "retryable",
]


class RemedyKind(enum.StrEnum):
    """The project's own ways out of a situation, each a command the CLI can write."""

    MARK = "mark"
    """Record what a person found on the target (``unit_id``, ``marked_as``, ``seen``)."""
    ACCEPT_DRIFT = "accept-drift"
    """Run again accepting changed definitions of applied units."""
    QUARANTINE = "quarantine"
    """Exclude the record at ``position`` from the history, with a reason."""
    VOUCH = "vouch"
    """Vouch for the unsigned history up to ``position``."""
    STATUS = "status"
    """Look at each unit's status."""
    VERIFY = "verify"
    """Replay the log and list every finding."""
    KEYS = "keys"
    """Create a signing key."""
    INIT = "init"
    """Create a workflow file."""
    PROJECT = "project"
    """Bring the projection up to date with the log."""
    PROJECT_REBUILD = "project-rebuild"
    """Rebuild the projection from the log."""
    PROJECT_TENANTS = "project-tenants"
    """Keep the projections of every tenant and of the rollouts up to date."""
    DELETE_GROUP_OFFSETS = "delete-group-offsets"
    """Forget how far a Kafka group's commits saw the log reach (``group``, ``topic``)."""
    FORGET_HEAD = "forget-head"
    """Forget the head a runner remembers of a namespace (``topic``: the file that holds it)."""
    ABORT_TRANSACTION = "abort-transaction"
    """End a Kafka transaction left open on ``topic`` (``partition``) from ``position``."""
    TENANT = "tenant"
    """Name one tenant of a workflow that runs per tenant (``--tenant ID``)."""
    ROLLOUT = "rollout"
    """Apply the workflow to every tenant, in waves."""
    ROLLOUT_STATUS = "rollout-status"
    """Look at a rollout (``rollout_id``): its waves, failed tenants, budget."""
    ROLLOUT_RESUME = "rollout-resume"
    """Resume the stopped rollout ``rollout_id`` past its failure budget, with a reason."""
    CHECKPOINT = "checkpoint"
    """Sign and publish a checkpoint of the log's tree now."""


@dataclass(frozen=True, slots=True)
class Remedy:
    """One thing a person can do, as data: the engine knows what, the CLI says how."""

    kind: RemedyKind
    unit_id: str | None = None
    marked_as: str | None = None
    """``APPLIED`` or ``ROLLED_BACK``, for a mark."""
    position: int | None = None
    """The log position it is about: the unit's last event (``seen``), or a record."""
    group: str | None = None
    topic: str | None = None
    partition: int | None = None
    rollout_id: str | None = None
    tenant: str | None = None


class FlamingockError(Exception):
    """Base of every error flamingock-es raises on purpose."""

    def __init__(self, message: str = "", *, remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(message)
        self.remedies = tuple(remedies)
        """What resolves it, as data; the CLI renders each as a command line."""


class ConfigError(FlamingockError):
    """A workflow, change file or setting is invalid. The message names the file and line."""


class MissingExtraError(ConfigError):
    """A feature needs an optional dependency that is not installed; names the extra."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        super().__init__(
            f"{feature} needs the {extra!r} extra ({missing} is not installed): "
            f"pip install 'flamingock-es[{extra}]'"
        )
        self.extra = extra


class NamespaceNotFoundError(ConfigError):
    """A read-only command names a namespace that has no audit log (a typo, usually)."""


class TemplateError(ConfigError):
    """A declarative unit names an unknown template or gives it bad parameters."""


class Transient(FlamingockError):
    """Worth retrying as it is: a service that did not answer, a lock someone else holds."""


class Unavailable(Transient):
    """A service (the bus, a store) could not be reached, or did not confirm, after the
    adapter's own bounded retries."""


class AppendError(Unavailable):
    """An audit event could not be made durable. The run stops rather than lose it."""


class NoRoomError(AppendError):
    """The log's filesystem had no room for an append: nothing of it was written and nothing
    the writer wrote before is in doubt, so a smaller append may still be made."""


class StoreError(Unavailable):
    """A projection store failed (after retries)."""


class RequestTimeoutError(Unavailable):
    """No answer to a change request appeared in the audit log in time."""


class OpenTransactionError(Unavailable):
    """A transaction this project's writer cannot end (another transactional id) is open on
    the audit log: what follows it is hidden until it ends or is aborted."""


class LockError(Transient):
    """The namespace's lock is another runner's: held past the wait, or taken away."""


class LockTimeoutError(LockError):
    """The namespace lock stayed held by another runner past the timeout."""


class LockLostError(LockError):
    """The lock was lost (revoked, evicted or fenced) while this runner held it."""


class Refused(FlamingockError):
    """The other side answered, and said no to these credentials (authentication, an ACL)."""


class RequestRefusedError(Refused):
    """The runners refused a change request before running anything (undecodable, not
    authenticated, expired, a reused id): it will never run as it is."""


class Conflict(FlamingockError):
    """What a decision or a request was about changed, or means something else, since."""


class ChangedMeanwhileError(Conflict):
    """A person's decision was refused: what it was about changed since they looked (while
    the command waited for the lock, say). Nothing was recorded; look again and decide."""


class RequestConflictError(Conflict):
    """A change request reuses the id of an earlier, different request."""


class HistoryError(FlamingockError):
    """The audit log is not what was written, or not covered by a trusted signature: no
    decision is made on it until an operator decides about the records it names."""


class DecodeError(HistoryError):
    """A record of the audit log cannot be decoded. Names the position; nothing is guessed."""

    def __init__(self, message: str, position: int | None = None, *,
                 remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(message, remedies=remedies)
        self.position = position


class CorruptLogError(DecodeError):
    """The local log file is damaged (bad frame, torn tail)."""


class ChainBrokenError(HistoryError):
    """The hash chain, the sequence or the signatures of the audit log do not hold."""


class EvidenceError(HistoryError):
    """A checkpoint, a proof, a cosignature or a time-stamp does not hold: unreadable, not
    signed by a trusted key, or not what the log (or the proof) shows."""


class ForeignRecordError(HistoryError):
    """Records this writer did not write landed among its own appends (someone without the
    lock wrote to the log). This writer's own records, ``appended``, are durable all the
    same; ``foreign`` are the positions of the others."""

    def __init__(self, message: str, *, appended: Sequence[int], foreign: Sequence[int],
                 remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(message, remedies=remedies)
        self.appended, self.foreign = list(appended), list(foreign)

    @classmethod
    def landed(cls, log: str, foreign: Sequence[int], appended: Sequence[int],
               unit: str = "offset", advice: str = "") -> ForeignRecordError:
        """The one way every log says it: where the others' records are, where this
        writer's own follow, and the operator's way on."""
        return cls(
            f"{len(foreign)} record(s) this runner did not write landed on {log} at {unit}(s) "
            f"{', '.join(map(str, foreign))} while it held the lock (between two of its "
            f"appends); its own records follow them, from {unit} {appended[0]}. The run stops "
            "here. If those records were not written by flamingock-es, an operator excludes "
            f"them (docs/recovery.md){advice}.", appended=appended, foreign=foreign,
            remedies=(Remedy(RemedyKind.QUARANTINE, position=foreign[0]),
                      Remedy(RemedyKind.VERIFY)))


class WitnessError(FlamingockError):
    """The witness did not cosign the checkpoint. ``url`` is the witness's submission prefix."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class WitnessUnreachableError(WitnessError, Unavailable):
    """No answer from the witness: connection refused, name not resolved, timed out. Nothing
    was cosigned; the same request may be sent again once the witness is reachable."""


class WitnessProtocolError(WitnessError, Refused):
    """The witness answered, but not as the protocol says (a 200 without signature lines, a 409
    without a size): the URL is probably not a witness's submission prefix."""


class WitnessRejectedError(WitnessError, Refused):
    """The witness answered and refused to cosign. ``status`` and ``body`` are its answer."""

    def __init__(self, message: str, url: str, status: int, body: str) -> None:
        super().__init__(message, url)
        self.status = status
        self.body = body


class WitnessBadRequestError(WitnessRejectedError):
    """400: the request is malformed, or its old size is larger than the checkpoint's size."""


class WitnessNotTrustedError(WitnessRejectedError):
    """403 or 404: the witness does not cosign this checkpoint's origin with these keys."""


class WitnessForbiddenError(WitnessNotTrustedError):
    """403: no signature on the checkpoint verifies with a key the witness trusts for its
    origin (or, for litewitness, the origin is not registered at all)."""


class WitnessUnknownLogError(WitnessNotTrustedError):
    """404: the witness knows no log of this origin (or, as HTTP goes, the URL is not a
    witness's submission prefix)."""


class WitnessConflictError(WitnessRejectedError):
    """409: the old size is not the size the witness last cosigned, ``witness_size``.

    Resubmit with ``old_size=witness_size`` and a proof from that size. A ``witness_size``
    larger than the log's own size means the witness cosigned a checkpoint this log never had:
    someone else published a history under this origin, which is for a person to look into.
    """

    def __init__(self, message: str, url: str, body: str, witness_size: int) -> None:
        super().__init__(message, url, 409, body)
        self.witness_size = witness_size


class WitnessInconsistentError(WitnessRejectedError, HistoryError):
    """422: the consistency proof does not show that the checkpoint's tree extends the tree the
    witness cosigned (or, at the same size, the root hashes differ). Either the proof is wrong,
    or the log forked: the witness holds a cosigned checkpoint that this history contradicts."""


class TimestampError(FlamingockError):
    """No valid time-stamp token: the TSA could not be asked, refused, or its token does not
    verify."""


class TsaUnreachableError(TimestampError, Unavailable):
    """No answer from the TSA (connection refused, timed out): ask again later."""


class TsaRefusedError(TimestampError, Refused):
    """The TSA answered without a token: an HTTP error, or a PKIStatus other than granted.
    ``status`` is the HTTP status, ``pki_status`` the RFC 3161 status when there is one."""

    def __init__(self, message: str, status: int, pki_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.pki_status = pki_status


class TimestampInvalidError(TimestampError, HistoryError):
    """A token does not verify: not a token, over another digest, signed by a certificate that
    the given CAs do not vouch for, without the timeStamping key usage, or (for a fresh token)
    answering another request's nonce."""


class DecisionRequired(FlamingockError):
    """A unit needs a person's decision before a run may go on."""


class ChecksumDriftError(DecisionRequired):
    """An applied unit's definition changed since it was applied."""


class ManualInterventionRequired(DecisionRequired):
    """A unit is failed or in doubt and its recovery strategy says: a person decides."""


class RunFailed(FlamingockError):
    """A run stopped before it applied everything; its outcome is in the audit log."""


class UnitFailedError(RunFailed):
    """A unit failed during a run (after its compensation ran, when it has one)."""


class RunInterrupted(RunFailed):
    """The run was asked to stop (SIGTERM, SIGINT) and did, its outcome recorded and the lock
    released: between two units (nothing in doubt), or, when the change in progress could
    not finish in the grace period, with that change recorded as interrupted (``signal``
    names the signal then)."""

    def __init__(self, message: str, signal: str | None = None) -> None:
        super().__init__(message)
        self.signal = signal
        """The signal whose stop interrupted a change, or ``None`` for a clean stop."""


class StepNotStarted(FlamingockError):
    """Raised by a unit's step that fails before its side effect could start (its parameters
    or preconditions do not hold): the unit is recorded as failed-not-started, and its own
    rollback is not run, since there is nothing to compensate."""


def retryable(error: BaseException) -> bool:
    """True if trying again, unchanged, may succeed: the one place that decides it."""
    return isinstance(error, Transient)
