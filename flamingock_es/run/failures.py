"""What a failed step leaves behind: its error as the audit log keeps it.

The message is scrubbed of every secret value the step could see
(:func:`flamingock_es.core.secrets.scrub`) before it is recorded or shown: a value written to
the append-only log can never be taken out again.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.events import ErrorInfo
from ..core.secrets import scrub

__all__ = ["failure"]


def failure(exc: BaseException, secrets: Iterable[str], unit_id: str,
            step: str = "apply") -> ErrorInfo:
    """``exc`` as the audit log records it: its type and its scrubbed message."""
    return ErrorInfo(type=type(exc).__name__, message=scrub(str(exc) or repr(exc),
                                                            frozenset(secrets)))
