"""The graph's pictures: every unit and requirement drawn, ids escaped, and the Mermaid text
read back by Mermaid's own parser.

The last test runs the real ``mermaid`` package in Node (its parser needs a DOM: jsdom
gives it one). It installs both, pinned, once, into ~/.cache/flamingock-es/npm (about 25 s
and 170 MB, from the npm registry); it fails, rather than skips, without ``node`` and ``npm``.
Set FLAMINGOCK_SKIP_MERMAID=1 to skip it knowingly (the skip is reported).
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flamingock_es.cli.graph import STATES, dot, mermaid
from flamingock_es.definition.graph import Node

MERMAID_VERSION = "11.17.2"
"""The last mermaid that runs on Node 20 (12.x needs Node >= 22.12)."""
JSDOM_VERSION = "26.1.0"

TRICKY = ['say "hi"', "a<b>&c", "#quot;", "50%%off", "`md`", "end", "graph", "x\\y", "é-ü"]

NODES = [
    Node("create-topic", 0, 1, (), "changes/a.yaml:1"),
    Node("orders.v2:schema", 0, 2, ("create-topic",), "changes/b.yaml:1"),
    Node("side", 0, 3, (), "changes/c.yaml:1"),
    Node("fill-topic", 1, 0, ("create-topic", "orders.v2:schema"), "changes/d.yaml:1"),
    Node("reindex", 1, 1, ("fill-topic", "fill-topic"), "changes/e.yaml:1"),
    Node("cleanup", 3, 0, (), "changes/f.yaml:1"),
]
STATE = {"create-topic": "APPLIED", "orders.v2:schema": "ROLLED_BACK", "side": "skipped",
         "fill-topic": "failed", "reindex": "RUNNING"}
REQUIREMENTS = {("create-topic", "orders.v2:schema"), ("create-topic", "fill-topic"),
                ("orders.v2:schema", "fill-topic"), ("fill-topic", "reindex")}


def tricky_nodes() -> list[Node]:
    return [Node(unit, k // 3, k, (TRICKY[k - 1],) if k else (), f"t.yaml:{k}")
            for k, unit in enumerate(TRICKY)]


# -- reading Mermaid back (a small reader for what mermaid() writes) ---------------------------

_ENTITY = re.compile(r"#(\w+);")


def mermaid_label(text: str) -> str:
    """Undo Mermaid's entity codes (#quot; #35; ...) the way Mermaid does: as HTML entities."""
    return html.unescape(_ENTITY.sub(r"&\1;", text).replace("&35;", "&#35;")
                         .replace("&37;", "&#37;").replace("&96;", "&#96;"))


def read_mermaid(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, tuple[str, str]] = {}
    members: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    classes: dict[str, str] = {}
    current = None
    for line in lines[1:]:
        if m := re.fullmatch(r' {4}subgraph (\w+)\["([^"]*)"\]', line):
            current = m[1]
            titles[current] = mermaid_label(m[2])
            members[current] = []
        elif line == "    end":
            current = None
        elif m := re.fullmatch(r' {8}(\w+)\["([^"]*)"\]:::(\w+)', line):
            assert current is not None, line
            assert m[1] not in nodes, f"node {m[1]} twice"
            nodes[m[1]] = (m[2], m[3])
            members[current].append(m[1])
        elif m := re.fullmatch(r" {4}(\w+) (-->|==>) (\w+)", line):
            edges.append((m[1], m[2], m[3]))
        elif m := re.fullmatch(r" {4}classDef (\w+) (\S+)", line):
            classes[m[1]] = m[2]
        else:
            raise AssertionError(f"unexpected line {line!r}")
    return {"nodes": nodes, "members": members, "titles": titles, "edges": edges,
            "classes": classes}


