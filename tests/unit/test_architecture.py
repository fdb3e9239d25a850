"""The package's shape, pinned: folders are the flows, and the arrows between them run one way.

Every import counts, wherever it is written: at module level, inside a function, or under
``TYPE_CHECKING``. The rules (docs/architecture.md draws them):

* no import cycles: a cycle says two modules are one concern, or that a type lives in the
  wrong place;
* the core imports nothing outside itself but the errors (and the version constant);
* the dashboard reads the projections, never the log, and takes the report's palette;
* a flow imports the core, and only the flows it is declared to build on (:data:`MAY_USE`):
  the definition of a workflow is what the run reads, and the request flow hands requests to
  the runner; the audit and the read side stand apart;
* one module, the composition root, builds adapters (log, lock, channels, stores) and wraps
  ports for tracing; the rest receive what it builds;
* a private module (an underscore) is imported only from inside the folder that holds it;
* the top of the package holds at most 8 modules, and no symlink exists anywhere in the
  repository: the read side and the contract reach the package through setup.py's mapping.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import flamingock_es

PACKAGE = Path(flamingock_es.__file__).parent
REPOSITORY = PACKAGE.parent
MAPPED = {"flamingock_es.projections": REPOSITORY / "projections"}  # setup.py's package_dir
ROOT = "flamingock_es.namespace"
"""The composition root."""

FLOWS = ("core", "definition", "run", "request", "audit", "projections", "adapters",
         "telemetry", "dashboard", "cli")
MAY_USE: dict[str, set[str]] = {
    "core": set(),
    "definition": {"core"},
    "run": {"core", "definition"},
    "request": {"core", "definition", "run"},
    "audit": {"core"},
    "projections": {"core"},
    "adapters": {"core"},
    "telemetry": {"core"},
    # the page reads the projections, in the report's colours (one palette for both)
    "dashboard": {"core", "projections", "audit"},
}
"""Which flows each may import besides itself (``errors`` and ``_version`` are leaves every
module may use). The composition root, the API and the CLI sit above them all."""
LEAVES = {"flamingock_es.errors", "flamingock_es._version"}


def _modules() -> dict[str, Path]:
    """Every module of the package, the mapped read side included, by name."""
    modules = {}
    for package, folder in {"flamingock_es": PACKAGE, **MAPPED}.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
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


def _flow(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOWS else None


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
    assert "flamingock_es.projections.worker" in graph  # the read side, through the mapping
    assert "flamingock_es.core.codec" in graph["flamingock_es.core.reading"]
    assert any(t.startswith("flamingock_es.adapters.kafka") for t in graph[ROOT])


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_a_cycle_would_be_found() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for name, targets in sorted(graph.items()):
        flow = _flow(name)
        if flow is None or flow not in MAY_USE:
            continue
        for target in sorted(targets - LEAVES):
            other = _flow(target)
            if other != flow and other not in MAY_USE[flow]:
                wrong.append(f"{name} -> {target}")
    return wrong


def test_flows_import_only_what_they_build_on() -> None:
    assert _wrong_arrows(_graph()) == []


def test_a_wrong_arrow_would_be_found() -> None:
    graph = {"flamingock_es.core.state": {"flamingock_es.errors", "flamingock_es.run.planner"},
             "flamingock_es.run.runner": {"flamingock_es.core.state",
                                          "flamingock_es.audit.replay"},
             "flamingock_es.request.service": {"flamingock_es.run.runner"},
             "flamingock_es.api": {"flamingock_es.cli.run"}}
    assert _wrong_arrows(graph) == [
        "flamingock_es.core.state -> flamingock_es.run.planner",
        "flamingock_es.run.runner -> flamingock_es.audit.replay"]


def test_only_the_composition_root_builds_adapters_and_wraps_ports() -> None:
    graph = _graph()
    adapters = ("flamingock_es.adapters.local", "flamingock_es.adapters.kafka",
                "flamingock_es.projections.stores.sqlite",
                "flamingock_es.projections.stores.couchbase")
    inside = ("flamingock_es.adapters", "flamingock_es.projections.stores")
    users = {name for name, targets in graph.items()
             if any(t.startswith(adapters) for t in targets) and not name.startswith(inside)}
    assert users == {ROOT}
    wrappers = {"traced_lock", "TracingObserver"}
    calls = set()
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else \
                    getattr(node.func, "id", "")
                if called in wrappers:
                    calls.add(name)
    assert calls == {ROOT}


def test_private_modules_are_used_only_beside_them() -> None:
    wrong = []
    for name, targets in _graph().items():
        for target in targets:
            parts = target.split(".")
            private = next((i for i, part in enumerate(parts) if part.startswith("_")
                            and part != "_version"), None)
            if private is not None and not name.startswith(".".join(parts[:private]) + "."):
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_the_top_of_the_package_is_small() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(FLOWS), folders


def test_no_symlink_in_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files", "-s"], cwd=REPOSITORY, check=True,
                             capture_output=True, text=True).stdout.splitlines()
    assert [line for line in tracked if line.startswith("120000")] == []
    links = []
    for folder, dirs, files in os.walk(REPOSITORY):
        dirs[:] = [d for d in dirs if d not in (".git", ".venv", ".services", "build")
                   and not d.startswith(".venv")]
        links += [os.path.join(folder, n) for n in dirs + files
                  if os.path.islink(os.path.join(folder, n))]
    assert links == []
