"""The template interface and registry."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import entry_points
from importlib.util import find_spec
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..changes import ChangeContext
from ..errors import MissingExtraError, TemplateError

__all__ = ["Template", "TemplateParams", "get_template", "register", "template_names"]


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
        model = self.Params if phase == "apply" else (self.RollbackParams or self.Params)
        try:
            return model.model_validate(dict(block))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(block)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise TemplateError(
                f"{where}: the {phase} block does not fit template {self.name!r}: {problems}"
            ) from exc

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
    "http-request": ("flamingock_es.templates.http_request", None),
    "python-call": ("flamingock_es.templates.python_call", None),
    "kafka-topic": ("flamingock_es.templates.kafka_topic", ("confluent_kafka", "kafka")),
    "couchbase-document": ("flamingock_es.templates.couchbase_document",
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
        for ep in entry_points(group="flamingock_es.templates"):
            if ep.name == name:
                register(ep.load())
    if name not in _REGISTRY:
        known = ", ".join(template_names())
        raise TemplateError(f"{where}: unknown template {name!r}; known templates: {known}")
    return _REGISTRY[name]()


def template_names() -> list[str]:
    """Every template name that can be used (built-in and registered)."""
    names = set(_REGISTRY) | set(_BUILTIN)
    names |= {ep.name for ep in entry_points(group="flamingock_es.templates")}
    return sorted(names)
