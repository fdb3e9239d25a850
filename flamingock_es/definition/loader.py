"""Finding ChangeUnits: Python modules and packages, YAML and JSON files.

A source is a folder (every ``.py``, ``.yaml``, ``.yml`` and ``.json`` in it, sorted), a
single file, or a dotted Python package name. Python files are scanned for module-level
:class:`~flamingock_es.core.changes.ChangeUnit` objects (what ``@change_unit`` returns).

With a :class:`~flamingock_es.definition._speedups.unit_cache.UnitCache`, a file whose entry
still holds is not imported: its units are restored, and import their code only when they are
about to run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..core.changes import ChangeContext, ChangeUnit, Recovery, resolve
from ..errors import ConfigError, StepNotStarted, TemplateError
from ._speedups.import_watch import unwatched_environment
from ._speedups.unit_cache import UnitCache
from .template_registry import registered, registers_in
from .yamlfile import Located, load_document

if TYPE_CHECKING:
    from .templates import Template

__all__ = ["UNIT_MODULE_PREFIX", "declarative_unit", "load_units"]

UNIT_MODULE_PREFIX = "flamingock_units_"
"""The names the unit files of a folder are imported under: ``flamingock_units_<hash>_<stem>``
(the hash of the file's path, so that two folders' ``v1.py`` stay two modules)."""

_DECLARATIVE = (".yaml", ".yml", ".json")


def load_units(sources: Iterable[str] | str, base: Path, where: str = "",
               cache: UnitCache | None = None) -> list[ChangeUnit]:
    """Every unit found in ``sources`` (paths relative to ``base``, or package names); with
    ``cache``, files it still holds are restored instead of imported."""
    if isinstance(sources, str):
        sources = [sources]
    units: list[ChangeUnit] = []
    for source in sources:
        path = base / source
        if path.is_dir():
            folder = os.path.abspath(path)
            if cache is not None:
                cache.cover(Path(folder))
            for name in sorted(os.listdir(folder)):  # strings: a folder may hold 10,000 units
                stem, _, suffix = name.rpartition(".")  # what Path.suffix says, for less
                if stem and suffix == "py" and not name.startswith("_"):
                    units += _cached(os.path.join(folder, name), _python_file, cache)
                elif stem and f".{suffix}" in _DECLARATIVE:
                    units += _cached(os.path.join(folder, name), _declarative_file, cache)
        elif path.is_file():
            file = os.path.abspath(path)
            if cache is not None:
                cache.cover(Path(file).parent)
            units += _cached(file, _python_file if path.suffix == ".py" else _declarative_file,
                             cache)
        elif "/" not in source and not source.endswith((*_DECLARATIVE, ".py")):
            units += _package(source, where, cache)
        else:
            raise ConfigError(f"{where}: units source {source!r} does not exist "
                              f"(looked for {path})")
    return units


def _cached(file: str, load: Callable[[Path], list[ChangeUnit]],
            cache: UnitCache | None) -> list[ChangeUnit]:
    """``load(file)`` (an absolute path), unless ``cache`` still holds the file's units."""
    if cache is None:
        return load(Path(file))
    units = cache.restore(file, lambda: load(Path(file)))
    if units is None:
        before = registered()
        with cache.watching():
            units = load(Path(file))
        # A file that registers templates is imported on every load: restored, it would not
        # be, and the units naming its templates could not run.
        cache.remember(file, units, always_import=registers_in(file, before))
    return units


def _units_in(module: ModuleType) -> list[ChangeUnit]:
    return [value for value in vars(module).values() if isinstance(value, ChangeUnit)]


def _python_file(path: Path) -> list[ChangeUnit]:
    # The module is named after the file's real location, so that two paths to one file
    # import it once; its folder is resolved once (10,000 resolves were a tenth of a load).
    real = os.path.join(_real_folder(os.path.dirname(path)), path.name)
    digest = hashlib.sha1(real.encode()).hexdigest()[:12]
    name = f"{UNIT_MODULE_PREFIX}{digest}_{path.stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except ConfigError:  # a unit's own definition is wrong: it names its file and line
            del sys.modules[name]
            raise
        except Exception as exc:
            del sys.modules[name]
            raise ConfigError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    return _units_in(module)


@functools.lru_cache(maxsize=256)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _package(name: str, where: str, cache: UnitCache | None) -> list[ChangeUnit]:
    modules = _package_files(name) if cache is not None else None
    if modules is not None:
        units = []
        for module, path in modules:
            units += _cached(os.path.abspath(path), _module_units(module), cache)
        return units
    try:
        package = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{where}: units source {name!r} is neither a path nor an importable "
                          f"package ({exc})") from exc
    units = _units_in(package)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{name}."):
        units += _units_in(importlib.import_module(info.name))
    return units


def _module_units(name: str) -> Callable[[Path], list[ChangeUnit]]:
    def load(path: Path) -> list[ChangeUnit]:
        try:
            return _units_in(importlib.import_module(name))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{path}: importing {name} failed: {type(exc).__name__}: "
                              f"{exc}") from exc

    return load


def _package_files(name: str) -> list[tuple[str, Path]] | None:
    """The modules of package ``name`` and their files, found on disk without importing them
    (as ``pkgutil.walk_packages`` lists them, in its order); None when some module is not a
    plain ``.py`` file (then the package is imported to be scanned, as without a cache)."""
    try:
        spec = importlib.util.find_spec(name)  # imports the parents of a dotted name only
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    found = [(name, Path(spec.origin))]

    def walk(directories: Iterable[str], prefix: str) -> bool:
        for info in pkgutil.iter_modules(list(directories), prefix):
            sub = info.module_finder.find_spec(info.name, None)
            if sub is None or sub.origin is None or not sub.origin.endswith(".py"):
                return False
            found.append((info.name, Path(sub.origin)))
            if info.ispkg and not walk(sub.submodule_search_locations or (), f"{info.name}."):
                return False
        return True

    return found if walk(spec.submodule_search_locations or (), f"{name}.") else None


