"""``when:`` conditions: a CEL expression that decides whether a unit runs in this run.

Why CEL: a condition is written in a change file and evaluated by the runner, so it must not
be code (no Python ``eval``), must always terminate, and should read the same to whoever
reviews the file. CEL (https://cel.dev) is small, side-effect free and non-Turing complete,
and its syntax is the one Kubernetes, Envoy and Google Cloud use for the same job.

The library is ``common-expression-language`` (module ``cel``, the Rust ``cel`` crate behind
PyO3): a condition compiles here in 40 to 170 us (this module's checks included) and
evaluates in 4 to 25 us, 6 to 20 times faster than the pure-Python ``cel-python`` at both,
and its parse errors carry a line, a column and a caret. It has no type checker and no AST to
walk: unknown variables are found from the names it reports (``Program.variables()``) less
those a comprehension binds, which a small tokenizer here finds; an unknown *function* is
only refused when evaluated. It is imported on first use, since importing it costs a few
tenths of a second (its package also loads its own command line) that a workflow without
``when:`` should not pay.

A condition sees four variables, and no others:

``env`` (string)
    The environment the run targets (``--env``), ``""`` when none is given.
``labels`` (list of strings)
    The run's labels.
``settings`` (map)
    The workflow's ``settings`` block, as written (strings, numbers, booleans, lists, maps).
``units`` (map of unit id to outcome string)
    Each unit's outcome as the run sees it when the condition is evaluated: see
    :class:`Outcome`. A condition is evaluated when its unit is about to start, so the units
    it ``requires`` have finished; any other unit may still be ``PENDING`` or ``RUNNING``.
    Require the units a condition looks at (``unit_refs`` lists the ones it names).

Compiling refuses, with the condition's ``file:line`` and the library's message: an
expression that does not parse, a variable that is not one of the four (``enviroment``), and
an expression whose value is fixed and not a boolean (``"prod"``, ``1 + 1``). Evaluating
refuses a result that is not a boolean (``settings.region`` where a test was meant) and an
expression that fails (a missing map key: guard it with ``has(settings.flag)`` or
``"x" in units``).
"""

from __future__ import annotations

import enum
import functools
import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import cel

__all__ = [
    "VARIABLES",
    "Condition",
    "ConditionError",
    "Outcome",
    "Variables",
]

VARIABLES = ("env", "labels", "settings", "units")
"""The names a condition may use, besides its own comprehension variables."""

_TYPE_NAMES = frozenset({"bool", "bytes", "double", "duration", "dyn", "int", "list", "map",
                         "null_type", "string", "timestamp", "type", "uint"})
"""CEL's type denotations: the library reports them as variables (``type(x) == int``)."""

_MACROS = frozenset({"all", "exists", "exists_one", "existsOne", "map", "filter", "bind",
                     "transformList", "transformMap", "transformMapEntry", "sortBy"})
"""Receiver-style macros whose first arguments name comprehension variables."""


class Outcome(enum.StrEnum):
    """What ``units[id]`` says about a unit, as the run sees it.

    ``PENDING``: not applied, and not tried in this run yet (also a unit never run, or one
    whose last attempt left nothing applied). ``RUNNING``: started in this run, not finished.
    ``APPLIED``: applied, in this run or an earlier one (marked applied by hand included).
    ``SKIPPED``: not run in this run: its condition was false, or a unit it requires was
    skipped or failed. ``FAILED``: its last attempt failed. ``ROLLED_BACK``: applied, then
    undone (by compensation, ``undo``, or marked rolled back by hand). ``ROLLBACK_FAILED``:
    an undo of it failed. ``IN_DOUBT``: started and never recorded an end (a crash); the run
    resolves that before it evaluates anything, so a condition seldom sees it.
    """

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    APPLIED = "APPLIED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    IN_DOUBT = "IN_DOUBT"

    @classmethod
    def from_status(cls, status: str | None) -> Outcome:
        """The outcome for a unit status of the audit log (``state.UnitStatus``, by value);
        ``None`` (no event yet) is ``PENDING``."""
        if status is None:
            return cls.PENDING
        try:
            return _FROM_STATUS[status]
        except KeyError:
            raise ValueError(f"no outcome for unit status {status!r}") from None


