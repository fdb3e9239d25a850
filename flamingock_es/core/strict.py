"""What users write, validated strictly: the base of every model of their input, and how a
problem pydantic found is said.

Strict means nothing is coerced: ``accept_drift: "false"`` is text, not a boolean, and
``order: "13"`` is text, not an integer. A lax validator would accept both and mean
something else than the person wrote (``bool("false")`` is ``True``). Values that are text by
nature (environment variables, ``${VAR}`` resolved in a block) are converted where they are
read, never here.

pydantic is imported only by the code that validates (a unit file being imported, a
workflow file not checked before), so that a start-up with nothing new imports none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel", "problem_text", "shown"]

_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "a boolean (true or false)", "bool_parsing": "a boolean (true or false)",
    "string_type": "text", "dict_type": "a mapping", "list_type": "a list",
    "tuple_type": "a list", "callable_type": "a function", "none_required": "empty",
    "model_type": "a mapping", "model_attributes_type": "a mapping",
}
"""pydantic's error types, as what the value should have been."""
_LITERALS: dict[str, Callable[[str], object]] = {
    "int_type": int, "float_type": float,
    "bool_type": lambda text: {"true": True, "false": False}[text.lower()]}
"""How text that should have been written unquoted reads (``"13"``, ``"false"``)."""


class StrictModel(BaseModel):
    """Base of the models of what users write: no coercion, and an unknown key is a
    mistake (a typo, usually), never an extension."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def problem_text(error: Mapping[str, Any], noun: str = "key", *, path: Sequence[str] = (),
                 known: Sequence[str] = (), secret: bool = False) -> str:
    """One of pydantic's ``errors()`` as a sentence that says what to write instead.

    ``path`` is where the value is (``stages.0.units``), ``known`` the keys of the mapping
    it is in (for an unknown one), and ``secret`` leaves the value out of the message.
    """
    kind = str(error["type"])
    value = error.get("input")
    dotted = ".".join(path)
    if kind == "extra_forbidden":
        expected = f"; expected one of {', '.join(sorted(known))}" if known else ""
        return f"unknown {noun} {path[-1] if path else '?'!r}{expected}"
    if kind == "missing":
        return f"missing required {noun} {path[-1]!r}: add it" if path else \
            f"missing required {noun}"
    subject = dotted or "the value"
    if kind == "literal_error":
        expected = str((error.get("ctx") or {}).get("expected", "one of the allowed values"))
        return f"{subject} is {expected}, not {shown(value, secret)}"
    if kind in _EXPECTED:
        hint = "; write it without quotes" if _unquoted(kind, value) else ""
        return f"{subject} must be {_EXPECTED[kind]}, not {shown(value, secret)}{hint}"
    if kind == "string_too_short" and value == "":
        return f"{subject} may not be empty"
    return f"{subject}: {error['msg']} (it is {shown(value, secret)})"


def _unquoted(kind: str, value: Any) -> bool:
    """``value`` is text that reads as what ``kind`` wanted: it was quoted by mistake."""
    parse = _LITERALS.get(kind)
    if parse is None or not isinstance(value, str):
        return False
    try:
        parse(value.strip())
    except (ValueError, KeyError):
        return False
    return True


def shown(value: Any, secret: bool = False) -> str:
    """A value as a message shows it: short scalars as written, the rest by their kind."""
    kind = {str: "text", bool: "a boolean", int: "an integer", float: "a number",
            type(None): "empty"}.get(type(value))
    if isinstance(value, Mapping):
        kind = "a mapping"
    elif isinstance(value, list | tuple):
        kind = "a list"
    if secret or kind is None:
        return kind or type(value).__name__
    if value is None or isinstance(value, Mapping | list | tuple):
        return kind
    text = repr(value)
    return f"{text} ({kind})" if len(text) <= 60 else kind
