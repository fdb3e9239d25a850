"""Pictures of a workflow's graph: Mermaid (for Markdown, GitHub, the docs) and Graphviz DOT.

Why two: Mermaid (a ``flowchart LR``) renders where people already read: a pull request, a
README, a docs site. DOT is for large workflows, where Graphviz lays out thousands of nodes
that a Mermaid renderer will not.

Both show the same thing: one box per stage, in order; one node per unit, labelled with its id
and state and coloured by state; an arrow from each required unit to the unit requiring it.
The stage order is one arrow from each stage to the next (not one per pair of units, which
would be *a x b* arrows and say nothing more).

Unit ids may hold any character (``-``, ``.``, ``:`` are common). Neither format takes that as
a node id, so nodes get generated ids (``u0``, ``u1``, ... in the linear order) and the real
id goes in the label, escaped for the format.

Pure functions from data to text: the caller decides where it goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..definition.graph import Node

__all__ = ["STATES", "dot", "mermaid"]

STATES: Mapping[str, tuple[str, str, str]] = {
    # state: (fill, stroke, text colour)
    "pending": ("#f4f4f5", "#a1a1aa", "#27272a"),
    "running": ("#dbeafe", "#2563eb", "#1e3a8a"),
    "applied": ("#dcfce7", "#16a34a", "#14532d"),
    "failed": ("#fee2e2", "#dc2626", "#7f1d1d"),
    "skipped": ("#fef9c3", "#ca8a04", "#713f12"),
    "rolled back": ("#ede9fe", "#7c3aed", "#4c1d95"),
}
"""The states drawn, each with its colours; a unit without a state is pending."""

_ALIASES = {"rollback failed": "failed", "in doubt": "failed"}
"""Outcomes (``conditions.Outcome``) drawn as one of :data:`STATES`."""


def _state(raw: str | None) -> str:
    """``APPLIED``, ``applied``, ``ROLLED_BACK``, ``rolled back``: one spelling."""
    if raw is None:
        return "pending"
    state = raw.strip().lower().replace("_", " ").replace("-", " ")
    state = _ALIASES.get(state, state)
    if state not in STATES:
        raise ValueError(f"unknown state {raw!r}: one of {', '.join(STATES)}")
    return state


def _class(state: str) -> str:
    return state.replace(" ", "_")


def _prepare(nodes: Iterable[Node], states: Mapping[str, str]
             ) -> tuple[list[Node], dict[str, str], list[list[int]], list[str]]:
    """The nodes in the linear order, their generated ids, stages as lists of positions, and
    each node's state."""
    given = list(nodes)
    ranked = sorted(range(len(given)), key=lambda i: (given[i].stage, given[i].order, i))
    ordered = [given[i] for i in ranked]
    ids = {node.id: f"u{rank}" for rank, node in enumerate(ordered)}
    if len(ids) != len(ordered):
        raise ValueError("unit ids must be unique to be drawn")
    missing = sorted({target for node in ordered for target in node.requires
                      if target not in ids})
    if missing:
        raise ValueError(f"requirements name units that are not drawn: {', '.join(missing)}")
    unknown = sorted(set(states) - ids.keys())
    if unknown:
        raise ValueError(f"states given for units that are not drawn: {', '.join(unknown)}")
    stages: list[list[int]] = []
    for rank, node in enumerate(ordered):
        if not stages or ordered[stages[-1][0]].stage != node.stage:
            stages.append([])
        stages[-1].append(rank)
    return ordered, ids, stages, [_state(states.get(node.id)) for node in ordered]


def _edges(ordered: list[Node], ids: Mapping[str, str]) -> list[tuple[str, str]]:
    """(required, requiring) as generated ids, once each, in the linear order."""
    seen: dict[tuple[str, str], None] = {}
    for node in ordered:
        for target in node.requires:
            seen[(ids[target], ids[node.id])] = None
    return list(seen)