_FROM_STATUS = {
    "STARTED": Outcome.IN_DOUBT,
    "APPLIED": Outcome.APPLIED,
    "MANUAL_MARKED_AS_APPLIED": Outcome.APPLIED,
    "FAILED": Outcome.FAILED,
    "ROLLED_BACK": Outcome.ROLLED_BACK,
    "MANUAL_MARKED_AS_ROLLED_BACK": Outcome.ROLLED_BACK,
    "ROLLBACK_FAILED": Outcome.ROLLBACK_FAILED,
}
_OUTCOMES = frozenset(Outcome)


class ConditionError(ValueError):
    """A condition that cannot be used (at load) or could not be decided (at run time)."""

    def __init__(self, where: str, text: str, reason: str) -> None:
        self.where = where
        self.text = text
        self.reason = reason
        super().__init__(f"{where}: when: {text!r} {reason}")


@dataclass(frozen=True, slots=True)
class Variables:
    """What a condition is evaluated against (see the module's docstring for each)."""

    env: str = ""
    labels: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.env, str):
            raise TypeError(f"env must be a string, not {type(self.env).__name__}")
        if isinstance(self.labels, str) or not all(isinstance(x, str) for x in self.labels):
            raise TypeError(f"labels must be a list of strings, not {self.labels!r}")
        wrong = [(unit, outcome) for unit, outcome in self.units.items()
                 if outcome not in _OUTCOMES]
        if wrong:
            unit, outcome = wrong[0]
            raise ValueError(f"units[{unit!r}] is {outcome!r}, not one of "
                             f"{', '.join(Outcome)}")


# -- a CEL tokenizer: only to see which names comprehensions bind and which unit ids are named.
# The library has parsed the text before this runs, so the text is valid CEL.

_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''
                 |"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<punct>==|!=|<=|>=|&&|\|\||.)
""", re.VERBOSE)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str

    @property
    def literal(self) -> str | None:
        """A string literal's value, when it is a plain string without escapes."""
        if self.kind != "string":
            return None
        prefix = re.match(r"[rRbB]*", self.text)
        flags = prefix.group().lower() if prefix else ""
        if "b" in flags:
            return None
        body = self.text[len(flags):]
        quote = 3 if body[:3] in ('"""', "'''") else 1
        value = body[quote:-quote]
        if "r" not in flags and "\\" in value:
            return None
        return value


def _tokens(text: str) -> list[_Token]:
    return [_Token(match.lastgroup or "punct", match.group())
            for match in _TOKEN.finditer(text) if match.lastgroup != "space"]


def _bound(tokens: Sequence[_Token]) -> set[str]:
    """Names bound by comprehension macros: the ``x`` of ``list.exists(x, ...)`` (and the
    ``k, v`` of two-variable forms)."""
    bound: set[str] = set()
    for i in range(len(tokens) - 3):
        if (tokens[i].text == "." and tokens[i + 1].kind == "ident"
                and tokens[i + 1].text in _MACROS and tokens[i + 2].text == "("):
            j = i + 3
            while (j + 1 < len(tokens) and tokens[j].kind == "ident"
                   and tokens[j + 1].text == ","):
                bound.add(tokens[j].text)
                j += 2
    return bound


def _unit_refs(tokens: Sequence[_Token]) -> frozenset[str] | None:
    """The unit ids the condition names (``units["a"]``, ``units.a``, ``has(units.a)``), or
    None when it reaches ``units`` some other way (``units[name]``, ``"a" in units``,
    ``units.size()``) and so may look at any unit."""
    refs: set[str] = set()
    for i, token in enumerate(tokens):
        if token.kind != "ident" or token.text != "units" or (i and tokens[i - 1].text == "."):
            continue
        after = tokens[i + 1:i + 4]
        if (len(after) == 3 and after[0].text == "[" and after[2].text == "]"
                and after[1].literal is not None):
            refs.add(after[1].literal)
        elif (len(after) >= 2 and after[0].text == "." and after[1].kind == "ident"
              and (len(after) == 2 or after[2].text != "(")):
            refs.add(after[1].text)
        else:
            return None
    return frozenset(refs)


@functools.cache
def _cel() -> ModuleType:
    """The CEL library, imported on first use (see the module's docstring)."""
    return importlib.import_module("cel")


