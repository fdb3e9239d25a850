"""The package's shape, pinned: no import cycles, and the engine free of adapters and the CLI.

Every import counts, wherever it is written: at module level, inside a function, or under
``TYPE_CHECKING``. A cycle says two modules are one concern, or that a type lives in the
wrong place; the message names the modules so it can be mended.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import flamingock_es

PACKAGE = Path(flamingock_es.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the package (the read side included, through its link), by name."""
    modules = {}
    files = [Path(root, file) for root, _, names in os.walk(PACKAGE, followlinks=True)
             for file in names if file.endswith(".py")]
    for path in sorted(files):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(["flamingock_es", *parts])] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {target for target in found if target in modules and target != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_the_whole_package() -> None:
    graph = _graph()
    assert "flamingock_es.projections.worker" in graph  # the read side, through its link
    assert "flamingock_es.adapters.kafka.event_log" in graph["flamingock_es.adapters"] or \
        "flamingock_es.adapters.kafka" in graph["flamingock_es.adapters"]
    assert "flamingock_es.progress" in graph["flamingock_es.telemetry.spans"]


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_a_cycle_would_be_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_engine_imports_no_adapter_cli_or_sdk() -> None:
    graph = _graph()
    engine = ["flamingock_es.state", "flamingock_es.codec", "flamingock_es.events",
              "flamingock_es.planner", "flamingock_es.recorder", "flamingock_es.changes"]
    for name in engine:
        bad = {t for t in graph[name]
               if t.startswith(("flamingock_es.adapters", "flamingock_es.cli",
                                "flamingock_es.telemetry"))}
        assert bad == set(), name


def test_only_the_composition_root_builds_adapters() -> None:
    graph = _graph()
    users = {name for name, targets in graph.items()
             if any(t.startswith(("flamingock_es.adapters.local",
                                  "flamingock_es.adapters.kafka")) for t in targets)
             and not name.startswith("flamingock_es.adapters")}
    assert users == set()