def _stage_title(stage: int, names: Mapping[int, str]) -> str:
    name = names.get(stage)
    return f"stage {stage}: {name}" if name else f"stage {stage}"


# -- Mermaid ------------------------------------------------------------------------------------

_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
                    "`": "#96;", "%": "#37;", "\n": " ", "\r": " "}
"""Mermaid's entity codes (``#name;`` / ``#number;``): inside a quoted label, these are the
characters Mermaid would read as markup, a comment (``%%``), a Markdown string or the end."""


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in text)


def mermaid(nodes: Iterable[Node], states: Mapping[str, str], *,
            stage_names: Mapping[int, str] | None = None) -> str:
    """A Mermaid ``flowchart LR`` of the units: a subgraph per stage, an arrow per requirement
    (from the required unit), a thick arrow from each stage to the next, nodes styled by state.

    ``states`` maps unit ids to a state of :data:`STATES` (or an outcome such as
    ``ROLLED_BACK``); units missing from it are pending.
    """
    names = dict(stage_names or {})
    ordered, ids, stages, drawn = _prepare(nodes, states)
    lines = ["flowchart LR"]
    for index, ranks in enumerate(stages):
        stage = ordered[ranks[0]].stage
        lines.append(f'    subgraph stage{index}["{_mermaid_text(_stage_title(stage, names))}"]')
        for rank in ranks:
            node = ordered[rank]
            label = f"{_mermaid_text(node.id)}<br/>{drawn[rank]}"
            lines.append(f'        {ids[node.id]}["{label}"]:::{_class(drawn[rank])}')
        lines.append("    end")
    for index in range(1, len(stages)):
        lines.append(f"    stage{index - 1} ==> stage{index}")
    lines.extend(f"    {required} --> {requiring}" for required, requiring in _edges(ordered, ids))
    for state, (fill, stroke, color) in STATES.items():
        lines.append(f"    classDef {_class(state)} fill:{fill},stroke:{stroke},color:{color}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT -----------------------------------------------------------------------------


def _dot_text(text: str) -> str:
    """A DOT double-quoted string's content: backslash and quote escaped, ``&`` as ``&amp;``
    (Graphviz reads entities such as ``&amp;`` and ``&#35;`` in any label), lines as ``\\n``."""
    return (text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
            .replace("\r", "").replace("\n", "\\n"))


def dot(nodes: Iterable[Node], states: Mapping[str, str], *,
        stage_names: Mapping[int, str] | None = None) -> str:
    """A Graphviz DOT digraph of the units: a cluster per stage, an edge per requirement (from
    the required unit), a dashed edge from each stage's cluster to the next, nodes filled by
    state. ``states`` is as for :func:`mermaid`."""
    names = dict(stage_names or {})
    ordered, ids, stages, drawn = _prepare(nodes, states)
    lines = [
        "digraph workflow {",
        "    rankdir=LR;",
        "    compound=true;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for index, ranks in enumerate(stages):
        stage = ordered[ranks[0]].stage
        lines.append(f"    subgraph cluster_{index} {{")
        lines.append(f'        label="{_dot_text(_stage_title(stage, names))}";')
        for rank in ranks:
            node = ordered[rank]
            fill, stroke, color = STATES[drawn[rank]]
            label = _dot_text(f"{node.id}\n{drawn[rank]}")
            lines.append(f'        {ids[node.id]} [label="{label}", fillcolor="{fill}", '
                         f'color="{stroke}", fontcolor="{color}"];')
        lines.append("    }")
    for index in range(1, len(stages)):
        last = ids[ordered[stages[index - 1][-1]].id]
        first = ids[ordered[stages[index][0]].id]
        lines.append(f"    {last} -> {first} [ltail=cluster_{index - 1}, lhead=cluster_{index}, "
                     f"style=dashed];")
    lines.extend(f"    {required} -> {requiring};" for required, requiring in _edges(ordered, ids))
    lines.append("}")
    return "\n".join(lines) + "\n"
