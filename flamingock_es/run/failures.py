"""What a failed step leaves behind: its error as the audit log keeps it, and where it came from.

An auditor reading ``KeyError: 'missing'`` in a report, and a person reading it on a
terminal, both need the line that raised it. The line that matters is in the unit's own code,
not in flamingock-es, the standard library or a driver it called: :func:`failure` records the
innermost frame of the traceback that is the unit's (``ErrorInfo.where``), and logs the whole
traceback at DEBUG (``-v`` shows it). The message and the traceback are scrubbed of every
secret value the step could see first (:func:`flamingock_es.core.secrets.scrub`): a value
written to the append-only log can never be taken out again.
"""

from __future__ import annotations

import logging
import os
import site
import sysconfig
import traceback
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from types import TracebackType

from ..core.events import ErrorInfo
from ..core.secrets import scrub

__all__ = ["failure", "unit_frame"]

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parents[1]
"""flamingock_es itself: never the unit's code."""


def failure(exc: BaseException, secrets: Iterable[str], unit_id: str,
            step: str = "apply") -> ErrorInfo:
    """``exc`` as the audit log records it: type, scrubbed message, the unit's line."""
    values = frozenset(secrets)
    message = scrub(str(exc) or repr(exc), values)
    if log.isEnabledFor(logging.DEBUG):
        text = "".join(traceback.format_exception(exc))
        log.debug("the %s of %s raised:\n%s", step, unit_id, scrub(text, values).rstrip())
    return ErrorInfo(type=type(exc).__name__, message=message, where=unit_frame(exc))


def unit_frame(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc`` (or of what caused it) that is the
    unit's own code: outside flamingock-es and the libraries installed beside it. A unit
    installed as a package itself is found among the installed ones, outside the standard
    library; ``None`` when the error never passed through the unit's code (a template's)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = _frames(current.__traceback__)
        for libraries in (_libraries(), _standard()):
            for filename, line in reversed(frames):
                if _is_unit(filename, libraries):
                    return f"{_shown(filename)}:{line}"
        current = current.__cause__ or current.__context__
    return None


def _frames(tb: TracebackType | None) -> list[tuple[str, int]]:
    out = []
    while tb is not None:
        out.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _is_unit(filename: str, libraries: tuple[Path, ...]) -> bool:
    if filename.startswith("<"):  # <frozen ...>, <string>
        return False
    path = Path(filename).resolve()
    return not path.is_relative_to(_PACKAGE) and \
        not any(path.is_relative_to(folder) for folder in libraries)


@cache
def _standard() -> tuple[Path, ...]:
    names = ("stdlib", "platstdlib")
    return tuple({Path(p).resolve() for n in names if (p := sysconfig.get_path(n))})


@cache
def _libraries() -> tuple[Path, ...]:
    """The standard library and every folder installed packages live in."""
    names = ("purelib", "platlib")
    found = {Path(p).resolve() for n in names if (p := sysconfig.get_path(n))}
    found |= {Path(p).resolve() for p in (*site.getsitepackages(), site.getusersitepackages())}
    return (*_standard(), *found)


def _shown(filename: str) -> str:
    """The path as a person finds it: relative to where the command runs, when inside."""
    try:
        return os.path.relpath(filename) if Path(filename).resolve().is_relative_to(
            Path.cwd().resolve()) else filename
    except (OSError, ValueError):
        return filename
