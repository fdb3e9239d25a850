"""Reading YAML/JSON files so that errors can name the file and the line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["Located", "LocatedList", "load_document", "locate"]

try:  # the C loader is 10x faster; a change directory can hold thousands of files
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class Located(dict[str, Any]):
    """A mapping that remembers the file and the line of each of its keys."""

    def __init__(self, data: dict[str, Any], path: Path, line: int, lines: dict[str, int]):
        super().__init__(data)
        self.path, self.line, self.lines = path, line, lines

    def where(self, key: str | None = None) -> str:
        """``file:line`` of ``key`` (or of the mapping itself)."""
        line = self.lines.get(key, self.line) if key else self.line
        return f"{self.path}:{line}"


class LocatedList(list[Any]):
    """A list that remembers the file and the line of each of its items."""

    def __init__(self, items: list[Any], path: Path, line: int, lines: list[int]):
        super().__init__(items)
        self.path, self.line, self.lines = path, line, lines

    def where(self, index: int | None = None) -> str:
        """``file:line`` of item ``index`` (or of the list itself)."""
        line = self.lines[index] if index is not None and 0 <= index < len(self.lines) \
            else self.line
        return f"{self.path}:{line}"


def locate(doc: Any, loc: Sequence[str | int], default: str) -> tuple[str, list[str]]:
    """``file:line`` of the deepest part of ``loc`` (a path of keys and indexes, as pydantic
    reports one) that ``doc`` holds, and the path of keys and indexes to it; ``default``
    if none is. Names of a union's members (``list[StageFile]``) in ``loc`` are passed over;
    a key that is missing ends the path."""
    node, where, path = doc, default, []
    for at, part in enumerate(loc):
        if _holds(node, part):
            where, node = node.where(part), node[part]
        elif isinstance(part, str) and not (isinstance(node, Located) and at == len(loc) - 1):
            continue  # a union member's name
        else:
            break
        path.append(str(part))
    return where, path


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(node, Located):
        return isinstance(part, str) and part in node
    return isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node)


def load_document(path: Path) -> Any:
    """Parse a YAML or JSON file; mappings become :class:`Located`. Errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from exc
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML/JSON: {problem}") from exc
    if node is None:
        raise ConfigError(f"{path}: the file is empty")
    return _convert(node, path)


def _convert(node: yaml.Node, path: Path) -> Any:
    if isinstance(node, yaml.MappingNode):
        data: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(_convert(key_node, path))
            if key in data:
                raise ConfigError(
                    f"{path}:{key_node.start_mark.line + 1}: key {key!r} appears twice"
                )
            data[key] = _convert(value_node, path)
            lines[key] = key_node.start_mark.line + 1
        return Located(data, path, node.start_mark.line + 1, lines)
    if isinstance(node, yaml.SequenceNode):
        return LocatedList([_convert(item, path) for item in node.value], path,
                           node.start_mark.line + 1,
                           [item.start_mark.line + 1 for item in node.value])
    return _SCALARS.construct_object(node, deep=True)  # a scalar: YAML's own typing


_SCALARS = yaml.constructor.SafeConstructor()