def _declarative_file(path: Path) -> list[ChangeUnit]:
    doc = load_document(path)
    items = doc if isinstance(doc, list) else [doc]
    return [declarative_unit(item, path) for item in items]


def declarative_unit(doc: Any, path: Path) -> ChangeUnit:
    """Build a ChangeUnit from one YAML/JSON mapping, checked strictly against
    :class:`~flamingock_es.definition.models.UnitFile`; every error names the file and line."""
    # pydantic and the templates: only a declarative unit that is read needs them
    from .models import UnitFile
    from .templates import get_template
    from .validation import validated

    if not isinstance(doc, Located):
        raise ConfigError(f"{path}: a ChangeUnit must be a mapping with id, order, author, "
                          "template and apply")
    fields = validated(UnitFile, doc, doc.where(), noun="field")
    where = doc.where("template")
    template = get_template(fields.template, where)
    blocks = {"apply": _plain(fields.apply)}
    if fields.rollback is not None:
        blocks["rollback"] = _plain(fields.rollback)
        if not template.has_rollback:
            raise ConfigError(f"{doc.where('rollback')}: template {template.name!r} has no "
                              "rollback; remove the block")
    if fields.precondition is not None:
        blocks["precondition"] = _plain(fields.precondition)
        if not template.has_precondition:
            raise ConfigError(f"{doc.where('precondition')}: template {template.name!r} has no "
                              "precondition check; remove the block, or write the unit in "
                              "Python with precondition=")
    for phase, block in blocks.items():
        _check_shape(template, block, phase, doc.where(phase))
    secrets = frozenset(fields.secrets) | template.secret_fields

    def check(params: Mapping[str, Any]) -> None:
        for phase in blocks:
            where = f"{path} ({phase})"
            template.check(template.validate(params[phase], phase, where, blocks[phase]), where)

    def step(phase: str) -> Any:
        def run(ctx: ChangeContext) -> None:
            try:
                params = template.validate(ctx.params[phase], phase, f"{path} ({phase})",
                                           blocks[phase])
            except TemplateError as exc:  # nothing was sent anywhere yet
                raise StepNotStarted(str(exc)) from exc
            getattr(template, phase)(params, ctx)

        return run

    def check_precondition(ctx: ChangeContext) -> bool:
        where = f"{path} (precondition)"
        params = template.validate(ctx.params["precondition"], "precondition", where,
                                   blocks["precondition"])
        return template.precondition(params, ctx)

    return ChangeUnit(
        id=fields.id,
        order=fields.order,
        author=fields.author,
        apply=step("apply"),
        rollback=step("rollback") if "rollback" in blocks else None,
        description=fields.description,
        run_always=fields.run_always,
        recovery=Recovery(fields.recovery),
        parameters=blocks,
        secrets=secrets,
        template=template.name,
        accept_drift=fields.accept_drift,
        source=doc.where(),
        body="",
        check=check,
        requires=tuple(fields.requires),
        when=fields.when,
        precondition=check_precondition if "precondition" in blocks else None,
        on_fail=fields.on_fail,
    )


def _check_shape(template: Template, block: Mapping[str, Any], phase: str, where: str) -> None:
    """Check ``block`` before the run: ``${VAR}``s set in this environment are resolved; an
    unset one is a placeholder whose value may not fit its field's type yet, so only that
    field's type is left for the run to check. Everything else (an unknown or misspelt key, a
    missing field, a literal of the wrong type) is an error now."""
    probe, unknown = _placeholders(block, unwatched_environment())
    problems = [p for p in template.problems(probe, phase, block)
                if p.kind == "extra_forbidden" or not p.under(unknown)]
    if problems:
        raise template.misfit(where, phase, problems)


def _placeholders(value: Any, env: Mapping[str, str], loc: tuple[str | int, ...] = ()
                  ) -> tuple[Any, set[tuple[str | int, ...]]]:
    """``value`` with the variables ``env`` has resolved, and where unresolved ones remain."""
    if isinstance(value, Mapping):
        out, unknown = {}, set()
        for key, item in value.items():
            out[key], found = _placeholders(item, env, (*loc, key))
            unknown |= found
        return out, unknown
    if isinstance(value, list):
        items = [_placeholders(item, env, (*loc, i)) for i, item in enumerate(value)]
        return [v for v, _ in items], set().union(*(u for _, u in items))
    if isinstance(value, str) and "${" in value:
        try:
            return resolve(value, env), set()
        except KeyError:
            return value, {loc}
    return value, set()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def resolved_parameters(unit: ChangeUnit, env: Mapping[str, str]) -> Mapping[str, Any]:
    """The unit's parameters with ``${VAR}`` filled in; a missing variable is a clear error."""
    try:
        return resolve(dict(unit.parameters), env)
    except KeyError as exc:
        name = str(exc.args[0])
        if name.startswith("tenant."):
            raise ConfigError(
                f"{unit.source}: unit {unit.id!r} uses ${{{name}}}, a tenant's value: "
                + ("this tenant has no such attribute (give it one, a default under "
                   "tenants.defaults, or write ${" + name + ":-value})"
                   if "tenant.id" in env else
                   "run it for a tenant (--tenant ID), or roll it out to every tenant "
                   "(flamingock-es rollout)")) from exc
        raise ConfigError(
            f"{unit.source}: unit {unit.id!r} uses ${{{exc.args[0]}}}, which is not set in the "
            "environment. Export it (or give a default: ${VAR:-value})."
        ) from exc
