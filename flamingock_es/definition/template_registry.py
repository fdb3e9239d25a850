"""Which templates exist: the registry that ``@register`` fills, with no pydantic in it.

Kept apart from the templates themselves so that the loader can ask, cheaply and without
importing any template, whether importing a unit file registered one: such a file is never
skipped by the unit cache (:mod:`~flamingock_es.definition._speedups.unit_cache`), since a
start-up that did not import it would not know its templates.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError
from .settings import TemplateSource

__all__ = ["ENTRY_POINTS", "MODULE_PREFIX", "find", "import_modules", "register", "registered",
           "registers_in"]

ENTRY_POINTS = "flamingock_es.templates"
"""The entry-point group through which an installed package publishes templates."""

MODULE_PREFIX = "flamingock_templates_"
"""The names ``.py`` files of ``templates:`` are imported under (with their path's hash)."""

_T = TypeVar("_T", bound=type[Any])
_REGISTRY: dict[str, type[Any]] = {}


def register(cls: _T) -> _T:
    """Make the template class ``cls`` available under ``cls.name``. Usable as a class
    decorator."""
    _REGISTRY[cls.name] = cls
    return cls


def find(name: str) -> type[Any] | None:
    """The template class registered as ``name``, if any."""
    return _REGISTRY.get(name)


def registered() -> dict[str, type[Any]]:
    """Every registered template class, by name (a copy)."""
    return dict(_REGISTRY)


def registers_in(path: str, before: dict[str, type[Any]]) -> bool:
    """True if loading ``path`` (an absolute file name) registered a template: the registry
    changed since ``before``, or holds a class that ``path`` defines (a file loaded again in
    this process registers nothing new, and must still never be skipped)."""
    now = _REGISTRY
    if now.keys() != before.keys() or any(now[k] is not before[k] for k in now):
        return True
    return any(_file_of(cls) == path for cls in now.values())


def _file_of(cls: type[Any]) -> str | None:
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    return os.path.abspath(file) if isinstance(file, str) else None


def import_modules(sources: Sequence[TemplateSource], base: Path) -> None:
    """Import the modules a workflow file names under ``templates:`` (dotted names, or
    ``.py`` files relative to ``base``), so that the templates they register are known
    before any unit is read. Every load does it: nothing is restored from a cache here."""
    for source in sources:
        name = source.module
        try:
            if name.endswith(".py"):
                _import_file(base / name)
            else:
                importlib.import_module(name)
        except ConfigError:
            raise
        except Exception as exc:
            what = "cannot be found" if isinstance(exc, ModuleNotFoundError) and \
                exc.name == name.partition(".")[0] and not name.endswith(".py") else \
                f"failed to import: {type(exc).__name__}: {exc}"
            raise ConfigError(f"{source.where}: the templates module {name!r} {what}. Name a "
                              "module importable from the workflow file's folder, or a .py "
                              "file relative to it.") from exc


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    file = os.path.abspath(path)
    digest = hashlib.sha1(file.encode()).hexdigest()[:12]
    name = f"{MODULE_PREFIX}{digest}_{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
