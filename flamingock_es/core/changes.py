"""ChangeUnits: what a change is, however it was written (Python or a template).

A unit's identity is ``(namespace, id)`` alone. Everything else that defines it (order,
author, description, parameters, its code or template) goes into its checksum, so a changed
author is drift to be accepted, never a new unit that runs twice. What only says *when* it
runs (``requires``, ``when``, its precondition and ``on_fail``) is not: changing those
changes no applied unit.
"""

from __future__ import annotations

import ast
import enum
import hashlib
import json
import logging
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import cache, cached_property
from types import CodeType
from typing import Any, TypeVar

from .fencing import FencingToken
from .ports import Lease
from .secrets import redact

__all__ = [
    "ChangeContext",
    "ChangeUnit",
    "Recovery",
    "change_unit",
    "checksum_of",
    "redact",
    "resolve",
    "source_files",
]

Step = Callable[["ChangeContext"], None]
Precondition = Callable[["ChangeContext"], object]
"""A read-only check before a unit's apply: it holds when it returns a true value."""
_T = TypeVar("_T")
ON_FAIL = ("halt", "skip", "mark-applied")
"""What a precondition that does not hold does (Liquibase's HALT, CONTINUE, MARK_RAN): stop
the run as a failure, skip the unit for this run, or count it as applied without running."""


class Recovery(enum.StrEnum):
    """What to do with a unit that failed or was left in doubt by a crash."""

    MANUAL_INTERVENTION = "manual-intervention"
    ALWAYS_RETRY = "always-retry"


@dataclass
class ChangeContext:
    """What a unit's ``apply`` and ``rollback`` receive.

    Besides the parameters, it carries what fences a step at its target
    (:mod:`flamingock_es.core.fencing`): ask :meth:`holds_lock` (or :meth:`check_lock`)
    right before each side effect of a long step, pass :attr:`fencing` to a target that can
    refuse an older holder, and :attr:`idempotency_key` to one that remembers requests.
    """

    namespace: str
    run_id: str
    unit_id: str
    params: Mapping[str, Any]
    """The unit's parameters with ``${VAR}`` resolved from the environment."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The workflow's ``settings`` block (service addresses and the like)."""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("flamingock_es.unit"))
    idempotency_key: str = ""
    """The same for every attempt of this application of the unit's step (a retry after a
    crash included), different for the next application (after an undo)."""
    fencing: FencingToken | None = None
    """The lock's generation, run and unit: a target that keeps the highest generation it
    saw refuses a write from a holder that lost the lock."""
    lease: Lease | None = field(default=None, repr=False, compare=False)
    """The lock this step runs under (``None`` outside a run, in tests)."""

    def holds_lock(self) -> bool:
        """True while this run still holds the namespace's lock: ask before a side effect."""
        return self.lease is None or not self.lease.lost

    def check_lock(self) -> None:
        """Raise :class:`~flamingock_es.errors.LockLostError` if the lock is gone: call it
        right before each side effect, so a holder that lost the lock starts none."""
        if self.lease is not None:
            self.lease.check()


@dataclass(frozen=True)
class ChangeUnit:
    """One change: an id, its place, its steps, and how to recover from a failure."""

    id: str
    order: int
    author: str
    apply: Step
    rollback: Step | None = None
    description: str = ""
    run_always: bool = False
    recovery: Recovery = Recovery.MANUAL_INTERVENTION
    parameters: Mapping[str, Any] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    template: str | None = None
    accept_drift: bool = False
    source: str = "<code>"
    """Where it was defined, ``file:line``, for messages."""
    body: str = ""
    """The definition its checksum covers besides the fields: code or template blocks."""
    check: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)
    """Checks the resolved parameters before a run takes the lock (templates' models);
    raises ``ConfigError``."""
    requires: tuple[str, ...] = ()
    """The ids of the units that must be applied before it (any earlier stage, or its own)."""
    when: str | None = None
    """A CEL condition (:mod:`flamingock_es.definition.conditions`): false, it is skipped."""
    precondition: Precondition | None = field(default=None, compare=False)
    on_fail: str = "halt"
    """What a precondition that does not hold does: one of :data:`ON_FAIL`."""

    @cached_property
    def checksum(self) -> str:
        """Computed once per unit: the planner and the runner ask for it several times."""
        return checksum_of(self)

    @classmethod
    def restored(cls, checksum: str, fields: dict[str, Any]) -> ChangeUnit:
        """A unit rebuilt from the unit cache, without its code (``body``): its checksum is
        the one computed when its file was last imported, which the cache keys on every file
        that checksum read (the unit cache, :mod:`~flamingock_es.definition._speedups.unit_cache`).
        ``fields`` is used up."""
        if not fields.keys() >= _REQUIRED:
            raise TypeError(f"restored() missing {', '.join(sorted(_REQUIRED - fields.keys()))}")
        unit = object.__new__(cls)
        # What the generated __init__ does (object.__setattr__ for each field, no
        # __post_init__), at a fraction of its cost: a start-up restores 10,000 units.
        values = unit.__dict__
        values.update(_DEFAULTS)
        for name, make in _FACTORIES.items():
            if name not in fields:
                values[name] = make()
        values.update(fields)
        values["checksum"] = checksum  # where cached_property keeps what it computed
        return unit

    def audit_parameters(self) -> str:
        """The parameters as written to the audit log: unresolved, secrets redacted."""
        return json.dumps(redact(self.parameters, self.secrets), sort_keys=True, default=str)


