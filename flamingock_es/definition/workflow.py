"""Workflows: the ordered stages of ChangeUnits a namespace applies, with their settings.

A workflow is its :class:`~flamingock_es.definition.settings.Settings` plus the units they
name, loaded.
Build one in code with :meth:`Workflow.of`, or from a ``flamingock.yaml`` with
:func:`load_workflow` (which imports the units' code; reading settings alone never does).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.changes import ChangeUnit
from ..errors import ConfigError
from ._speedups import checked
from ._speedups.gcbatch import batched_gc
from ._speedups.unit_cache import UnitCache
from .loader import UNIT_MODULE_PREFIX, load_units
from .settings import CompensationScope, Settings, resolve_settings
from .template_registry import import_modules
from .tenants import Tenant

if TYPE_CHECKING:
    from .conditions import Condition
    from .graph import Graph

__all__ = ["CompensationScope", "Stage", "Workflow", "load_workflow"]


@dataclass(frozen=True)
class Stage:
    """An ordered group of units: every one comes after every unit of the stages before.
    Within it, units run in ``order`` unless ``requires`` lets them run side by side."""

    name: str
    units: tuple[ChangeUnit, ...]
    max_parallel: int | None = None


@dataclass(frozen=True)
class Workflow:
    """Everything a run needs to know: its settings and its units, in execution order."""

    settings: Settings
    stages: tuple[Stage, ...] = field(default=())

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def name(self) -> str:
        return self.settings.name or self.settings.namespace

    @property
    def lock_timeout(self) -> float:
        return self.settings.lock_timeout

    @property
    def compensate(self) -> CompensationScope:
        return self.settings.compensate

    @property
    def source(self) -> str:
        return self.settings.source

    def units(self) -> Iterator[tuple[Stage, ChangeUnit]]:
        """Every unit, in execution order."""
        for stage in self.stages:
            for unit in stage.units:
                yield stage, unit

    def unit(self, unit_id: str) -> ChangeUnit | None:
        return self._by_id.get(unit_id)

    @cached_property
    def _by_id(self) -> dict[str, ChangeUnit]:
        return {unit.id: unit for _, unit in self.units()}

    @cached_property
    def graph(self) -> Graph:
        """The units as a dependency graph (stages in order, plus each unit's ``requires``),
        checked: an unknown id, a cycle or a requirement on a later stage is a
        ``ConfigError`` naming each unit's file:line."""
        from .graph import GraphError, Node, build

        nodes = [Node(unit.id, index, unit.order, unit.requires, unit.source)
                 for index, stage in enumerate(self.stages) for unit in stage.units]
        try:
            return build(nodes, stage_names=dict(enumerate(s.name for s in self.stages)))
        except GraphError as exc:
            raise ConfigError(str(exc)) from exc

    @cached_property
    def conditions(self) -> dict[str, Condition]:
        """Each unit's ``when:``, compiled (a condition that does not parse, or names a
        variable there is not, is a ``ConfigError`` with the unit's file:line)."""
        if not any(unit.when for _, unit in self.units()):
            return {}
        from .conditions import Condition, ConditionError

        out = {}
        for _, unit in self.units():
            if unit.when:
                try:
                    out[unit.id] = Condition.compile(unit.when, unit.source)
                except ConditionError as exc:
                    raise ConfigError(str(exc)) from exc
        return out

    @property
    def max_parallel(self) -> int:
        return self.settings.max_parallel

    def check(self) -> Workflow:
        """Refuse now what would stop a run halfway: the graph and the conditions."""
        _ = self.graph, self.conditions
        return self

    def but(self, **changes: Any) -> Workflow:
        """The same units under changed settings (flags); ``None`` values change nothing."""
        return Workflow(self.settings.but(**changes), self.stages)

    def for_tenant(self, tenant: str | Tenant, known: list[Tenant] | None = None) -> Workflow:
        """The same units for one tenant: its namespace, its ``${tenant.<key>}`` values."""
        return Workflow(self.settings.for_tenant(tenant, known), self.stages)

    @classmethod
    def of(cls, namespace: str, stages: Mapping[str, Sequence[ChangeUnit]],
           **options: Any) -> Workflow:
        """Build a workflow in code: ``Workflow.of("shop", {"data": [unit_a, unit_b]})``.

        ``options`` are settings (``bus``, ``lock_timeout``, ``settings`` for the units' block,
        ...); what is not given comes from the environment and the defaults.
        """
        if "settings" in options:
            options["unit_settings"] = options.pop("settings")
        settings = resolve_settings(read_file=False, namespace=namespace,
                                    declared_namespace=namespace, **options)
        built = tuple(Stage(name, tuple(sorted(units, key=lambda u: u.order)))
                      for name, units in stages.items())
        _check_unique(built)
        return cls(settings, built).check()


def load_workflow(source: Settings | str | Path | None = None, **flags: Any) -> Workflow:
    """Load the units of a workflow's stages, importing their code unless the unit cache
    beside its file still holds it (:mod:`~flamingock_es.definition._speedups.unit_cache`).
    The modules the file names under ``templates:`` are imported first, every time.

    ``source`` is resolved settings, or the path of a ``flamingock.yaml`` (default: ./);
    ``flags`` (``namespace``, ``bus``, ...) win over the file. Errors name the file and line.
    """
    settings = source.but(**flags) if isinstance(source, Settings) else \
        resolve_settings(source, required=True, **flags)
    if not settings.stages:
        raise ConfigError(f"{settings.source}: missing 'stages': list the stages and where "
                          "their units are")
    base = str(settings.base.resolve())
    if base not in sys.path:  # units and python-call targets import modules beside the file
        sys.path.insert(0, base)
    import_modules(settings.templates, settings.base)  # before any unit names a template
    cache = UnitCache.beside(Path(settings.source), UNIT_MODULE_PREFIX) \
        if settings.source != "<code>" and settings.unit_cache else None
    stages = []
    with batched_gc():  # thousands of restored units: see gcbatch.py
        for stage in settings.stages:
            units = load_units(stage.units, settings.base, stage.where, cache)
            stages.append(Stage(stage.name, tuple(sorted(units, key=lambda u: u.order)),
                                stage.max_parallel))
    if cache is not None:
        cache.save()
        checked.save(Path(settings.source))
    _check_unique(stages)
    return Workflow(settings, tuple(stages)).check()


def _check_unique(stages: Sequence[Stage]) -> None:
    """Ids are unique in the workflow, and orders in a stage: two units with one order would
    run in whichever order the files happened to be read."""
    seen: dict[str, ChangeUnit] = {}
    for stage in stages:
        for unit in stage.units:
            first = seen.setdefault(unit.id, unit)
            if first is not unit:
                raise ConfigError(
                    f"{unit.source}: duplicate ChangeUnit id {unit.id!r}, already defined at "
                    f"{first.source}. Ids are unique per namespace; rename one of them."
                )
    for stage in stages:
        for before, unit in zip(stage.units, stage.units[1:], strict=False):
            if before.order == unit.order:
                raise ConfigError(
                    f"{unit.source}: unit {unit.id!r} has order {unit.order} in stage "
                    f"{stage.name!r}, as unit {before.id!r} at {before.source} has. Units of "
                    "a stage run in their order: give one of them another.")
