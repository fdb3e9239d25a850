"""Workflows as graphs, as a user runs them: ``requires`` and ``max_parallel``, a failure under
each policy, conditions, preconditions, environments, tags, and the bad input refused.

The units are four Python changes: ``a``; ``b`` and ``c`` that require ``a``; ``d`` that
requires both. Every side effect is a line of ``effects.txt``. Concurrency is shown, never
timed: with ``meet-b`` and ``meet-c`` each of the two waits until the other has started, which
only units that run side by side can do (one at a time, the first gives up and fails).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from .conftest import Project, ok
from .http_server import RecordingServer, recording_server

pytestmark = pytest.mark.e2e

UNITS = '''\
import time
from pathlib import Path

from flamingock_es import change_unit


def _note(line):
    with open("effects.txt", "a") as f:
        f.write(line + "\\n")


def _effects():
    return Path("effects.txt").read_text().splitlines() if Path("effects.txt").exists() else []


def _apply(uid, other=None):
    _note(f"start {uid}")
    if other and Path(f"meet-{uid}").exists():  # both running at once, or this one fails
        wait = float(Path(f"meet-{uid}").read_text() or "20")
        deadline = time.monotonic() + wait
        while f"start {other}" not in _effects():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{uid} waited {wait:g} s for {other} to start beside it")
            time.sleep(0.02)
    if Path(f"hold-{uid}").exists():
        deadline = time.monotonic() + 60
        while not Path(f"release-{uid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if Path(f"fail-{uid}").exists():
        raise RuntimeError(f"{uid} boom")
    _note(f"apply {uid}")


def _undo(ctx):
    _note(f"rollback {ctx.unit_id}")


def _ready(ctx):
    return not Path(f"not-ready-{ctx.unit_id}").exists()


@change_unit(id="a", order=1, author="ana", rollback=_undo)
def a(ctx):
    _apply("a")


@change_unit(id="b", order=2, author="ana", rollback=_undo, requires=["a"])
def b(ctx):
    _apply("b", "c")


@change_unit(id="c", order=3, author="ana", rollback=_undo, requires=["a"])
def c(ctx):
    _apply("c", "b")


@change_unit(id="d", order=4, author="ana", rollback=_undo, requires=["b", "c"])
def d(ctx):
    _apply("d")
'''

EXTRA = '''

@change_unit(id="eu", order=5, author="ana", rollback=_undo, when='"eu" in labels')
def eu(ctx):
    _apply("eu")


@change_unit(id="checked", order=6, author="ana", rollback=_undo, precondition=_ready,
             on_fail="{on_fail}")
def checked(ctx):
    _apply("checked")
'''


def workflow(*, max_parallel: int = 2, on_failure: str = "stop") -> str:
    return f"""\
        namespace: shop
        max_parallel: {max_parallel}
        on_failure: {on_failure}
        environments:
          staging: {{namespace: shop-staging}}
          prod: {{namespace: shop-prod, labels: [eu]}}
        stages:
          - name: main
            units: [changes]
        """


@pytest.fixture
def graph(project: Project) -> Project:
    project.write("flamingock.yaml", workflow())
    (project.path / "changes" / "units.py").unlink()
    project.write("changes/graph.py", UNITS)
    return project


def with_extra(project: Project, on_fail: str = "halt") -> None:
    project.write("changes/graph.py", UNITS + EXTRA.replace("{on_fail}", on_fail))


def history(project: Project, *args: str) -> list[dict[str, object]]:
    return json.loads(ok(project.cli("history", "--json", *args)).stdout)  # type: ignore[no-any-return]


def statuses(project: Project, *args: str) -> dict[str, str]:
    rows = json.loads(ok(project.cli("status", "--json", *args)).stdout)["rows"]
    return {row["unit_id"]: row["status"] for row in rows}


def test_requirements_order_the_units_and_independent_ones_run_side_by_side(
        graph: Project) -> None:
    graph.flag("meet-b", "meet-c")

    ok(graph.cli("run"))

    effects = graph.effects()
    assert effects[0:2] == ["start a", "apply a"]
    assert set(effects[2:4]) == {"start b", "start c"}  # both started before either ended
    assert effects[-2:] == ["start d", "apply d"]
    assert sorted(effects) == sorted(f"{w} {u}" for u in "abcd" for w in ("start", "apply"))
    assert statuses(graph) == dict.fromkeys("abcd", "APPLIED")
    events = [e["payload"]["type"] for e in history(graph)]  # type: ignore[index]
    assert events.count("ChangeStarted") == 4
    assert events.count("ChangeSucceeded") == 4
    assert "chain intact" in ok(graph.cli("verify")).stdout
    assert "up to date" in ok(graph.cli("run")).stderr
    ok(graph.cli("replay", "--format", "html", "--output", "report.html"))
    html = (graph.path / "report.html").read_text()
    assert '<div class="lanes"' in html  # the report draws b and c side by side
    assert "2 lanes: the most units running at once" in html


def test_one_at_a_time_by_default_so_meeting_fails(graph: Project) -> None:
    graph.write("flamingock.yaml", workflow(max_parallel=1))
    graph.write("meet-b", "1")

    failed = ok(graph.cli("run"), 8)

    assert "b waited 1 s for c to start beside it" in failed.stderr
    assert "start c" not in graph.effects()


def test_a_failure_stops_the_graph_and_compensates_dependents_first(graph: Project) -> None:
    graph.flag("fail-c")

    failed = ok(graph.cli("run"), 8)

    effects = graph.effects()
    assert "start d" not in effects  # nothing new started after the failure
    assert effects[-2:] == ["rollback b", "rollback a"] or effects[-3:] == [
        "rollback c", "rollback b", "rollback a"]
    assert effects.index("rollback b") < effects.index("rollback a")  # dependents first
    assert "c boom" in failed.stderr
    assert statuses(graph) == {"a": "ROLLED_BACK", "b": "ROLLED_BACK", "c": "ROLLED_BACK",
                               "d": "PENDING"}


def test_isolate_skips_only_what_requires_the_failed_unit(graph: Project) -> None:
    graph.write("flamingock.yaml", workflow(on_failure="isolate"))
    graph.flag("fail-c")

    failed = ok(graph.cli("run"), 8)

    effects = graph.effects()
    assert "apply b" in effects  # the independent branch finished
    assert "start d" not in effects  # d requires c
    assert "rollback a" not in effects
    assert "rollback b" not in effects
    assert "PARTIAL" in failed.stderr
    assert statuses(graph)["b"] == "APPLIED"
    skips = [e["payload"] for e in history(graph)
             if e["payload"]["type"] == "ChangeSkipped"]  # type: ignore[index]
    assert [(s["unit_id"], s["cause"]) for s in skips] == [("d", "DEPENDENCY")]  # type: ignore[index]
    finished = [e["payload"] for e in history(graph)
                if e["payload"]["type"] == "RunFinished"]  # type: ignore[index]
    assert finished[-1]["outcome"] == "PARTIAL"  # type: ignore[index]
    ok(graph.cli("replay", "--format", "html", "--output", "report.html"))
    html = (graph.path / "report.html").read_text()
    assert '<span class="badge o-PARTIAL">PARTIAL</span>' in html


def test_a_condition_that_flips_between_runs(graph: Project) -> None:
    with_extra(graph)

    ok(graph.cli("run"))  # no labels: eu is skipped, and that is recorded
    assert "apply eu" not in graph.effects()
    skips = [e["payload"] for e in history(graph) if e["payload"]["type"] == "ChangeSkipped"]  # type: ignore[index]
    assert [(s["unit_id"], s["cause"]) for s in skips] == [("eu", "CONDITION")]  # type: ignore[index]
    assert "up to date" in ok(graph.cli("run")).stderr  # the same skip is not work again

    ok(graph.cli("run", "--labels", "eu,billing"))  # evaluated again: now it holds

    assert graph.effects().count("apply eu") == 1
    started = [e["payload"] for e in history(graph) if e["payload"]["type"] == "RunStarted"]  # type: ignore[index]
    assert started[-1]["labels"] == ["eu", "billing"]  # type: ignore[index]


@pytest.mark.parametrize(("on_fail", "code", "status", "ran"), [
    ("halt", 8, "PENDING", False),  # the run fails; nothing was changed, so it is retried
    ("skip", 0, "PENDING", False),
    ("mark-applied", 0, "APPLIED", False),
])
def test_a_precondition_that_does_not_hold(graph: Project, on_fail: str, code: int,
                                           status: str, ran: bool) -> None:
    with_extra(graph, on_fail)
    graph.flag("not-ready-checked")

    ok(graph.cli("run", "--labels", "eu"), code)

    assert ("start checked" in graph.effects()) is ran
    assert statuses(graph)["checked"] == status
    checks = [e["payload"] for e in history(graph)
              if e["payload"]["type"] == "PreconditionChecked"]  # type: ignore[index]
    assert [(c["unit_id"], c["holds"], c["on_fail"]) for c in checks] == [  # type: ignore[index]
        ("checked", False, on_fail)]
    graph.unflag("not-ready-checked")
    if on_fail == "skip":  # looked at again on the next run, and now it holds
        ok(graph.cli("run", "--labels", "eu"))
        assert graph.effects().count("apply checked") == 1


def test_environments_are_namespaces_of_their_own_and_plan_compares_them(
        graph: Project) -> None:
    with_extra(graph)
    ok(graph.cli("run", "--env", "prod"))  # prod carries the label eu

    ok(graph.cli("run", "--env", "staging", "--unit", "a"))

    assert statuses(graph, "--env", "prod")["eu"] == "APPLIED"
    assert statuses(graph, "--env", "staging")["b"] == "PENDING"
    compared = ok(graph.cli("plan", "--env", "staging", "--compare", "prod")).stdout
    assert "staging lacks 5 unit(s) that prod has applied: b, c, d, eu, checked" in compared
    unknown = ok(graph.cli("run", "--env", "qa"), 2)
    assert "unknown environment 'qa'" in unknown.stderr
    assert "prod, staging" in unknown.stderr


def test_a_tag_and_undo_back_to_it_then_run_up_to_it(graph: Project) -> None:
    ok(graph.cli("run", "--unit", "a"))
    tagged = ok(graph.cli("tag", "v1", "--reason", "release 1"))
    assert "tagged v1 at offset" in tagged.stdout
    ok(graph.cli("run"))
    assert ok(graph.cli("tag", "v1", "--reason", "again"), 2).stderr.count("never moves") == 1

    ok(graph.cli("undo", "--to-tag", "v1"))

    assert graph.effects()[-3:] == ["rollback d", "rollback c", "rollback b"] or \
        graph.effects()[-3:] == ["rollback d", "rollback b", "rollback c"]
    assert statuses(graph) == {"a": "APPLIED", "b": "ROLLED_BACK", "c": "ROLLED_BACK",
                               "d": "ROLLED_BACK"}
    ok(graph.cli("undo", "--all"))
    ok(graph.cli("run", "--to-tag", "v1"))
    assert statuses(graph) == {"a": "APPLIED", "b": "ROLLED_BACK", "c": "ROLLED_BACK",
                               "d": "ROLLED_BACK"}
    assert graph.effects().count("apply a") == 2
    listed = ok(graph.cli("tag")).stdout
    assert "v1" in listed
    assert "release 1" in listed
    assert ok(graph.cli("undo", "--to-tag", "v9"), 2).stderr.count("no tag 'v9'") == 1


def test_kill_9_with_two_branches_mid_change_leaves_exactly_those_in_doubt(
        graph: Project) -> None:
    graph.flag("hold-b", "hold-c")
    runner = graph.spawn("run")
    try:
        graph.wait_for_effect("start b")
        graph.wait_for_effect("start c")
        time.sleep(0.3)  # both starts are durable before their side effects began
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert statuses(graph) == {"a": "APPLIED", "b": "STARTED", "c": "STARTED",
                               "d": "PENDING"}
    refused = ok(graph.cli("run"), 7)
    assert "'b'" in refused.stderr
    assert "apply d" not in graph.effects()


def test_sigterm_lets_both_running_branches_finish_and_starts_nothing_more(
        graph: Project) -> None:
    graph.flag("hold-b", "hold-c")
    runner = graph.spawn("run")
    try:
        graph.wait_for_effect("start b")
        graph.wait_for_effect("start c")
        runner.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        graph.flag("release-b", "release-c")
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode != 0, err
    assert statuses(graph) == {"a": "APPLIED", "b": "APPLIED", "c": "APPLIED",
                               "d": "PENDING"}
    assert "start d" not in graph.effects()
    ok(graph.cli("run"))
    assert graph.effects().count("apply d") == 1


@pytest.mark.parametrize(("units", "said"), [
    ('requires=["nope"]', "requires 'nope'"),
    ('requires=["d"]', "cycle"),
    ("when='env ==='", "when:"),
    ("when='enviroment == \"prod\"'", "enviroment"),
])
def test_bad_graphs_are_refused_with_file_and_line_before_anything_starts(
        graph: Project, units: str, said: str) -> None:
    source = UNITS.replace('@change_unit(id="a", order=1, author="ana", rollback=_undo)',
                           f'@change_unit(id="a", order=1, author="ana", rollback=_undo, '
                           f'{units})')
    graph.write("changes/graph.py", source)

    for command in (("run",), ("plan", "--check")):
        refused = ok(graph.cli(*command), 2)
        assert said in refused.stderr, refused.stderr
        assert "graph.py:" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert graph.effects() == []
    assert not (graph.path / ".flamingock" / "shop" / "audit.log").exists()


@pytest.mark.parametrize("value", ["0", '"2"'])
def test_a_max_parallel_that_is_not_a_count_is_refused(graph: Project, value: str) -> None:
    graph.write("flamingock.yaml", workflow().replace("max_parallel: 2",
                                                      f"max_parallel: {value}"))

    refused = ok(graph.cli("run"), 2)

    assert "flamingock.yaml:2" in refused.stderr, refused.stderr
    assert "max_parallel" in refused.stderr
    assert graph.effects() == []


def test_plan_graph_prints_mermaid_and_dot_with_each_units_state(graph: Project) -> None:
    ok(graph.cli("run", "--unit", "a"))

    mermaid = ok(graph.cli("plan", "--graph", "mermaid")).stdout
    dot = ok(graph.cli("plan", "--graph", "dot")).stdout

    assert mermaid.startswith("flowchart LR")
    assert 'u0["a<br/>applied"]:::applied' in mermaid
    assert 'u3["d<br/>pending"]:::pending' in mermaid
    assert {"u0 --> u1", "u0 --> u2", "u1 --> u3", "u2 --> u3"} <= {
        line.strip() for line in mermaid.splitlines()}
    assert dot.startswith("digraph workflow {")
    assert "u0 -> u1;" in dot
    assert 'label="a\\napplied"' in dot


FLAG_A = """\
    id: flag-a
    order: 4
    author: ana
    template: http-request
    precondition: {method: GET, url: "${FLAGS_URL}/health", expect_status: 200}
    on_fail: skip
    apply: {method: PUT, url: "${FLAGS_URL}/flags/a"}
    rollback: {method: DELETE, url: "${FLAGS_URL}/flags/a"}
