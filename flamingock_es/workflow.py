"""Workflows: ordered stages of ChangeUnits, from code or from a ``flamingock.yaml``.

```yaml
namespace: shop
bus: local:.flamingock          # or kafka://127.0.0.1:19092
store: sqlite:.flamingock/projections.db
settings: {flags_url: http://127.0.0.1:8765}   # handed to every unit as ctx.settings
stages:
  - name: data
    units: [changes/data]      # folders, .py/.yaml/.json files, or dotted Python packages
  - name: integrations
    units: [changes/integrations]
```
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import DEFAULT_BUS
from .changes import ChangeUnit
from .errors import ConfigError
from .yamlfile import Located, load_document

__all__ = ["CompensationScope", "Stage", "Workflow", "load_settings", "load_workflow"]

CONFIG_FILE = "flamingock.yaml"


class CompensationScope(enum.StrEnum):
    """What a failed run compensates: the failed unit only, or everything it applied."""

    RUN = "run"
    FAILED_UNIT = "failed-unit"


@dataclass(frozen=True)
class Stage:
    """Units that run one after another, in ``order``."""

    name: str
    units: tuple[ChangeUnit, ...]


@dataclass(frozen=True)
class Workflow:
    """Everything a run needs to know, whether built in code or read from a file."""

    namespace: str
    stages: tuple[Stage, ...]
    name: str = ""
    bus: str = DEFAULT_BUS
    bus_options: Mapping[str, str] = field(default_factory=dict)
    store: str = "sqlite:.flamingock/projections.db"
    settings: Mapping[str, Any] = field(default_factory=dict)
    compensate: CompensationScope = CompensationScope.RUN
    lock_timeout: float = 60.0
    source: str = "<code>"

    def units(self) -> Iterator[tuple[Stage, ChangeUnit]]:
        """Every unit, in execution order."""
        for stage in self.stages:
            for unit in stage.units:
                yield stage, unit

    def unit(self, unit_id: str) -> ChangeUnit | None:
        return next((u for _, u in self.units() if u.id == unit_id), None)

    @classmethod
    def of(cls, namespace: str, stages: Mapping[str, Sequence[ChangeUnit]],
           **options: Any) -> Workflow:
        """Build a workflow in code: ``Workflow.of("shop", {"data": [unit_a, unit_b]})``."""
        built = tuple(Stage(name, tuple(sorted(units, key=lambda u: u.order)))
                      for name, units in stages.items())
        _check_unique(built)
        return cls(namespace=namespace, stages=built, name=options.pop("name", namespace),
                   **options)


def load_workflow(path: str | Path | None = None, **overrides: Any) -> Workflow:
    """Read a ``flamingock.yaml`` and load the units of its stages.

    ``overrides`` (``namespace``, ``bus``, ``store``, ...) win over the file: the CLI's
    ``--bus`` and friends. Errors name the file and the line.
    """
    from .loader import load_units  # the loader imports user code: only when needed

    config_path = Path(path or CONFIG_FILE)
    if config_path.is_dir():
        config_path = config_path / CONFIG_FILE
    if not config_path.exists():
        raise ConfigError(
            f"{config_path}: no workflow file here. Run `flamingock-es init` to create one, "
            "or pass --config PATH."
        )
    doc = load_document(config_path)
    if not isinstance(doc, Located):
        raise ConfigError(f"{config_path}:1: expected a mapping with namespace and stages")
    known = {"namespace", "name", "bus", "bus_options", "store", "settings", "stages",
             "compensate", "lock_timeout"}
    for key in doc:
        if key not in known:
            raise ConfigError(f"{doc.where(key)}: unknown key {key!r}; "
                              f"expected one of {', '.join(sorted(known))}")
    for key in ("namespace", "stages"):
        if key not in doc:
            raise ConfigError(f"{doc.where()}: missing {key!r}")
    base = config_path.parent
    stages = []
    for raw in doc["stages"]:
        if not isinstance(raw, Located) or "name" not in raw or "units" not in raw:
            where = raw.where() if isinstance(raw, Located) else doc.where("stages")
            raise ConfigError(f"{where}: a stage needs a name and a list of units sources")
        units = load_units(raw["units"], base, raw.where("units"))
        stages.append(Stage(str(raw["name"]), tuple(sorted(units, key=lambda u: u.order))))
    options = {k: doc[k] for k in known - {"stages"} if k in doc}
    for key in ("bus", "store"):  # local paths in the file are relative to the file
        if key in options:
            options[key] = _anchor(str(options[key]), base)
    options.update({k: v for k, v in overrides.items() if v is not None})
    try:
        compensate = CompensationScope(options.pop("compensate", CompensationScope.RUN))
    except ValueError as exc:
        raise ConfigError(f"{doc.where('compensate')}: compensate is 'run' or "
                          "'failed-unit'") from exc
    workflow = Workflow(
        namespace=str(options.pop("namespace")),
        name=str(options.pop("name", doc["namespace"])),
        stages=tuple(stages),
        bus_options={k: str(v) for k, v in dict(options.pop("bus_options", {})).items()},
        settings=dict(options.pop("settings", {})),
        compensate=compensate,
        lock_timeout=float(options.pop("lock_timeout", 60.0)),
        source=str(config_path),
        **options,
    )
    _check_unique(workflow.stages)
    return workflow


def load_settings(path: str | Path | None = None) -> dict[str, Any]:
    """The top-level settings of a ``flamingock.yaml`` (bus, namespace, store, ...), without
    loading any unit; ``{}`` when there is no such file. For commands that only read."""
    config_path = Path(path or CONFIG_FILE)
    if config_path.is_dir():
        config_path = config_path / CONFIG_FILE
    if not config_path.exists():
        return {}
    doc = load_document(config_path)
    if not isinstance(doc, Located):
        raise ConfigError(f"{config_path}:1: expected a mapping with namespace and stages")
    settings = {k: v for k, v in doc.items() if k != "stages"}
    for key in ("bus", "store"):
        if key in settings:
            settings[key] = _anchor(str(settings[key]), config_path.parent)
    return settings


def _anchor(url: str, base: Path) -> str:
    scheme, sep, rest = url.partition(":")
    if sep and scheme in ("local", "file", "sqlite") and rest and not Path(rest).is_absolute():
        return f"{scheme}:{base / rest}"
    return url


def _check_unique(stages: Sequence[Stage]) -> None:
    seen: dict[str, ChangeUnit] = {}
    for stage in stages:
        for unit in stage.units:
            first = seen.setdefault(unit.id, unit)
            if first is not unit:
                raise ConfigError(
                    f"{unit.source}: duplicate ChangeUnit id {unit.id!r}, already defined at "
                    f"{first.source}. Ids are unique per namespace; rename one of them."
                )
