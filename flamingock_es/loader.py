"""Finding ChangeUnits: Python modules and packages, YAML and JSON files.

A source is a folder (every ``.py``, ``.yaml``, ``.yml`` and ``.json`` in it, sorted), a
single file, or a dotted Python package name. Python files are scanned for module-level
:class:`~flamingock_es.changes.ChangeUnit` objects (what ``@change_unit`` returns).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .changes import ChangeContext, ChangeUnit, Recovery, resolve
from .errors import ConfigError, StepNotStarted, TemplateError
from .yamlfile import Located, load_document

if TYPE_CHECKING:
    from .templates import Template

__all__ = ["declarative_unit", "load_units"]

_DECLARATIVE = (".yaml", ".yml", ".json")
_FIELDS = {"id", "order", "author", "description", "template", "apply", "rollback",
           "run_always", "recovery", "secrets", "accept_drift"}


def load_units(sources: Iterable[str] | str, base: Path, where: str = "") -> list[ChangeUnit]:
    """Every unit found in ``sources`` (paths relative to ``base``, or package names)."""
    if isinstance(sources, str):
        sources = [sources]
    units: list[ChangeUnit] = []
    for source in sources:
        path = base / source
        if path.is_dir():
            for file in sorted(path.iterdir()):
                if file.suffix == ".py" and not file.name.startswith("_"):
                    units += _python_file(file)
                elif file.suffix in _DECLARATIVE:
                    units += _declarative_file(file)
        elif path.is_file():
            units += _python_file(path) if path.suffix == ".py" else _declarative_file(path)
        elif "/" not in source and not source.endswith((*_DECLARATIVE, ".py")):
            units += _package(source, where)
        else:
            raise ConfigError(f"{where}: units source {source!r} does not exist "
                              f"(looked for {path})")
    return units


def _units_in(module: ModuleType) -> list[ChangeUnit]:
    return [value for value in vars(module).values() if isinstance(value, ChangeUnit)]


def _python_file(path: Path) -> list[ChangeUnit]:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"flamingock_units_{digest}_{path.stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise ConfigError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    return _units_in(module)


def _package(name: str, where: str) -> list[ChangeUnit]:
    try:
        package = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{where}: units source {name!r} is neither a path nor an importable "
                          f"package ({exc})") from exc
    units = _units_in(package)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{name}."):
        units += _units_in(importlib.import_module(info.name))
    return units


def _declarative_file(path: Path) -> list[ChangeUnit]:
    doc = load_document(path)
    items = doc if isinstance(doc, list) else [doc]
    return [declarative_unit(item, path) for item in items]


def declarative_unit(doc: Any, path: Path) -> ChangeUnit:
    """Build a ChangeUnit from one YAML/JSON mapping; every error names the file and line."""
    if not isinstance(doc, Located):
        raise ConfigError(f"{path}: a ChangeUnit must be a mapping with id, order, author, "
                          "template and apply")
    for key in doc:
        if key not in _FIELDS:
            raise ConfigError(f"{doc.where(key)}: unknown field {key!r}; "
                              f"expected {', '.join(sorted(_FIELDS))}")
    for key in ("id", "order", "author", "template", "apply"):
        if key not in doc:
            raise ConfigError(f"{doc.where()}: missing required field {key!r}")
    if not isinstance(doc["order"], int):
        raise ConfigError(f"{doc.where('order')}: order must be an integer")
    if not isinstance(doc["apply"], Mapping):
        raise ConfigError(f"{doc.where('apply')}: apply must be a mapping of parameters")
    try:
        recovery = Recovery(doc.get("recovery", Recovery.MANUAL_INTERVENTION))
    except ValueError as exc:
        raise ConfigError(f"{doc.where('recovery')}: recovery is 'manual-intervention' or "
                          "'always-retry'") from exc
    from .templates import get_template  # pydantic: only a declarative unit needs it

    where = doc.where("template")
    template = get_template(str(doc["template"]), where)
    blocks = {"apply": _plain(doc["apply"])}
    rollback_block = doc.get("rollback")
    if rollback_block is not None:
        blocks["rollback"] = _plain(rollback_block)
        if not template.has_rollback:
            raise ConfigError(f"{doc.where('rollback')}: template {template.name!r} has no "
                              "rollback; remove the block")
    for phase, block in blocks.items():
        _check_shape(template, block, phase, doc.where(phase))
    secrets = frozenset(doc.get("secrets", ())) | template.secret_fields

    def check(params: Mapping[str, Any]) -> None:
        for phase in blocks:
            template.validate(params[phase], phase, f"{path} ({phase})")

    def step(phase: str) -> Any:
        def run(ctx: ChangeContext) -> None:
            try:
                params = template.validate(ctx.params[phase], phase, f"{path} ({phase})")
            except TemplateError as exc:  # nothing was sent anywhere yet
                raise StepNotStarted(str(exc)) from exc
            getattr(template, phase)(params, ctx)

        return run

    return ChangeUnit(
        id=str(doc["id"]),
        order=doc["order"],
        author=str(doc["author"]),
        apply=step("apply"),
        rollback=step("rollback") if rollback_block is not None else None,
        description=str(doc.get("description", "")),
        run_always=bool(doc.get("run_always", False)),
        recovery=recovery,
        parameters=blocks,
        secrets=secrets,
        template=template.name,
        accept_drift=bool(doc.get("accept_drift", False)),
        source=doc.where(),
        body="",
        check=check,
    )


def _check_shape(template: Template, block: Mapping[str, Any], phase: str, where: str) -> None:
    """Check ``block`` before the run: ``${VAR}``s set in this environment are resolved; an
    unset one is a placeholder whose value may not fit its field's type yet, so only that
    field's type is left for the run to check. Everything else (an unknown or misspelt key, a
    missing field, a literal of the wrong type) is an error now."""
    probe, unknown = _placeholders(block, os.environ)
    problems = [p for p in template.problems(probe, phase)
                if p.kind == "extra_forbidden" or p.loc[:len(p.loc)] not in unknown]
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
        raise ConfigError(
            f"{unit.source}: unit {unit.id!r} uses ${{{exc.args[0]}}}, which is not set in the "
            "environment. Export it (or give a default: ${VAR:-value})."
        ) from exc