"""

FLAG_B = """\
    id: flag-b
    order: 5
    author: ana
    requires: [flag-a]
    template: http-request
    apply: {method: PUT, url: "${FLAGS_URL}/flags/b"}
    rollback: {method: DELETE, url: "${FLAGS_URL}/flags/b"}
"""


@pytest.fixture
def flags(project: Project) -> Iterator[tuple[Project, RecordingServer]]:
    """The default three units, then two YAML units that switch flags on a real HTTP service
    which counts every call it receives."""
    project.write("changes/flag_a.yaml", FLAG_A)
    project.write("changes/flag_b.yaml", FLAG_B)
    with recording_server() as server:
        project.env["FLAGS_URL"] = server.url
        yield project, server


def calls(server: RecordingServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.received]


def test_a_tag_and_undo_to_it_counted_at_a_flag_service(
        flags: tuple[Project, RecordingServer]) -> None:
    project, server = flags
    ok(project.cli("run", "--unit", "u1", "--unit", "u2", "--unit", "u3", "--unit", "flag-a"))
    ok(project.cli("tag", "flags-a", "--reason", "a only"))
    ok(project.cli("run"))

    ok(project.cli("undo", "--to-tag", "flags-a"))

    assert calls(server) == ["GET /health", "PUT /flags/a", "PUT /flags/b", "DELETE /flags/b"]
    ok(project.cli("run", "--to-tag", "flags-a"))  # what the tag lists is applied: no call
    assert len(server.received) == 4
    ok(project.cli("undo", "--to-tag", "flags-a"))  # nothing applied since: no call either
    assert len(server.received) == 4


def test_a_template_precondition_that_does_not_hold_skips_and_holds_later(
        flags: tuple[Project, RecordingServer]) -> None:
    project, server = flags
    server.statuses["/health"] = 503

    ok(project.cli("run"))  # flag-a skipped (on_fail: skip), flag-b skipped for it

    assert calls(server) == ["GET /health"]
    skips = {e["payload"]["unit_id"]: e["payload"]["cause"] for e in history(project)  # type: ignore[index]
             if e["payload"]["type"] == "ChangeSkipped"}  # type: ignore[index]
    assert skips == {"flag-a": "PRECONDITION", "flag-b": "DEPENDENCY"}
    server.statuses["/health"] = 200
    ok(project.cli("run"))
    assert calls(server) == ["GET /health", "GET /health", "PUT /flags/a", "PUT /flags/b"]
