"""Which modules run compiled: a mypyc extension is used only if it was built from the source
that sits beside it (the settings may still ask for the pure-Python path).

``setup.py`` compiles the hot modules where it can and records, in the generated
``flamingock_es/_compiled.py``, the SHA-256 of each source it compiled. An editable install
keeps the extension beside its source: once that source is edited, the extension is stale.
Then this says so (once, in the log) and hands out the module loaded from its source
instead, so that what runs is always the code in the tree.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TypeVar, cast

__all__ = ["current_source", "is_current"]

_Module = TypeVar("_Module", bound=ModuleType)

log = logging.getLogger(__name__)


def is_current(module: ModuleType) -> bool:
    """True if ``module`` is a compiled extension built from the source beside it."""
    origin = getattr(module, "__file__", None) or ""
    return not origin.endswith(".py") and _built_from_source(module.__name__, origin)


def current_source(module: _Module) -> _Module:
    """``module`` if it is its source, or an extension built from it; else (a stale
    extension) the module loaded from its source."""
    origin = getattr(module, "__file__", None) or ""
    if origin.endswith(".py") or is_current(module):
        return module
    return cast(_Module, _from_source(module.__name__, origin))


@cache
def _from_source(name: str, origin: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _source_of(name, origin))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # kept apart: sys.modules keeps the extension
    return module


def _source_of(name: str, origin: str) -> Path:
    return Path(origin).parent / f"{name.rpartition('.')[2]}.py"


@cache
def _built_from_source(name: str, origin: str) -> bool:
    source = _source_of(name, origin)
    try:
        built: dict[str, str] = importlib.import_module(f"{__package__}._compiled").SOURCES
    except ImportError:
        built = {}
    try:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        return name in built  # an install without sources: what was built is what there is
    if built.get(name) == digest:
        return True
    log.warning("%s: the compiled extension %s was not built from %s as it is now; using the "
                "pure-Python path. Rebuild it with `FLAMINGOCK_COMPILE=1 pip install -e .`.",
                name, origin, source)
    return False