def by_unit(read: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """unit id -> (generated id, state shown, class)."""
    out = {}
    for generated, (label, cls) in read["nodes"].items():
        unit, _, state = label.partition("<br/>")
        out[mermaid_label(unit)] = (generated, state, cls)
    return out


# -- Mermaid -------------------------------------------------------------------------------


def test_mermaid_draws_every_unit_once_with_its_id_and_state() -> None:
    read = read_mermaid(mermaid(NODES, STATE))
    units = by_unit(read)
    assert set(units) == {node.id for node in NODES}
    assert {unit: shown for unit, (_, shown, _) in units.items()} == {
        "create-topic": "applied", "orders.v2:schema": "rolled back", "side": "skipped",
        "fill-topic": "failed", "reindex": "running", "cleanup": "pending"}
    assert {unit: cls for unit, (_, _, cls) in units.items()} == {
        "create-topic": "applied", "orders.v2:schema": "rolled_back", "side": "skipped",
        "fill-topic": "failed", "reindex": "running", "cleanup": "pending"}


def test_mermaid_node_ids_are_generated_and_safe() -> None:
    read = read_mermaid(mermaid(tricky_nodes(), {}))
    assert all(re.fullmatch(r"u\d+", generated) for generated in read["nodes"])
    assert set(by_unit(read)) == set(TRICKY)


def test_mermaid_has_a_subgraph_per_stage_in_order_with_its_units() -> None:
    read = read_mermaid(mermaid(NODES, STATE, stage_names={0: "schema", 3: "tidy"}))
    units = by_unit(read)
    names = {generated: unit for unit, (generated, _, _) in units.items()}
    assert list(read["titles"].values()) == ["stage 0: schema", "stage 1", "stage 3: tidy"]
    assert [[names[g] for g in members] for members in read["members"].values()] == [
        ["create-topic", "orders.v2:schema", "side"], ["fill-topic", "reindex"], ["cleanup"]]


def test_mermaid_draws_each_requirement_once_and_the_stage_order_once_per_boundary() -> None:
    read = read_mermaid(mermaid(NODES, STATE))
    names = {generated: unit for unit, (generated, _, _) in by_unit(read).items()}
    requirement_edges = [(names[a], names[b]) for a, arrow, b in read["edges"] if arrow == "-->"]
    assert len(requirement_edges) == len(REQUIREMENTS)
    assert set(requirement_edges) == REQUIREMENTS
    stage_edges = [(a, b) for a, arrow, b in read["edges"] if arrow == "==>"]
    subgraphs = list(read["members"])
    assert stage_edges == list(itertools.pairwise(subgraphs))


def test_mermaid_defines_a_class_for_every_state() -> None:
    read = read_mermaid(mermaid(NODES, {}))
    assert set(read["classes"]) == {"pending", "running", "applied", "failed", "skipped",
                                    "rolled_back"}
    fill, stroke, color = STATES["rolled back"]
    assert read["classes"]["rolled_back"] == f"fill:{fill},stroke:{stroke},color:{color}"
    assert len(set(read["classes"].values())) == 6


def test_mermaid_escapes_what_mermaid_would_read_as_markup() -> None:
    text = mermaid(tricky_nodes(), {}, stage_names={0: 'a "quoted" <stage>'})
    read = read_mermaid(text)
    assert set(by_unit(read)) == set(TRICKY)
    assert read["titles"]["stage0"] == 'stage 0: a "quoted" <stage>'
    assert "%%" not in text
    assert "`" not in text
    labels = [label for label, _ in read["nodes"].values()]
    assert not any(set(label.partition("<br/>")[0]) & set('"<>&`%') for label in labels)


def test_a_large_graph_draws_no_edge_per_pair_of_stage_units() -> None:
    nodes = [Node(f"u.{k}", k // 100, k, (f"u.{k - 1}",) if k % 100 else ()) for k in range(1000)]
    read = read_mermaid(mermaid(nodes, {}))
    assert len(read["nodes"]) == 1000
    assert sum(arrow == "-->" for _, arrow, _ in read["edges"]) == 990
    assert sum(arrow == "==>" for _, arrow, _ in read["edges"]) == 9


# -- states and refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "shown"), [
    ("APPLIED", "applied"), ("applied", "applied"), ("ROLLED_BACK", "rolled back"),
    ("rolled back", "rolled back"), ("rolled-back", "rolled back"),
    ("ROLLBACK_FAILED", "failed"), ("IN_DOUBT", "failed"), ("PENDING", "pending"),
    ("SKIPPED", "skipped"), ("RUNNING", "running"),
])
def test_states_are_read_in_any_spelling(given: str, shown: str) -> None:
    units = by_unit(read_mermaid(mermaid([Node("a", 0, 0)], {"a": given})))
    assert units["a"][1] == shown


def test_refusals() -> None:
    with pytest.raises(ValueError, match="unknown state 'DONE': one of pending, running"):
        mermaid([Node("a", 0, 0)], {"a": "DONE"})
    with pytest.raises(ValueError, match="requirements name units that are not drawn: ghost"):
        dot([Node("a", 0, 0, ("ghost",))], {})
    with pytest.raises(ValueError, match="states given for units that are not drawn: b"):
        mermaid([Node("a", 0, 0)], {"b": "APPLIED"})
    with pytest.raises(ValueError, match="unique"):
        dot([Node("a", 0, 0), Node("a", 1, 0)], {})


def test_no_units_draws_an_empty_chart() -> None:
    assert read_mermaid(mermaid([], {}))["nodes"] == {}
    assert dot([], {}).startswith("digraph workflow {\n")


# -- DOT -------------------------------------------------------------------------------------


def dot_string(text: str) -> str:
    """A DOT quoted string's content as Graphviz reads it (escapes, then entities)."""
    out = re.sub(r'\\(["\\n])', lambda m: "\n" if m[1] == "n" else m[1], text)
    return html.unescape(out)


def read_dot(text: str) -> dict[str, Any]:
    clusters: dict[str, tuple[str, list[str]]] = {}
    nodes: dict[str, tuple[str, str]] = {}
    edges: list[tuple[str, str, str]] = []
    current = None
    string = r'"((?:[^"\\]|\\.)*)"'
    lines = text.splitlines()
    assert lines[0] == "digraph workflow {"
    assert lines[-1] == "}"
    for line in lines[4:-1]:
        if m := re.fullmatch(r" {4}subgraph (cluster_\d+) \{", line):
            current = m[1]
        elif m := re.fullmatch(rf" {{8}}label={string};", line):
            assert current is not None
            clusters[current] = (dot_string(m[1]), [])
        elif line == "    }":
            current = None
        elif m := re.fullmatch(rf' {{8}}(u\d+) \[label={string}, fillcolor="(#\w+)", '
                               rf'color="#\w+", fontcolor="#\w+"\];', line):
            assert current is not None
            nodes[m[1]] = (dot_string(m[2]), m[3])
            clusters[current][1].append(m[1])
        elif m := re.fullmatch(r" {4}(u\d+) -> (u\d+)( \[.*\])?;", line):
            edges.append((m[1], m[2], m[3] or ""))
        else:
            raise AssertionError(f"unexpected line {line!r}")
    return {"clusters": clusters, "nodes": nodes, "edges": edges}


def test_dot_draws_clusters_per_stage_every_unit_and_every_requirement() -> None:
    read = read_dot(dot(NODES, STATE, stage_names={1: "data"}))
    units = {label.partition("\n")[0]: generated for generated, (label, _) in read["nodes"].items()}
    names = {generated: unit for unit, generated in units.items()}
    assert set(units) == {node.id for node in NODES}
    assert [(title, [names[g] for g in members]) for title, members in
            read["clusters"].values()] == [
        ("stage 0", ["create-topic", "orders.v2:schema", "side"]),
        ("stage 1: data", ["fill-topic", "reindex"]), ("stage 3", ["cleanup"])]
    plain = [(names[a], names[b]) for a, b, extra in read["edges"] if not extra]
    assert len(plain) == len(REQUIREMENTS)
    assert set(plain) == REQUIREMENTS
    staged = [extra for _, _, extra in read["edges"] if extra]
    assert staged == [" [ltail=cluster_0, lhead=cluster_1, style=dashed]",
                      " [ltail=cluster_1, lhead=cluster_2, style=dashed]"]
    assert read["nodes"][units["fill-topic"]] == ("fill-topic\nfailed", STATES["failed"][0])
    assert read["nodes"][units["cleanup"]][0] == "cleanup\npending"


def test_dot_escapes_quotes_backslashes_and_entities() -> None:
    nodes = [*tricky_nodes(), Node("a&amp;b", 9, 0), Node("line\nbreak", 9, 1)]
    read = read_dot(dot(nodes, {}, stage_names={9: 'say "x"'}))
    labels = {label.rpartition("\n")[0] for label, _ in read["nodes"].values()}
    assert labels == {*TRICKY, "a&amp;b", "line\nbreak"}
    assert read["clusters"]["cluster_3"][0] == 'stage 9: say "x"'


# -- Mermaid's own parser -----------------------------------------------------------------------

_PARSE = """
import { JSDOM } from "jsdom";
const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const text of JSON.parse(input)) {
  try {
    const db = (await mermaid.mermaidAPI.getDiagramFromText(text)).db;
    out.push({
      type: (await mermaid.parse(text)).diagramType,
      vertices: [...db.getVertices().values()].map(v => [v.id, v.text, v.classes]),
      edges: db.getEdges().map(e => [e.start, e.end, e.stroke]),
      subgraphs: db.getSubGraphs().map(s => [s.id, s.title, s.nodes]),
      classes: [...db.getClasses().keys()],
    });
  } catch (error) {
    out.push({ error: String(error.message || error) });
  }
}
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="session")
def mermaid_dir() -> Path:
    """A directory whose node_modules has mermaid and jsdom, installed once, pinned."""
    if os.environ.get("FLAMINGOCK_SKIP_MERMAID"):
        pytest.skip("FLAMINGOCK_SKIP_MERMAID is set: Mermaid's own parser not run")
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("this test runs Mermaid's parser in Node: it needs node and npm on PATH "
                    "(or FLAMINGOCK_SKIP_MERMAID=1 to skip it knowingly)")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = cache / "flamingock-es" / "npm" / f"mermaid-{MERMAID_VERSION}-jsdom-{JSDOM_VERSION}"
    if not (target / "node_modules" / "mermaid" / "package.json").exists():
        staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "package.json").write_text('{"private": true}\n')
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--loglevel=error", f"mermaid@{MERMAID_VERSION}",
                        f"jsdom@{JSDOM_VERSION}"],
                       cwd=staging, check=True, timeout=600, capture_output=True)
        try:
            staging.rename(target)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return target


def parse_with_mermaid(directory: Path, texts: list[str]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node
    done = subprocess.run([node, "--input-type=module", "-e", _PARSE], cwd=directory,
                          input=json.dumps(texts), capture_output=True, text=True,
                          timeout=120, check=True)
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def decode_mermaid(text: str) -> str:
    """The parser keeps entity codes as placeholders until it renders; undo them as it does."""
    return html.unescape(text.replace("ﬂ°°", "&#").replace("ﬂ°", "&").replace("¶ß", ";"))


def test_mermaids_own_parser_reads_every_node_edge_stage_and_class(mermaid_dir: Path) -> None:
    charts = [mermaid(NODES, STATE, stage_names={0: 'the "first" <stage>'}),
              mermaid(tricky_nodes(), dict.fromkeys(TRICKY[::2], "APPLIED")),
              # Controls: the harness must see what goes wrong without the escaping.
              'flowchart LR\n    u0["say "hi""]\n',
              "flowchart LR\n    end --> x\n"]
    parsed = parse_with_mermaid(mermaid_dir, charts)
    assert parsed[2]["vertices"] == [["u0", "say hi", []]]  # the quotes are lost
    assert "Parse error" in parsed[3]["error"]  # a unit named "end", were ids not generated
    for chart, nodes, states in ((parsed[0], NODES, STATE),
                                 (parsed[1], tricky_nodes(),
                                  dict.fromkeys(TRICKY[::2], "APPLIED"))):
        assert "error" not in chart, chart.get("error")
        assert chart["type"] == "flowchart-v2"
        subgraph_ids = [sub[0] for sub in chart["subgraphs"]]
        units = {decode_mermaid(text).split("<br>")[0]: (vid, decode_mermaid(text), classes)
                 for vid, text, classes in chart["vertices"] if vid not in subgraph_ids}
        assert set(units) == {node.id for node in nodes}
        for node in nodes:
            _vid, text, classes = units[node.id]
            state = {"APPLIED": "applied", "ROLLED_BACK": "rolled back", "RUNNING": "running",
                     "skipped": "skipped", "failed": "failed"}.get(states.get(node.id, ""),
                                                                    "pending")
            assert text == f"{node.id}<br>{state}"
            assert classes == [state.replace(" ", "_")]
        names = {vid: unit for unit, (vid, _, _) in units.items()}
        wanted = {(target, node.id) for node in nodes for target in node.requires}
        drawn = [(names[a], names[b]) for a, b, stroke in chart["edges"] if stroke == "normal"]
        assert sorted(drawn) == sorted(wanted)
        stage_edges = [(a, b) for a, b, stroke in chart["edges"] if stroke == "thick"]
        assert stage_edges == list(itertools.pairwise(subgraph_ids))
        stages = sorted({node.stage for node in nodes})
        assert [sorted(names[v] for v in sub[2]) for sub in chart["subgraphs"]] == [
            sorted(node.id for node in nodes if node.stage == stage) for stage in stages]
        assert set(chart["classes"]) == {state.replace(" ", "_") for state in STATES}
    assert decode_mermaid(parsed[0]["subgraphs"][0][1]) == 'stage 0: the "first" <stage>'
