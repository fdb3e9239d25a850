"""Workflow files already checked: an unchanged ``flamingock.yaml`` is not validated again.

Checking a workflow file against its model imports pydantic and builds its validators: some
0.2-0.3 s, more than the rest of a start-up with nothing to do. The outcome depends only on
the file's bytes and on the models, so once a file passed, the digest of both is kept in
``.flamingock/checked-workflows`` beside it, and a later start-up that finds the same digest
reads the file without validating it again. Anything else (an edit, another version of the
models) and the file is validated as if nothing were kept.

Like the unit cache it is never a source of truth: a missing or damaged record costs one
validation; one that cannot be written (a read-only file system) is skipped with a debug
line. The commands that load a workflow (``run``, ``plan``, ...) write it; the ones that only
read a log never write anything. ``FLAMINGOCK_UNIT_CACHE=off`` turns it off with the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

from ..._version import __version__

__all__ = ["RECORD", "is_known", "note", "save"]

RECORD = Path(".flamingock") / "checked-workflows"
_KEEP = 16  # digests kept: a folder may hold a few workflow files, each edited now and then
_MODELS = [Path(__file__).resolve().parents[1] / "models.py",
           *(Path(__file__).resolve().parents[2] / "core" / name
             for name in ("strict.py", "unit_fields.py"))]
"""The modules whose models decide whether a workflow file is valid."""

log = logging.getLogger(__name__)
_noted: dict[Path, str] = {}


def _digest(data: bytes) -> str:
    models = hashlib.sha256(__version__.encode())
    for path in _MODELS:
        try:
            models.update(path.read_bytes())
        except OSError:  # cannot tell which models: never known
            return ""
    return hashlib.sha256(models.digest() + data).hexdigest()


def is_known(workflow_file: Path, data: bytes) -> bool:
    """True if ``data`` (the file's bytes) passed the current models before."""
    digest = _digest(data)
    try:
        kept = (workflow_file.parent / RECORD).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(digest) and digest in kept


def note(workflow_file: Path, data: bytes) -> None:
    """``data`` just passed: :func:`save` keeps it."""
    _noted[workflow_file.resolve()] = _digest(data)


def save(workflow_file: Path) -> None:
    """Keep the digest noted for ``workflow_file``, if any; a failure is a debug line."""
    digest = _noted.pop(workflow_file.resolve(), "")
    if not digest:
        return
    record = workflow_file.parent / RECORD
    try:
        kept = record.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        kept = []
    kept = [*[d for d in kept if d != digest][-(_KEEP - 1):], digest]
    temporary = record.with_name(f".{record.name}.{os.getpid()}")
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text("\n".join(kept) + "\n", encoding="ascii")
        os.replace(temporary, record)
    except OSError as exc:
        log.debug("%s: not kept (%s); the workflow file is validated again next time", record,
                  exc)
        with contextlib.suppress(OSError):  # EROFS even for a file that is not there
            temporary.unlink(missing_ok=True)
