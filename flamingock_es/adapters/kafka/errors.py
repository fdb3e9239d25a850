"""Translating librdkafka errors into the project's own, and the bounded retry policy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from ...errors import Refused, Unavailable

__all__ = [
    "FENCING_CODES",
    "KafkaRefusedError",
    "KafkaUnavailableError",
    "error_of",
    "is_fencing",
    "is_refusal",
    "is_transient",
    "result_of",
    "transient_retry",
    "unavailable",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FENCING_CODES = frozenset({
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.INVALID_PRODUCER_ID_MAPPING,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.STALE_MEMBER_EPOCH,
    KafkaError.FENCED_MEMBER_EPOCH,
})
"""Codes meaning "another holder took over": the writer is stale and must stop."""

_TRANSIENT_CODES = frozenset({
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.CONCURRENT_TRANSACTIONS,
})


REFUSAL_CODES = frozenset({
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION,
})
"""Codes meaning "the cluster answered, and said no to these credentials": not worth a retry."""


class KafkaUnavailableError(Unavailable):
    """The Kafka cluster could not be reached or did not answer in time (after retries)."""


class KafkaRefusedError(Refused):
    """The Kafka cluster refused these credentials what was asked (authentication or ACL)."""


def error_of(exc: BaseException) -> KafkaError | None:
    """The ``KafkaError`` inside a ``KafkaException`` (or ``None``)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def is_fencing(exc: BaseException) -> bool:
    """True if ``exc`` says this client was fenced by a newer lock holder or producer."""
    err = error_of(exc)
    return err is not None and err.code() in FENCING_CODES


def is_refusal(err: KafkaError | None) -> bool:
    """True if ``err`` is Kafka refusing the credentials (authentication or an ACL)."""
    return err is not None and err.code() in REFUSAL_CODES


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: timeouts, unreachable or moving leaders/coordinators."""
    err = error_of(exc)
    if err is None or err.fatal() or err.code() in FENCING_CODES or is_refusal(err):
        return False
    return bool(err.retriable()) or err.code() in _TRANSIENT_CODES


def result_of(future: Future[_T], timeout: float) -> _T:
    """An admin call's result. No answer in ``timeout`` (a leader or coordinator on a node
    that just died) is a retriable ``KafkaException``, like librdkafka's own timeouts."""
    try:
        return future.result(timeout=timeout)
    except TimeoutError as exc:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"no answer in {timeout:g}s",
                                        retriable=True)) from exc


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    # One retry is routine (a partition whose leader is still taking over, a coordinator
    # that moved); a warning is for an error that persists.
    level = logging.DEBUG if state.attempt_number == 1 else logging.WARNING
    log.log(
        level, "Kafka call %s failed (attempt %d): %s; retrying",
        getattr(state.fn, "__name__", "?"), state.attempt_number, exc,
    )


def transient_retry(seconds: float = 20.0, attempts: int = 6) -> Callable[
    [Callable[..., _T]], Callable[..., _T]
]:
    """Retry transient Kafka errors with exponential backoff, at most ``attempts`` times and
    ``seconds`` in all; then the last error propagates for the caller to translate."""
    decorator: Callable[[Callable[..., _T]], Callable[..., _T]] = retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts) | stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.2, max=3.0),
        before_sleep=_log_retry,
        reraise=True,
    )
    return decorator


def unavailable(what: str, where: str,
                exc: BaseException | None) -> KafkaUnavailableError | KafkaRefusedError:
    """A clear error for ``what`` failing against ``where``: "is the broker running?", or,
    where Kafka answered with a refusal, which one and what to grant."""
    detail = f": {exc}" if exc is not None else ""
    if exc is not None and is_refusal(error_of(exc)):
        return refused(what, where, error_of(exc))
    return KafkaUnavailableError(
        f"could not {what} on {where}{detail}. Is the broker running and reachable from "
        "here (bootstrap address, listeners, security settings)?"
    )


def refused(what: str, where: str, err: KafkaError | None) -> KafkaRefusedError:
    """Kafka refused ``what`` to these credentials: name the refusal and the way out."""
    code = err.name() if err is not None else "refused"
    return KafkaRefusedError(
        f"{where} refused to {what}: {code} ({err.str() if err else ''}). The "
        "credentials in the kafka: block authenticate a principal that lacks the ACL for "
        "this (or do not authenticate at all); see docs/operations-kafka.md, least privilege."
    )