def _plain(value: Any) -> Any:
    """Mappings and sequences as the dicts and lists the library converts."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _describe(value: object) -> str:
    kinds = {bool: "a boolean", str: "a string", int: "a number", float: "a number",
             list: "a list", dict: "a map", bytes: "bytes", type(None): "null"}
    return f"{value!r} ({kinds.get(type(value), type(value).__name__)})"


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled ``when:``: compile once at load (:meth:`compile`), evaluate per run."""

    text: str
    where: str
    variables: frozenset[str]
    """Which of :data:`VARIABLES` it reads."""
    unit_refs: frozenset[str] | None
    """The unit ids it names, or None when it may look at any (see ``_unit_refs``)."""
    constant: bool | None
    """Its value when it reads no variable (``true``, ``1 > 2``), else None."""
    _program: cel.Program = field(repr=False, compare=False)

    @classmethod
    def compile(cls, text: str, where: str) -> Condition:
        """Parse and check ``text``; ``where`` (``file:line``) goes into every message."""
        if not isinstance(text, str) or not text.strip():
            raise ConditionError(where, str(text), "is empty: write a CEL expression that is "
                                                   "true or false, or leave out 'when:'")
        try:
            program = _cel().compile(text)
        except ValueError as error:
            raise ConditionError(where, text, f"does not parse as CEL: {error}") from None
        tokens = _tokens(text)
        names = set(program.variables()) - _TYPE_NAMES
        unknown = sorted(names - set(VARIABLES) - _bound(tokens))
        if unknown:
            import difflib  # only for this message: every run loads this module

            name = unknown[0]
            close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.4)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConditionError(where, text, f"names an unknown variable {name!r}{hint}; a "
                                              f"condition can use {', '.join(VARIABLES)}")
        used = frozenset(names & set(VARIABLES))
        constant: bool | None = None
        if not used:
            value = cls._run(program, {}, where, text)
            if not isinstance(value, bool):
                raise ConditionError(where, text, f"is always {_describe(value)}, not true or "
                                                  f"false")
            constant = value
        elif len(tokens) == 1 and tokens[0].text in ("env", "labels", "units", "settings"):
            kind = {"env": "a string", "labels": "a list", "units": "a map",
                    "settings": "a map"}[tokens[0].text]
            raise ConditionError(where, text, f"is {kind}, not true or false; compare it, "
                                              f"e.g. env == \"prod\"")
        refs = _unit_refs(tokens) if "units" in used else frozenset()
        return cls(text, where, used, refs, constant, program)

    @property
    def false_reason(self) -> str:
        """Why a unit it keeps from running was skipped, as ``ChangeSkipped`` records it."""
        return f"when: {self.text} is false"

    def evaluate(self, variables: Variables | Mapping[str, Any]) -> bool:
        """Whether the unit runs, given this run's ``variables`` (a :class:`Variables`, or a
        mapping with its fields)."""
        if self.constant is not None:
            return self.constant
        if not isinstance(variables, Variables):
            variables = Variables(**variables)
        context: dict[str, Any] = {}
        if "env" in self.variables:
            context["env"] = variables.env
        if "labels" in self.variables:
            context["labels"] = list(variables.labels)
        if "settings" in self.variables:
            context["settings"] = _plain(variables.settings)
        if "units" in self.variables:
            # Only the units it names, when it names them all: converting a map for the
            # library costs ~10 us an entry, and a workflow may have thousands.
            units = variables.units
            if self.unit_refs is None:
                context["units"] = dict(units)
            else:
                context["units"] = {u: units[u] for u in self.unit_refs if u in units}
        value = self._run(self._program, context, self.where, self.text)
        if not isinstance(value, bool):
            raise ConditionError(self.where, self.text,
                                 f"gave {_describe(value)}, not true or false")
        return value

    @staticmethod
    def _run(program: cel.Program, context: dict[str, Any], where: str, text: str) -> object:
        try:
            return program.execute(context)
        except KeyError as error:
            # The library's message for a missing key is the key alone.
            key = error.args[0] if error.args else "?"
            raise ConditionError(where, text, f"could not be evaluated: no key {key!r}; guard "
                                              f"it with has(...) or 'in'") from None
        except Exception as error:
            # Anything else the interpreter raises (an undefined function, no matching
            # overload, division by zero, overflow) is this condition's fault, never ours:
            # CEL runs no code but the library's.
            raise ConditionError(where, text, f"could not be evaluated: {error}") from None
