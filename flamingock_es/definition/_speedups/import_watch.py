"""What importing unit code may have read besides its own file: environment variables, and
the project's other modules.

A unit's definition is computed when its file is imported, and it may use more than the file:
``parameters={"pad": os.environ["PAD"]}``, ``author=team.OWNER`` from a helper module. The
unit cache (:mod:`.unit_cache`) keys its entries on these too, so that such a definition is
imported again when one of them changes, as it would have been without a cache.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TOOL_ROOT", "EnvironmentReads", "project_modules", "unwatched_environment",
           "watching_environment"]

_ENVIRONMENTS = ("site-packages", "dist-packages")
TOOL_ROOT = os.path.join(str(Path(__file__).resolve().parents[2]), "")
"""flamingock-es's own package folder: its modules are never the project's."""


class EnvironmentReads:
    """The variables read while watching, and whether the whole environment was (iterated,
    copied): then every variable counts."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.everything = False


class _RecordingEnviron(os._Environ[str]):
    """``os.environ`` that notes what is read. It shares the real one's data, so a module that
    kept a reference to it (``from os import environ``) keeps working after the watch."""

    def __init__(self, real: os._Environ[str], reads: EnvironmentReads) -> None:
        super().__init__(real._data, real.encodekey, real.decodekey,  # type: ignore[attr-defined]
                         real.encodevalue, real.decodevalue)
        self.real = real
        self.reads: EnvironmentReads | None = reads

    def __getitem__(self, key: str) -> str:  # get() and `in` come through here too
        if self.reads is not None:
            self.reads.names.add(key)
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        if self.reads is not None:
            self.reads.everything = True
        return super().__iter__()

    def copy(self) -> dict[str, str]:
        if self.reads is not None:
            self.reads.everything = True
        return super().copy()


@contextmanager
def watching_environment(reads: EnvironmentReads) -> Iterator[EnvironmentReads]:
    """Note in ``reads`` the environment variables read (``os.environ``, ``os.getenv``) in
    the block. ``os.environb`` and child processes are not seen."""
    real = os.environ
    if isinstance(real, _RecordingEnviron):  # already watched: one recorder is enough
        yield reads
        return
    recorder = _RecordingEnviron(real, reads)
    # Replacing the mapping (not the environment: it shares the real one's data) is the point:
    # os.getenv and every `os.environ[...]` read the module attribute.
    os.environ = recorder  # noqa: B003
    try:
        yield reads
    finally:
        os.environ = real  # noqa: B003
        recorder.reads = None


def unwatched_environment() -> Mapping[str, str]:
    """The environment, read without being noted: for what the loader itself reads during a
    watch (``${VAR}``s it resolves to check a block's shape: they never reach a definition)."""
    environ = os.environ
    return environ.real if isinstance(environ, _RecordingEnviron) else environ


def project_modules(roots: Sequence[Path], skip_prefix: str) -> set[str]:
    """The files of the loaded modules that live under one of ``roots``: not those of a
    virtual environment there, not flamingock-es's own, nor modules named ``skip_prefix...``
    (the unit files the loader imports, which the cache keys one by one)."""
    prefixes = tuple(os.path.join(os.path.abspath(root), "") for root in roots)
    found = set()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or name.startswith(skip_prefix):
            continue
        file = os.path.abspath(file)
        if (file.startswith(prefixes) and not file.startswith(TOOL_ROOT)
                and not any(part in _ENVIRONMENTS for part in Path(file).parts)):
            found.add(file)
    return found
