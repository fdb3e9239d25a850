"""Validating a parsed file against its model, every problem named with the file and line.

pydantic says where a problem is as a path of keys and indexes (``stages.0.units``); the
file's :class:`~flamingock_es.definition.yamlfile.Located` mappings and lists know the line
of each, so each problem is reported at the line that holds it (the key, or for a missing key
the mapping that lacks it), all of them at once, each saying what to write instead.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..core.strict import problem_text, shown
from ..errors import ConfigError
from .yamlfile import locate

__all__ = ["problems", "validated"]

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], doc: Any, where: str, noun: str = "key",
              secret: Collection[str] = ()) -> M:
    """``doc`` as ``model``, or a :class:`ConfigError` naming every problem by file and line
    (``where``: the document's own place, for what has no line). Values under a key in
    ``secret`` are never shown."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError("\n".join(problems(model, exc, doc, where, noun, secret))) from exc


def problems(model: type[BaseModel], exc: ValidationError, doc: Any, where: str,
             noun: str = "key", secret: Collection[str] = ()) -> list[str]:
    """One ``file:line: what to do`` line per value ``exc`` found wrong in ``doc``."""
    grouped: dict[tuple[str, ...], tuple[str, list[Any]]] = {}
    for error in exc.errors():
        at, path = locate(doc, error["loc"], where)
        if error["type"] == "missing":
            path = [*path, str(error["loc"][-1])]
        grouped.setdefault(tuple(path), (at, []))[1].append(error)
    lines: list[tuple[str, str]] = []
    for key, (at, errors) in grouped.items():
        if all(_is_type(e) for e in errors) and any(
                len(other) > len(key) and other[:len(key)] == key for other in grouped):
            continue  # a union member refused the value's type, another took it further
        path = list(key)
        hidden = bool(path) and path[0] in secret
        if len(errors) > 1 and all(_is_type(e) for e in errors):
            text = _union(errors, path, hidden)  # each member of a union refused the value
        else:  # a union member that took the value past its type says what is wrong
            error = next((e for e in errors if not _is_type(e)), errors[0])
            known = _keys(model, path[:-1]) if error["type"] == "extra_forbidden" else ()
            text = problem_text(error, noun, path=path, known=known, secret=hidden)
        lines.append((at, text))
    lines.sort(key=lambda line: _line_number(line[0]))  # as the file reads, top down
    return [f"{at}: {text}" for at, text in lines]


def _line_number(where: str) -> int:
    number = where.rpartition(":")[2]
    return int(number) if number.isdigit() else 0


def _is_type(error: Any) -> bool:
    return str(error["type"]).endswith("_type")


def _union(errors: Sequence[Any], path: Sequence[str], secret: bool) -> str:
    wanted = []
    for error in errors:
        text = problem_text(error, path=path, secret=True)
        kind = text.partition(" must be ")[2].partition(", not ")[0]
        if kind and kind not in wanted:
            wanted.append(kind)
    subject = ".".join(path) or "the value"
    kinds = wanted[0] if len(wanted) == 1 else f"{', '.join(wanted[:-1])} or {wanted[-1]}"
    return f"{subject} must be {kinds}, not {shown(errors[0]['input'], secret)}"


def _keys(model: type[BaseModel], path: Sequence[str]) -> list[str]:
    """The keys the mapping at ``path`` may have: the fields of the model found there."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None:
            return []
        if part.isdigit():
            continue
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    return [] if current is None else [f.alias or name
                                       for name, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``annotation`` (``list[StageFile] | None`` -> ``StageFile``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
