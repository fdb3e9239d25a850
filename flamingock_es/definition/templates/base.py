"""The template interface and registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from importlib.util import find_spec
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ...core.changes import ChangeContext
from ...errors import MissingExtraError, TemplateError

__all__ = ["Problem", "Template", "TemplateParams", "get_template", "register",
           "template_names"]


@dataclass(frozen=True)
class Problem:
    """One way a block does not fit a template: where in the block, what kind, and why."""

    loc: tuple[str | int, ...]
    kind: str
    """pydantic's error type: ``extra_forbidden`` for an unknown key, ``missing``, ..."""
    message: str

    @classmethod
    def of(cls, error: Any) -> Problem:
        return cls(tuple(error["loc"]), str(error["type"]), str(error["msg"]))


class TemplateParams(BaseModel):
    """Base of a template's parameter models: unknown keys are mistakes, not extensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Template:
    """A reusable step. Subclasses set ``name`` and ``Params`` and implement ``apply``.

    ``rollback`` receives the unit's ``rollback:`` block, validated by ``RollbackParams``
    (``Params`` unless overridden); a template whose rollback needs no block can still
    compensate from the ``apply`` block, which ``ctx.params`` keeps under ``"apply"``.
    """

    name: ClassVar[str]
    Params: ClassVar[type[TemplateParams]]
    RollbackParams: ClassVar[type[TemplateParams] | None] = None
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    """Parameter names whose values are redacted in the audit log and outputs."""

    def validate(self, block: Mapping[str, Any], phase: str, where: str) -> TemplateParams:
        """Check ``block`` against the phase's parameter model; errors name ``where``."""
        try:
            return self._model(phase).model_validate(dict(block))
        except ValidationError as exc:
            raise self.misfit(where, phase, [Problem.of(err) for err in exc.errors()]) from exc

    def problems(self, block: Mapping[str, Any], phase: str) -> list[Problem]:
        """What in ``block`` does not fit the phase's parameter model (nothing raised)."""
        try:
            self._model(phase).model_validate(dict(block))
        except ValidationError as exc:
            return [Problem.of(err) for err in exc.errors()]
        return []

    def misfit(self, where: str, phase: str, problems: list[Problem]) -> TemplateError:
        """The error for ``problems`` in the ``phase`` block at ``where``."""
        text = "; ".join(f"{'.'.join(map(str, p.loc)) or '(block)'}: {p.message}"
                         for p in problems)
        return TemplateError(f"{where}: the {phase} block does not fit template "
                             f"{self.name!r}: {text}")

    def _model(self, phase: str) -> type[TemplateParams]:
        return self.Params if phase == "apply" else (self.RollbackParams or self.Params)

    def apply(self, params: Any, ctx: ChangeContext) -> None:
        raise NotImplementedError

    def rollback(self, params: Any, ctx: ChangeContext) -> None:
        raise NotImplementedError

    @property
    def has_rollback(self) -> bool:
        return type(self).rollback is not Template.rollback


_REGISTRY: dict[str, type[Template]] = {}
_BUILTIN: dict[str, tuple[str, tuple[str, str] | None]] = {
    # name: (module, (the driver it needs, the extra that installs it))
    "http-request": ("flamingock_es.definition.templates.http_request", None),
    "python-call": ("flamingock_es.definition.templates.python_call", None),
    "kafka-topic": ("flamingock_es.definition.templates.kafka_topic", ("confluent_kafka", "kafka")),
    "couchbase-document": ("flamingock_es.definition.templates.couchbase_document",
                           ("couchbase", "couchbase")),
}


def register(cls: type[Template]) -> type[Template]:
    """Make ``cls`` available under ``cls.name``. Usable as a class decorator."""
    _REGISTRY[cls.name] = cls
    return cls


def get_template(name: str, where: str = "") -> Template:
    """The template called ``name``; built-ins are imported on first use."""
    if name not in _REGISTRY and name in _BUILTIN:
        module, needs = _BUILTIN[name]
        if needs is not None and find_spec(needs[0]) is None:
            raise MissingExtraError(f"{where}: template {name!r}", needs[1], needs[0])
        import_module(module)
    if name not in _REGISTRY:
        for ep in entry_points(group="flamingock_es.definition.templates"):
            if ep.name == name:
                register(ep.load())
    if name not in _REGISTRY:
        known = ", ".join(template_names())
        raise TemplateError(f"{where}: unknown template {name!r}; known templates: {known}")
    return _REGISTRY[name]()


def template_names() -> list[str]:
    """Every template name that can be used (built-in and registered)."""
    names = set(_REGISTRY) | set(_BUILTIN)
    names |= {ep.name for ep in entry_points(group="flamingock_es.definition.templates")}
    return sorted(names)
