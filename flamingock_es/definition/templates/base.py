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
from ..template_registry import ENTRY_POINTS, find, register, registered

__all__ = ["Problem", "Template", "TemplateParams", "get_template", "register",
           "template_names", "variable_values"]


@dataclass(frozen=True)
class Problem:
    """One way a block does not fit a template: where in the block, what kind, and why."""

    loc: tuple[str | int, ...]
    kind: str
    """pydantic's error type: ``extra_forbidden`` for an unknown key, ``missing``, ..."""
    message: str

    @classmethod
    def of(cls, error: Any, block: Mapping[str, Any]) -> Problem:
        """pydantic's ``error`` about ``block``, where in the block it is."""
        return cls(_place(tuple(error["loc"]), block), str(error["type"]), str(error["msg"]))

    def under(self, places: set[tuple[str | int, ...]]) -> bool:
        """True if the problem is in one of ``places`` (or a member of a union there)."""
        return any(self.loc[:n] in places for n in range(1, len(self.loc) + 1))


def _place(loc: tuple[str | int, ...], block: Mapping[str, Any]) -> tuple[str | int, ...]:
    """The keys and indexes of ``loc`` that are in ``block`` (pydantic's ``loc`` also names
    the members of a union it tried), and a key missing or unknown at the end."""
    node: Any = block
    place: list[str | int] = []
    for at, part in enumerate(loc):
        inside = part in node if isinstance(node, Mapping) else (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))
        if inside:
            node = node[part]
        elif not (isinstance(node, Mapping) and at == len(loc) - 1):
            continue
        place.append(part)
    return tuple(place)


def variable_values(block: Any, loc: tuple[str | int, ...] = ()) -> set[tuple[str | int, ...]]:
    """Where ``block`` (as written) has a value that a ``${VAR}`` gives: text, by nature."""
    if isinstance(block, Mapping):
        return set().union(*(variable_values(v, (*loc, k)) for k, v in block.items()))
    if isinstance(block, list):
        return set().union(*(variable_values(v, (*loc, i)) for i, v in enumerate(block)))
    return {loc} if isinstance(block, str) and "${" in block else set()


class TemplateParams(BaseModel):
    """Base of a template's parameter models: unknown keys are mistakes, not extensions, and
    a value is taken as written (``timeout: "10"`` is text, ``partitions: true`` is not 1).
    Only a value that a ``${VAR}`` gave is text by nature, and converted (see
    :meth:`Template.validate`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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

    def validate(self, block: Mapping[str, Any], phase: str, where: str,
                 written: Mapping[str, Any] | None = None) -> TemplateParams:
        """Check ``block`` against the phase's parameter model; errors name ``where``.

        ``written`` is the block as the unit file has it, before ``${VAR}`` were resolved:
        a value that came from a variable is text, and may be converted to its field's type
        (``timeout: "${LIMIT}"`` with ``LIMIT=10``); every other value is taken strictly."""
        params, problems = self._check(block, phase, written)
        if params is None:
            raise self.misfit(where, phase, problems)
        return params

    def problems(self, block: Mapping[str, Any], phase: str,
                 written: Mapping[str, Any] | None = None) -> list[Problem]:
        """What in ``block`` does not fit the phase's parameter model (nothing raised)."""
        return self._check(block, phase, written)[1]

    def _check(self, block: Mapping[str, Any], phase: str, written: Mapping[str, Any] | None
               ) -> tuple[TemplateParams | None, list[Problem]]:
        model = self._model(phase)
        try:
            return model.model_validate(dict(block)), []
        except ValidationError as exc:
            problems = [Problem.of(err, block) for err in exc.errors()]
        from_variables = variable_values(written or {})
        if not from_variables or not all(p.under(from_variables) for p in problems):
            return None, problems
        try:  # only values that variables gave were refused: convert those
            return model.model_validate(dict(block), strict=False), []
        except ValidationError as exc:
            return None, [Problem.of(err, block) for err in exc.errors()]

    def check(self, params: TemplateParams, where: str) -> None:
        """What can be known about ``params`` before the run takes the lock, beyond their
        shape (a function that can be found, say); raises ``TemplateError``. Nothing by
        default."""

    def misfit(self, where: str, phase: str, problems: list[Problem]) -> TemplateError:
        """The error for ``problems`` in the ``phase`` block at ``where``."""
        said: dict[tuple[str | int, ...], list[str]] = {}
        for problem in problems:  # the members of a union each refused it: one sentence
            messages = said.setdefault(problem.loc, [])
            messages.append(problem.message.removeprefix("Input should be ")
                            if messages else problem.message)
        text = "; ".join(f"{'.'.join(map(str, loc)) or '(block)'}: {' or '.join(messages)}"
                         for loc, messages in said.items())
        return TemplateError(f"{where}: the {phase} block does not fit template "
                             f"{self.name!r}: {text}")

    def _model(self, phase: str) -> type[TemplateParams]:
        return self.RollbackParams or self.Params if phase == "rollback" else self.Params

    def apply(self, params: Any, ctx: ChangeContext) -> None:
        raise NotImplementedError

    def rollback(self, params: Any, ctx: ChangeContext) -> None:
        raise NotImplementedError

    def precondition(self, params: Any, ctx: ChangeContext) -> bool:
        """A read-only check of the unit's ``precondition:`` block (validated by ``Params``):
        True when it holds. Templates that can check something implement it."""
        raise NotImplementedError

    @property
    def has_rollback(self) -> bool:
        return type(self).rollback is not Template.rollback

    @property
    def has_precondition(self) -> bool:
        return type(self).precondition is not Template.precondition


_BUILTIN: dict[str, tuple[str, tuple[str, str] | None]] = {
    # name: (module, (the driver it needs, the extra that installs it))
    "http-request": ("flamingock_es.definition.templates.http_request", None),
    "python-call": ("flamingock_es.definition.templates.python_call", None),
    "kafka-topic": ("flamingock_es.definition.templates.kafka_topic", ("confluent_kafka", "kafka")),
    "couchbase-document": ("flamingock_es.definition.templates.couchbase_document",
                           ("couchbase", "couchbase")),
}


def get_template(name: str, where: str = "") -> Template:
    """The template called ``name``: built-ins are imported on first use; custom ones are
    registered by a module the workflow file lists under ``templates:`` or by an installed
    package's ``flamingock_es.templates`` entry point."""
    if find(name) is None and name in _BUILTIN:
        module, needs = _BUILTIN[name]
        if needs is not None and find_spec(needs[0]) is None:
            raise MissingExtraError(f"{where}: template {name!r}", needs[1], needs[0])
        import_module(module)
    if find(name) is None:
        for ep in entry_points(group=ENTRY_POINTS):
            if ep.name == name:
                register(ep.load())
    found = find(name)
    if found is None:
        known = ", ".join(template_names())
        raise TemplateError(
            f"{where}: unknown template {name!r}; known templates: {known}. A custom template "
            "is registered by a module named under `templates:` in the workflow file, or by "
            f"an installed package's {ENTRY_POINTS!r} entry point (see docs/templates.md).")
    template: Template = found()
    return template


def template_names() -> list[str]:
    """Every template name that can be used (built-in and registered)."""
    names = set(registered()) | set(_BUILTIN)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINTS)}
    return sorted(names)
