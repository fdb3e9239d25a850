"""The unit cache: what loading each unit file found, kept with everything that went into it,
so that a start-up with nothing new reads and hashes each file but imports none.

An entry holds a file's units as planning needs them (id, order, checksum, recovery, whether
it has a rollback, ...) and is used only while everything those values came from is as it
was: the file's bytes (SHA-256); the other files its units' checksums read (a rollback
written in a helper module); the project's modules that were loaded when the cache was
written (a value imported from a helper); the environment variables read while unit files
were imported; the versions of flamingock-es and of Python. Anything else, and the file is
imported and checked as if there were no cache. A restored unit imports its file when it is
about to run (:mod:`.deferred`) and is refused if it is not the same unit. A file whose import
registered templates is never restored: its entry says only that it is always imported.

Not seen: what a unit file reads at import time from anywhere else (a data file, the clock, a
module installed outside the project, ``os.environb``). Keep such values out of definitions,
or turn the cache off with ``FLAMINGOCK_UNIT_CACHE=off``.

It is never a source of truth: a missing cache is rebuilt, a damaged one is ignored with a
warning and rebuilt, and one that cannot be written (a read-only file system) is skipped
with one debug line: it costs the next start-up its speed only.
It is ``.flamingock/unit-cache.json`` beside the workflow file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..._version import __version__
from ...core.changes import ChangeUnit, Recovery, source_files
from .deferred import DeferredFile
from .import_watch import TOOL_ROOT, EnvironmentReads, project_modules, watching_environment

__all__ = ["CACHE_FILE", "UnitCache"]

CACHE_FILE = Path(".flamingock") / "unit-cache.json"

_FORMAT = 3  # 2: a file may be always imported (it registers templates); 3: graph fields
_EVERYTHING = "*"  # the environment as a whole: a unit file iterated or copied it

log = logging.getLogger(__name__)


class UnitCache:
    """The cache of one workflow's unit files (see the module's docstring)."""

    def __init__(self, path: Path, roots: Sequence[Path] = (), skip_modules: str = "") -> None:
        """``roots``: where the project's own modules live (the workflow's folder, the units'
        folders); ``skip_modules``: the name prefix of the modules the loader imports unit
        files as (each is an entry of its own, not a module every entry depends on)."""
        self.path = path
        self._roots = list(roots)
        self._skip = skip_modules
        self._entries: dict[str, Any] | None = None
        self._modules: dict[str, str] = {}
        self._environment: dict[str, str] = {}
        self._salt = secrets.token_hex(8)
        self._digests: dict[str, str | None] = {}
        self._seen: set[str] = set()
        self._restored: dict[tuple[str, str, str], ChangeUnit] = {}
        self._reads = EnvironmentReads()
        self._changed = False

    @classmethod
    def beside(cls, workflow_file: Path, skip_modules: str) -> UnitCache:
        """The cache of the workflow in ``workflow_file`` (the settings turn it off:
        ``FLAMINGOCK_UNIT_CACHE=off``)."""
        base = workflow_file.parent
        return cls(base / CACHE_FILE, [base], skip_modules)

    def cover(self, directory: Path) -> None:
        """Count the modules under ``directory`` as the project's own, too."""
        self._roots.append(directory)

    # Reading ---------------------------------------------------------------------------------

    def restore(self, file: str, load: Callable[[], list[ChangeUnit]]) -> list[ChangeUnit] | None:
        """The units of ``file`` (an absolute path) as the cache kept them, if nothing they
        came from changed, else None. ``load`` imports them, when one is needed."""
        key = file
        self._seen.add(key)
        entry = self._loaded().get(key)
        if entry is None or entry.get("import"):  # it registers templates: always imported
            return None
        try:
            if entry["sha256"] != self._digest(key) or any(
                    self._digest(path) != digest for path, digest in entry["sources"].items()):
                return None
            deferred = DeferredFile(file, load)
            return [self._unit(deferred, row) for row in entry["units"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("%s: ignoring its damaged entry for %s (%r); the file is imported",
                        self.path, file, exc)
            return None

    def _unit(self, deferred: DeferredFile, row: list[Any]) -> ChangeUnit:
        (unit_id, order, author, description, run_always, recovery, accept_drift, template,
         source, checksum, has_rollback, parameters, unit_secrets, requires, when, on_fail,
         has_precondition) = row
        key = (unit_id, source, checksum)  # one unit in two files' namespaces stays one
        unit = self._restored.get(key)
        if unit is None:
            fields = {"id": unit_id, "order": order, "author": author,
                      "description": description, "run_always": run_always,
                      "recovery": _RECOVERIES[recovery], "accept_drift": accept_drift,
                      "template": template, "source": source, "parameters": parameters,
                      "secrets": frozenset(unit_secrets), "requires": tuple(requires),
                      "when": when, "on_fail": on_fail}
            for name, kind in _ROW_TYPES:
                if not isinstance(fields[name], kind):
                    raise TypeError(f"{name} is {type(fields[name]).__name__}")
            if not (isinstance(checksum, str) and isinstance(has_rollback, bool)
                    and isinstance(has_precondition, bool)
                    and all(isinstance(name, str) for name in fields["secrets"])
                    and all(isinstance(name, str) for name in fields["requires"])):
                raise TypeError("checksum, rollback, precondition, secrets or requires of "
                                "another type")
            unit = self._restored[key] = deferred.restore(fields, checksum, has_rollback,
                                                          has_precondition)
        return unit

    def _loaded(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("%s: cannot read the unit cache (%s); every unit file is imported",
                        self.path, exc)
            return {}
        try:
            doc = json.loads(text)
            stale = self._stale(doc)
            entries = doc["files"]
            if not isinstance(entries, dict):
                raise TypeError("files is not a mapping")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s: ignoring the unit cache, it is damaged (%r); every unit file is "
                        "imported and the cache written again", self.path, exc)
            self._changed = True
            return {}
        if stale:
            log.info("%s: %s; every unit file is imported again", self.path, stale)
            self._changed = True
            return {}
        self._modules, self._environment, self._salt = (
            doc["modules"], doc["environment"], doc["salt"])
        return entries

    def _stale(self, doc: dict[str, Any]) -> str:
        """Why the whole cache no longer holds, or ``""``."""
        if doc["identity"] != _identity():
            return "it was written by another version of flamingock-es or Python"
        for path, digest in doc["modules"].items():
            if self._digest(path) != digest:
                return f"the module {path} changed"
        salt = doc["salt"]
        for name, digest in doc["environment"].items():
            if _environment_digest(name, salt) != digest:
                return f"the environment variable {name} changed"
        return ""

    # Writing ---------------------------------------------------------------------------------

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Around the import of a unit file: note the environment variables it reads."""
        with watching_environment(self._reads):
            yield

    def remember(self, file: str, units: list[ChangeUnit], *,
                 always_import: bool = False) -> None:
        """Keep what importing ``file`` found (unless a value would not come back as it is:
        parameters that JSON cannot hold exactly, a source file that cannot be read), or, with
        ``always_import`` (its import registered templates), that it is never restored."""
        key = file
        entries = self._loaded()
        self._changed = True
        entries.pop(key, None)
        rows = [_row(unit) for unit in units]
        others = {path for unit in units for path in source_files(unit)
                  if path != key and not path.startswith(TOOL_ROOT)}
        sources = {path: self._digest(path) for path in sorted(others)}
        digest = self._digest(key)
        if always_import:
            entries[key] = {"import": True}
            return
        if digest is None or any(d is None for d in sources.values()) or None in rows:
            return
        entries[key] = {"sha256": digest, "sources": sources, "units": rows}

    def save(self) -> None:
        """Write the cache if this load changed it; a failure is logged, never raised."""
        reads = self._reads
        if not (self._changed or reads.names or reads.everything):
            return
        entries = self._loaded()
        for key in [k for k in entries if k not in self._seen]:  # another workflow's files
            if not os.path.exists(key):
                del entries[key]
        environment = dict(self._environment)
        for name in reads.names | ({_EVERYTHING} if reads.everything else set()):
            environment[name] = _environment_digest(name, self._salt)
        modules = dict(self._modules)
        for path in project_modules(self._roots, self._skip):
            digest = self._digest(path)
            if digest is not None:
                modules[path] = digest
        doc = {"identity": _identity(), "salt": self._salt, "modules": modules,
               "environment": environment, "files": entries}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(temporary, self.path)  # readers see the old cache or the new, whole
        except OSError as exc:  # an optimisation that cannot be written is skipped, quietly
            log.debug("%s: cannot write the unit cache (%s); the next start-up imports every "
                      "unit file again", self.path, exc)
            with contextlib.suppress(OSError):  # EROFS, even for a file that is not there
                temporary.unlink(missing_ok=True)

    def _digest(self, path: str) -> str | None:
        if path not in self._digests:
            try:
                self._digests[path] = hashlib.sha256(_read(path)).hexdigest()
            except OSError:
                self._digests[path] = None
        return self._digests[path]


def _read(path: str) -> bytes:
    """The file's bytes, with half the calls of ``open().read()`` (10,000 files a start-up)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_ROW_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("id", str), ("order", int), ("author", str), ("description", str), ("run_always", bool),
    ("accept_drift", bool), ("template", (str, type(None))), ("source", str),
    ("parameters", dict), ("when", (str, type(None))), ("on_fail", str))
_RECOVERIES = {recovery.value: recovery for recovery in Recovery}


def _row(unit: ChangeUnit) -> list[Any] | None:
    """A unit as the cache keeps it; None if JSON would not give its parameters back."""
    if not _json_exact(unit.parameters):
        return None
    return [unit.id, unit.order, unit.author, unit.description, unit.run_always,
            unit.recovery.value, unit.accept_drift, unit.template, unit.source, unit.checksum,
            unit.rollback is not None, unit.parameters, sorted(unit.secrets), list(unit.requires),
            unit.when, unit.on_fail, unit.precondition is not None]


def _json_exact(value: Any) -> bool:
    """True if ``json.loads(json.dumps(value))`` is ``value``, types included."""
    if value is None or type(value) in (str, bool, int):
        return True
    if type(value) is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if type(value) is list:
        return all(_json_exact(item) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _json_exact(v) for k, v in value.items())
    return False


def _identity() -> dict[str, Any]:
    return {"format": _FORMAT, "flamingock-es": __version__,
            "python": f"{platform.python_implementation()}-{platform.python_version()}"}


def _environment_digest(name: str, salt: str) -> str:
    """A salted digest of a variable's value (never the value: it may be a secret)."""
    if name == _EVERYTHING:
        value: str | None = json.dumps(sorted(os.environ.items()))
    else:
        value = os.environ.get(name)
    text = "\x00unset" if value is None else value
    return hashlib.sha256(f"{salt}\x00{text}".encode()).hexdigest()
