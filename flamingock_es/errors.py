"""The project's own errors. Adapters translate driver exceptions into these.

Every message says what happened and what to do next; the CLI prints it as is and exits with
the error's ``exit_code``.
"""

from __future__ import annotations

__all__ = [
    "AppendError",
    "ChainBrokenError",
    "ChangedMeanwhileError",
    "ChecksumDriftError",
    "ConfigError",
    "CorruptLogError",
    "DecodeError",
    "FlamingockError",
    "LockLostError",
    "LockTimeoutError",
    "ManualInterventionRequired",
    "MissingExtraError",
    "NamespaceNotFoundError",
    "RequestTimeoutError",
    "RunInterrupted",
    "StepNotStarted",
    "StoreError",
    "TemplateError",
    "UnitFailedError",
]


class FlamingockError(Exception):
    """Base of every error flamingock-es raises on purpose."""

    exit_code = 1


class ConfigError(FlamingockError):
    """A workflow, change file or setting is invalid. The message names the file and line."""

    exit_code = 2


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


class DecodeError(FlamingockError):
    """A record of the audit log cannot be decoded. Names the position; nothing is guessed."""

    exit_code = 4

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class CorruptLogError(DecodeError):
    """The local log file is damaged (bad frame, torn tail)."""


class ChainBrokenError(FlamingockError):
    """The hash chain or the sequence of the audit log does not hold."""

    exit_code = 4


class AppendError(FlamingockError):
    """An audit event could not be made durable. The run stops rather than lose it."""

    exit_code = 5


class RequestTimeoutError(FlamingockError):
    """No answer to a change request appeared in the audit log in time."""

    exit_code = 3


class StoreError(FlamingockError):
    """A projection store failed (after retries)."""

    exit_code = 5


class LockTimeoutError(FlamingockError):
    """The namespace lock stayed held by another runner past the timeout."""

    exit_code = 3


class LockLostError(FlamingockError):
    """The lock was lost (revoked, evicted or fenced) while this runner held it."""

    exit_code = 3


class ChecksumDriftError(FlamingockError):
    """An applied unit's definition changed since it was applied."""

    exit_code = 6


class ManualInterventionRequired(FlamingockError):
    """A unit is failed or in doubt and its recovery strategy says: a person decides."""

    exit_code = 7


class StepNotStarted(FlamingockError):
    """Raised by a unit's step that fails before its side effect could start (its parameters
    or preconditions do not hold): the unit is recorded as failed-not-started, and its own
    rollback is not run, since there is nothing to compensate."""

    exit_code = 8


class ChangedMeanwhileError(FlamingockError):
    """A person's decision was refused: what it was about changed since they looked (while
    the command waited for the lock, say). Nothing was recorded; look again and decide."""

    exit_code = 7


class UnitFailedError(FlamingockError):
    """A unit failed during a run (after its compensation ran, when it has one)."""

    exit_code = 8


class RunInterrupted(FlamingockError):
    """The run was asked to stop (SIGTERM, SIGINT) and did, its outcome recorded and the lock
    released: between two units (exit 9: nothing in doubt), or, when the change in progress
    could not finish in the grace period, with that change recorded as interrupted (exit
    128 + the signal's number: 143 for SIGTERM, 130 for SIGINT)."""

    exit_code = 9

    def __init__(self, message: str, exit_code: int = 9) -> None:
        super().__init__(message)
        self.exit_code = exit_code