_DEFAULTS = {f.name: f.default for f in fields(ChangeUnit) if f.default is not MISSING}
_FACTORIES = {f.name: f.default_factory for f in fields(ChangeUnit)
              if f.default_factory is not MISSING}
_REQUIRED = frozenset(f.name for f in fields(ChangeUnit)) - _DEFAULTS.keys() - _FACTORIES.keys()


def checksum_of(unit: ChangeUnit) -> str:
    """SHA-256 over the unit's definition: fields, unresolved parameters, code or blocks."""
    definition = {
        "id": unit.id,
        "order": unit.order,
        "author": unit.author,
        "description": unit.description,
        "run_always": unit.run_always,
        "recovery": unit.recovery.value,
        "template": unit.template,
        # a template unit's precondition block says when it runs, not what it changes
        "parameters": {k: v for k, v in unit.parameters.items() if k != "precondition"}
        if unit.template is not None else unit.parameters,
        "body": unit.body,
    }
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_VAR = re.compile(r"\$\{((?:tenant\.)?[A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""``${VAR}``, ``${VAR:-default}``, and a tenant's ``${tenant.id}`` / ``${tenant.<key>}``."""


def resolve(value: _T, env: Mapping[str, str]) -> _T:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string inside ``value``."""
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise KeyError(name)

        return _VAR.sub(sub, value)  # type: ignore[return-value]
    if isinstance(value, Mapping):
        return {k: resolve(v, env) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [resolve(v, env) for v in value]  # type: ignore[return-value]
    return value


# Python units -----------------------------------------------------------------------------


def change_unit(
    *,
    id: str,
    order: int,
    author: str,
    description: str = "",
    rollback: Step | None = None,
    run_always: bool = False,
    recovery: Recovery | str = Recovery.MANUAL_INTERVENTION,
    parameters: Mapping[str, Any] | None = None,
    secrets: tuple[str, ...] | list[str] = (),
    accept_drift: bool = False,
    requires: tuple[str, ...] | list[str] = (),
    when: str | None = None,
    precondition: Precondition | None = None,
    on_fail: str = "halt",
) -> Callable[[Step | type], ChangeUnit]:
    """Declare a ChangeUnit in Python, on a function (its ``apply``) or on a class.

    A function names its compensation with ``rollback=``; a class defines
    ``apply(self, ctx)`` and, optionally, ``rollback(self, ctx)``::

        def drop_status_field(ctx): ...

        @change_unit(id="add-status-field", order=1, author="ana", rollback=drop_status_field)
        def add_status_field(ctx): ...

    ``requires`` names the units that must be applied first; ``when`` is a CEL condition
    (``env == "prod"``); ``precondition`` a read-only check (``ctx -> bool``) run before the
    apply, and ``on_fail`` what happens when it does not hold (``halt``, ``skip`` or
    ``mark-applied``). Every argument is checked for what it is, strictly (``order="13"`` and
    ``run_always="nope"`` are refused, not read as 13 and true): an error names the file and
    line of the decorator.
    """
    caller = sys._getframe(1)
    from .unit_fields import check_arguments  # pydantic: only when a unit file is imported

    check_arguments(f"{caller.f_code.co_filename}:{caller.f_lineno}", {
        "id": id, "order": order, "author": author, "description": description,
        "rollback": rollback, "run_always": run_always, "recovery": recovery,
        "parameters": parameters, "secrets": secrets, "accept_drift": accept_drift,
        "requires": requires, "when": when, "precondition": precondition, "on_fail": on_fail})

    def decorate(target: Step | type) -> ChangeUnit:
        if isinstance(target, type):
            instance = target()
            apply_step: Step = instance.apply
            rollback_step: Step | None = getattr(instance, "rollback", None)
            code = instance.apply.__func__.__code__
            body = _definition_source(code.co_filename, _class_line(target, code))
        else:
            apply_step, rollback_step, code = target, rollback, target.__code__
            body = _function_source(code) + _step_source(rollback)
        return ChangeUnit(
            id=id,
            order=order,
            author=author,
            apply=apply_step,
            rollback=rollback_step,
            description=description,
            run_always=run_always,
            recovery=Recovery(recovery),
            parameters=dict(parameters or {}),
            secrets=frozenset(secrets),
            accept_drift=accept_drift,
            source=f"{code.co_filename}:{code.co_firstlineno}",
            body=body,
            requires=tuple(requires),
            when=when,
            precondition=precondition if precondition is not None else
            getattr(target, "precondition", None) if isinstance(target, type) else None,
            on_fail=on_fail,
        )

    return decorate


def source_files(unit: ChangeUnit) -> set[str]:
    """The files whose text a Python unit's checksum covers: where its ``apply`` and
    ``rollback`` (or its class) are written. Empty for a template's unit (no code)."""
    if unit.template is not None:
        return set()
    files = set()
    for step in (unit.apply, unit.rollback):
        code = getattr(step, "__code__", None) or getattr(getattr(step, "__func__", None),
                                                          "__code__", None)
        if isinstance(code, CodeType):
            files.add(code.co_filename)
    return files


def _class_line(cls: type, method_code: Any) -> int:
    """The first line of ``cls``'s definition (decorators included), found by its span."""
    spans = _spans(method_code.co_filename)
    best = 0
    for first, last in spans.items():
        if first <= method_code.co_firstlineno <= last and first > best:
            lines = _lines(method_code.co_filename)
            text = "".join(lines[first - 1 : last])
            if f"class {cls.__name__}" in text and first < method_code.co_firstlineno:
                best = first
    return best or method_code.co_firstlineno


def _step_source(step: Step | None) -> str:
    code = getattr(step, "__code__", None)
    return "" if code is None else _function_source(code)


def _function_source(code: CodeType) -> str:
    """The normalized source of a function (decorators included), from its code object.

    The code object knows its first line (the first decorator's) and the lines of every
    instruction, so no parse of the file is needed: a file of hundreds of units loads fast.
    """
    lines = _lines(code.co_filename)
    if not lines:
        return f"{code.co_filename}:{code.co_firstlineno}"
    return _normalized(lines[code.co_firstlineno - 1 : _last_line(code)])


def _last_line(code: CodeType) -> int:
    last = code.co_firstlineno
    for _, end, _, _ in code.co_positions():
        if end is not None and end > last:
            last = end
    for const in code.co_consts:  # nested functions and lambdas keep their own lines
        if isinstance(const, CodeType):
            last = max(last, _last_line(const))
    return last


def _normalized(lines: list[str]) -> str:
    text = textwrap.dedent("".join(lines))
    return "\n".join(row.rstrip() for row in text.splitlines())


def _definition_source(filename: str, line: int) -> str:
    """The normalized source of the class starting at ``line`` (decorators included)."""
    spans = _spans(filename)
    lines = _lines(filename)
    end = spans.get(line)
    if end is None or not lines:
        return f"{filename}:{line}"
    return _normalized(lines[line - 1 : end])


@cache
def _lines(filename: str) -> list[str]:
    try:
        with open(filename, encoding="utf-8") as f:
            return f.readlines()
    except OSError:
        return []


@cache
def _spans(filename: str) -> dict[int, int]:
    """First line (decorator or def) -> last line, for every def and class in the file."""
    source = "".join(_lines(filename))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    spans: dict[int, int] = {}
    # defs and classes are statements: walk statement bodies only, never into expressions
    # (ast.walk also visits every expression node: most of the time on a file of many units).
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            end = node.end_lineno or node.lineno
            spans[first] = end
            spans[node.lineno] = end
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            stack.extend(getattr(node, name, ()))
    return spans
