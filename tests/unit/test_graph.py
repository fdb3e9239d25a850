"""The workflow graph: the linear order kept, requirements checked all at once, scheduling.

The linear order (stage by stage, ``order`` within a stage) is what every workflow without
``requires`` runs today; most tests pin that it stays exactly so, and that requirements move
a unit only as far as they must.
"""

from __future__ import annotations

import itertools
import random

import pytest

from flamingock_es.definition.graph import Graph, GraphError, Node, Scheduler, build


def n(unit_id: str, stage: int = 0, order: int = 0, *requires: str) -> Node:
    return Node(unit_id, stage, order, tuple(requires), f"changes/{unit_id}.yaml:{order + 1}")


def problems(nodes: list[Node]) -> tuple[str, ...]:
    with pytest.raises(GraphError) as caught:
        build(nodes)
    return caught.value.problems


# -- the linear order --------------------------------------------------------------------------


def test_without_requires_the_order_is_stage_by_stage_then_order() -> None:
    nodes = [n("c", 1, 1), n("a", 0, 2), n("d", 1, 0), n("b", 0, 1), n("e", 2, 0)]
    graph = build(nodes)
    assert graph.ids == ("b", "a", "d", "c", "e")
    assert graph.order() == graph.ids
    assert graph.linear


def test_units_sharing_an_order_keep_the_order_they_were_given_in() -> None:
    # As Stage sorts them today (a stable sort on order): not by id.
    graph = build([n("zeta", 0, 1), n("alpha", 0, 1), n("mid", 0, 0)])
    assert graph.order() == ("mid", "zeta", "alpha")


def test_requirements_that_agree_with_the_linear_order_leave_it_alone() -> None:
    graph = build([n("a", 0, 1), n("b", 0, 2, "a"), n("c", 1, 1, "a", "b"), n("d", 1, 2, "c")])
    assert graph.linear
    assert graph.order() == ("a", "b", "c", "d")


def test_a_requirement_against_the_linear_order_moves_only_what_it_must() -> None:
    graph = build([n("a1", 0, 1), n("a2", 0, 2, "a4"), n("a3", 0, 3), n("a4", 0, 4),
                   n("a5", 0, 5)])
    assert not graph.linear
    # a2 waits for a4; everything else keeps its place, and a2 goes as soon as it may.
    assert graph.order() == ("a1", "a3", "a4", "a2", "a5")


def test_a_chain_against_the_linear_order_is_reversed() -> None:
    graph = build([n("a", 0, 1, "b"), n("b", 0, 2, "c"), n("c", 0, 3)])
    assert graph.order() == ("c", "b", "a")


def test_the_stage_barrier_holds_even_when_a_stage_is_reordered() -> None:
    graph = build([n("a", 0, 1, "b"), n("b", 0, 2), n("x", 1, 0), n("y", 1, 1, "a")])
    order = graph.order()
    assert order == ("b", "a", "x", "y")
    assert max(order.index("a"), order.index("b")) < min(order.index("x"), order.index("y"))


def test_a_requirement_on_an_earlier_stage_is_allowed_and_kept_as_an_edge() -> None:
    graph = build([n("a", 0, 0), n("b", 2, 0, "a"), n("c", 1, 0)])
    assert graph.order() == ("a", "c", "b")
    assert graph.edges() == (("b", "a"),)
    assert graph.stages == (0, 1, 2)


def test_repeated_requirements_count_once() -> None:
    graph = build([n("a"), n("b", 0, 1, "a", "a")])
    assert graph.edges() == (("b", "a"),)


def test_lookups() -> None:
    graph = build([n("a"), n("b", 1, 0, "a")])
    assert len(graph) == 2
    assert "a" in graph
    assert "z" not in graph
    assert graph.node("b") == Node("b", 1, 0, ("a",), "changes/b.yaml:1")
    with pytest.raises(KeyError, match="'z' is not a unit"):
        graph.node("z")


def test_an_empty_workflow_is_a_graph() -> None:
    graph = build([])
    assert graph.order() == ()
    assert graph.compensation_order([]) == ()
    assert not graph.scheduler().is_active()


def test_nodes_are_frozen() -> None:
    node = n("a")
    with pytest.raises(AttributeError):
        node.id = "b"  # type: ignore[misc]


# -- refusals ------------------------------------------------------------------------------------


def test_an_unknown_requirement_names_the_unit_its_file_and_a_close_match() -> None:
    found = problems([n("create-topic"), n("fill", 0, 1, "craete-topic")])
    assert found == ("changes/fill.yaml:2: unit 'fill' requires 'craete-topic', which is not a "
                     "unit of this workflow (did you mean 'create-topic'?)",)


def test_an_unknown_requirement_with_nothing_close_offers_no_guess() -> None:
    (found,) = problems([n("create-topic"), n("fill", 0, 1, "zzz")])
    assert "'zzz', which is not a unit of this workflow" in found
    assert "did you mean" not in found


def test_a_self_requirement_is_refused() -> None:
    assert problems([n("a", 0, 0, "a")]) == (
        "changes/a.yaml:1: unit 'a' requires itself; remove 'a' from its requires",)


def test_a_requirement_on_a_later_stage_names_both_units_files_and_stages() -> None:
    nodes = [n("early", 0, 0, "late"), n("late", 1, 0)]
    (found,) = problems(nodes)
    assert found.startswith("changes/early.yaml:1: unit 'early' in stage 0 requires 'late' "
                            "(changes/late.yaml:1) in stage 1, a later stage")
    with pytest.raises(GraphError, match=r"in stage 0 \('schema'\) requires 'late' "
                                         r"\(changes/late.yaml:1\) in stage 1 \('data'\)"):
        build(nodes, stage_names={0: "schema", 1: "data"})


def test_a_cycle_is_named_in_order_with_every_units_file() -> None:
    found = problems([n("a", 0, 0, "b"), n("b", 0, 1, "c"), n("c", 0, 2, "a"), n("d", 0, 3)])
    assert found == (
        "changes/a.yaml:1: requirements form a cycle a -> b -> c -> a (each requires the "
        "next): 'a' at changes/a.yaml:1, 'b' at changes/b.yaml:2, 'c' at changes/c.yaml:3; "
        "remove one of these requirements",)


def test_a_cycle_starts_at_its_earliest_unit_wherever_the_search_entered_it() -> None:
    (found,) = problems([n("x", 0, 0), n("p", 0, 1, "r"), n("q", 0, 2, "p"), n("r", 0, 3, "q"),
                         n("y", 0, 4, "r")])
    assert "cycle p -> r -> q -> p " in found


def test_a_two_unit_cycle() -> None:
    (found,) = problems([n("a", 0, 0, "b"), n("b", 0, 1, "a")])
    assert "cycle a -> b -> a " in found


def test_every_problem_is_reported_at_once_sorted_by_file_and_line() -> None:
    nodes = [
        Node("p", 0, 0, ("q",), "flows/x.yaml:10"),
        Node("q", 0, 1, ("p",), "flows/x.yaml:20"),
        Node("r", 0, 2, ("r",), "flows/x.yaml:9"),
        Node("s", 0, 3, ("missing",), "flows/a.yaml:3"),
        Node("t", 0, 4, ("u",), "flows/b.yaml:1"),
        Node("u", 1, 0, (), "flows/c.yaml:1"),
        Node("v", 0, 5, ("w",), "flows/y.yaml:1"),
        Node("w", 0, 6, ("v",), "flows/y.yaml:2"),
        Node("p", 1, 1, (), "flows/z.yaml:1"),
    ]
    with pytest.raises(GraphError) as caught:
        build(nodes)
    found = caught.value.problems
    assert [line.split(": ", 1)[0] for line in found] == [
        "flows/a.yaml:3", "flows/b.yaml:1", "flows/x.yaml:9", "flows/x.yaml:10",
        "flows/y.yaml:1", "flows/z.yaml:1"]
    assert "'missing'" in found[0]
    assert "a later stage" in found[1]
    assert "requires itself" in found[2]
    assert "cycle p -> q -> p" in found[3]
    assert "cycle v -> w -> v" in found[4]
    assert "duplicate unit id 'p', already defined at flows/x.yaml:10" in found[5]
    message = str(caught.value)
    assert message.startswith("6 problems with the units' requirements:\n  - flows/a.yaml:3")
    assert isinstance(caught.value, ValueError)


def test_cycles_sharing_units_are_each_named() -> None:
    found = problems([n("a", 0, 0, "b", "c"), n("b", 0, 1, "a"), n("c", 0, 2, "a")])
    assert sorted(line.split("cycle ")[1].split(" (")[0] for line in found) == [
        "a -> b -> a", "a -> c -> a"]


def test_past_twenty_cycles_the_message_says_there_may_be_more() -> None:
    nodes = []
    for k in range(25):
        nodes += [n(f"a{k}", 0, 2 * k, f"b{k}"), n(f"b{k}", 0, 2 * k + 1, f"a{k}")]
    with pytest.raises(GraphError) as caught:
        build(nodes)
    assert len(caught.value.problems) == 20
    assert str(caught.value).endswith("(only the first 20 cycles are listed; there may be more "
                                      "once these are fixed)")


def test_a_single_problem_is_the_whole_message() -> None:
    with pytest.raises(GraphError) as caught:
        build([n("a", 0, 0, "a")])
    assert str(caught.value) == caught.value.problems[0]


# -- reach ------------------------------------------------------------------------------------


@pytest.fixture
def diamond() -> Graph:
    # stage 0: a <- b, a <- c, (b, c) <- d; e alone.  stage 1: f <- g.  stage 2: h.
    return build([n("a", 0, 0), n("b", 0, 1, "a"), n("c", 0, 2, "a"), n("d", 0, 3, "b", "c"),
                  n("e", 0, 4), n("f", 1, 0), n("g", 1, 1, "f"), n("h", 2, 0)])


def test_dependents_follow_requirements_and_the_stage_order(diamond: Graph) -> None:
    assert diamond.dependents("a", stages=False) == ("b", "c", "d")
    assert diamond.dependents("a") == ("b", "c", "d", "f", "g", "h")
    assert diamond.dependents("e", stages=False) == ()
    assert diamond.dependents("e") == ("f", "g", "h")
    assert diamond.dependents("f") == ("g", "h")
    assert diamond.dependents("h") == ()


def test_requirements_follow_requirements_and_the_stage_order(diamond: Graph) -> None:
    assert diamond.requirements("d", stages=False) == ("a", "b", "c")
    assert diamond.requirements("d") == ("a", "b", "c")
    assert diamond.requirements("g", stages=False) == ("f",)
    assert diamond.requirements("g") == ("a", "b", "c", "d", "e", "f")
    assert diamond.requirements("a") == ()
    with pytest.raises(KeyError):
        diamond.requirements("nope")


def test_compensation_undoes_dependents_first_and_the_newest_first(diamond: Graph) -> None:
    applied = ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert diamond.compensation_order(applied) == ("h", "g", "f", "e", "d", "c", "b", "a")
    # Applied in another order (c before b): among independent units, the newest goes first.
    assert diamond.compensation_order(["a", "c", "b", "e", "d"]) == ("d", "e", "b", "c", "a")


def test_compensation_keeps_dependence_over_recency() -> None:
    # b requires a, yet a was (re)applied last: b still goes before it (c, newer than b and
    # independent, goes first).
    graph = build([n("a", 0, 0), n("b", 0, 1, "a"), n("c", 0, 2)])
    assert graph.compensation_order(["b", "c", "a"]) == ("c", "b", "a")
    assert graph.compensation_order(["b", "a", "c"]) == ("c", "b", "a")
    assert graph.compensation_order(["c", "b", "a"]) == ("b", "a", "c")


def test_compensation_sees_dependence_through_units_not_applied() -> None:
    # c requires b requires a; b was skipped: c still goes before a, though a is newer.
    graph = build([n("a", 0, 0), n("b", 0, 1, "a"), n("c", 0, 2, "b")])
    assert graph.compensation_order(["c", "a"]) == ("c", "a")


def test_compensation_undoes_a_later_stage_first_whatever_the_given_order() -> None:
    graph = build([n("a", 0, 0), n("x", 1, 0)])
    assert graph.compensation_order(["x", "a"]) == ("x", "a")
    with pytest.raises(KeyError, match="'nope'"):
        graph.compensation_order(["a", "nope"])


# -- the scheduler --------------------------------------------------------------------------------


def drain(scheduler: Scheduler) -> list[tuple[str, ...]]:
    """Run to the end, every unit succeeding; the batches get_ready handed out."""
    batches = []
    while scheduler.is_active():
        ready = scheduler.get_ready()
        assert ready, "active, nothing running, yet nothing ready"
        batches.append(ready)
        for unit in ready:
            scheduler.done(unit)
    return batches


def test_one_at_a_time_is_todays_order(diamond: Graph) -> None:
    batches = drain(diamond.scheduler())
    assert batches == [(unit,) for unit in diamond.ids]


def test_independent_units_run_side_by_side_up_to_max_parallel(diamond: Graph) -> None:
    assert drain(diamond.scheduler(max_parallel=3)) == [
        ("a", "e"), ("b", "c"), ("d",), ("f",), ("g",), ("h",)]
    assert drain(diamond.scheduler(max_parallel=2)) == [
        ("a", "e"), ("b", "c"), ("d",), ("f",), ("g",), ("h",)]


def test_ready_units_are_handed_out_in_the_linear_order_and_as_slots_free_up() -> None:
    graph = build([n(f"u{k}", 0, k) for k in range(5)])
    scheduler = graph.scheduler(max_parallel=2)
    assert scheduler.get_ready() == ("u0", "u1")
    assert scheduler.get_ready() == ()
    assert scheduler.running == ("u0", "u1")
    scheduler.done("u1")
    assert scheduler.get_ready() == ("u2",)
    scheduler.done("u0")
    scheduler.done("u2")
    assert scheduler.get_ready() == ("u3", "u4")


def test_a_stage_limit_caps_its_stage_only() -> None:
    graph = build([n("a", 0, 0), n("b", 0, 1), n("c", 0, 2), n("x", 1, 0), n("y", 1, 1),
                   n("z", 1, 2)])
    assert drain(graph.scheduler(max_parallel=3, stage_max_parallel={1: 1})) == [
        ("a", "b", "c"), ("x",), ("y",), ("z",)]
    assert drain(graph.scheduler(max_parallel=2, stage_max_parallel={0: 5})) == [
        ("a", "b"), ("c",), ("x", "y"), ("z",)]


def test_a_later_stage_waits_for_the_whole_earlier_stage() -> None:
    graph = build([n("slow", 0, 0), n("quick", 0, 1), n("next", 1, 0)])
    scheduler = graph.scheduler(max_parallel=4)
    assert scheduler.get_ready() == ("slow", "quick")
    scheduler.done("quick")
    assert scheduler.get_ready() == ()
    scheduler.done("slow")
    assert scheduler.get_ready() == ("next",)


def test_stop_hands_out_nothing_more_but_hears_back_from_what_runs() -> None:
    graph = build([n("a", 0, 0), n("b", 0, 1), n("c", 0, 2), n("d", 1, 0)])
    scheduler = graph.scheduler(max_parallel=2)
    assert scheduler.get_ready() == ("a", "b")
    assert scheduler.failed("a") == ()
    assert scheduler.stopped
    assert scheduler.get_ready() == ()
    assert scheduler.is_active()
    scheduler.done("b")
    assert not scheduler.is_active()
    assert scheduler.pending() == ("c", "d")
    assert scheduler.skipped == {}


def test_isolate_skips_what_depends_on_the_failure_and_runs_the_rest(diamond: Graph) -> None:
    scheduler = diamond.scheduler(max_parallel=2, on_failure="isolate")
    assert scheduler.get_ready() == ("a", "e")
    scheduler.done("a")
    assert scheduler.get_ready() == ("b",)
    assert scheduler.failed("b") == ("d", "f", "g", "h")
    assert scheduler.skipped == {"d": "b", "f": "b", "g": "b", "h": "b"}
    assert not scheduler.stopped
    assert scheduler.get_ready() == ("c",)
    scheduler.done("c")
    scheduler.done("e")
    assert scheduler.get_ready() == ()
    assert not scheduler.is_active()
    assert scheduler.pending() == ()


def test_isolate_names_the_first_failure_a_unit_was_skipped_for() -> None:
    graph = build([n("a", 0, 0), n("b", 0, 1), n("c", 0, 2, "a", "b")])
    scheduler = graph.scheduler(max_parallel=2, on_failure="isolate")
    scheduler.get_ready()
    assert scheduler.failed("b") == ("c",)
    assert scheduler.failed("a") == ()
    assert scheduler.skipped == {"c": "b"}
    assert not scheduler.is_active()


def test_a_skipped_unit_skips_what_requires_it_but_not_the_next_stage() -> None:
    graph = build([n("topic", 0, 0), n("fill", 0, 1, "topic"), n("more", 0, 2, "fill"),
                   n("other", 0, 3), n("later", 1, 0), n("uses", 1, 1, "more")])
    scheduler = graph.scheduler(max_parallel=4)
    assert scheduler.get_ready() == ("topic", "other")
    assert scheduler.skip("topic") == ("fill", "more", "uses")
    assert scheduler.get_ready() == ()
    scheduler.done("other")
    assert scheduler.get_ready() == ("later",)
    scheduler.done("later")
    assert not scheduler.is_active()
    assert scheduler.skipped == {"fill": "topic", "more": "topic", "uses": "topic"}


def test_only_a_running_unit_can_be_reported_once() -> None:
    scheduler = build([n("a"), n("b", 0, 1)]).scheduler()
    with pytest.raises(ValueError, match="'a' is not running"):
        scheduler.done("a")
    assert scheduler.get_ready() == ("a",)
    scheduler.done("a")
    with pytest.raises(ValueError, match="'a' is not running"):
        scheduler.failed("a")
    with pytest.raises(KeyError):
        scheduler.skip("nope")


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "2"])
def test_limits_must_be_whole_numbers_from_one(limit: object) -> None:
    graph = build([n("a")])
    with pytest.raises(ValueError, match="max_parallel must be a whole number >= 1"):
        graph.scheduler(max_parallel=limit)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage 0 max_parallel must be"):
        graph.scheduler(stage_max_parallel={0: limit})  # type: ignore[dict-item]


def test_an_unknown_failure_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="on_failure must be 'stop' or 'isolate'"):
        build([n("a")]).scheduler(on_failure="carry-on")  # type: ignore[arg-type]


# -- random graphs: every order valid, every run complete -------------------------------------


def random_nodes(rng: random.Random, count: int, stages: int) -> list[Node]:
    """Acyclic requirements (on earlier-made units, same or earlier stage), orders shuffled
    within each stage so that many requirements run against the linear order."""
    per = max(1, count // stages)
    orders = list(range(count))
    for start in range(0, count, per):
        block = orders[start:start + per]
        rng.shuffle(block)
        orders[start:start + per] = block
    return [Node(f"u{i}", min(i // per, stages - 1), orders[i],
                 tuple(f"u{j}" for j in rng.sample(range(i), rng.randint(0, min(3, i)))),
                 f"u{i}.yaml:1")
            for i in range(count)]


def check_order(nodes: list[Node], order: tuple[str, ...]) -> None:
    position = {unit: at for at, unit in enumerate(order)}
    assert sorted(position) == sorted(node.id for node in nodes)
    for node in nodes:
        for target in node.requires:
            assert position[target] < position[node.id], (node.id, target)
    stages = sorted({node.stage for node in nodes})
    for before, after in itertools.pairwise(stages):
        assert max(position[x.id] for x in nodes if x.stage == before) < min(
            position[x.id] for x in nodes if x.stage == after)


@pytest.mark.parametrize("seed", range(8))
def test_random_graphs_order_validly_and_schedule_completely(seed: int) -> None:
    rng = random.Random(seed)
    nodes = random_nodes(rng, 200, 4)
    graph = build(nodes)
    check_order(nodes, graph.order())
    # The order is the greedy one: at each step, the earliest unit (linear order) whose
    # requirements are all placed.
    placed: set[str] = set()
    rank = {unit: at for at, unit in enumerate(graph.ids)}
    members = {stage: {x.id for x in nodes if x.stage == stage} for stage in graph.stages}
    for unit in graph.order():
        ready = [node.id for node in nodes if node.id not in placed
                 and placed.issuperset(node.requires)
                 and all(placed.issuperset(members[s]) for s in members if s < node.stage)]
        assert unit == min(ready, key=rank.__getitem__)
        placed.add(unit)
    # A run at random parallelism, units finishing in random order.
    scheduler = graph.scheduler(max_parallel=rng.randint(1, 6))
    finished: list[str] = []
    running: list[str] = []
    while scheduler.is_active():
        for unit in scheduler.get_ready():
            assert all(target in finished for target in graph.node(unit).requires)
            running.append(unit)
        assert running
        unit = running.pop(rng.randrange(len(running)))
        scheduler.done(unit)
        finished.append(unit)
    check_order(nodes, tuple(finished))
    # Compensation of everything is a valid order of the reversed graph.
    undo = graph.compensation_order(finished)
    check_order(nodes, tuple(reversed(undo)))


def test_random_graphs_with_requirements_along_the_linear_order_keep_it() -> None:
    rng = random.Random(99)
    nodes = [Node(f"u{i}", i // 50, i, tuple(f"u{j}" for j in rng.sample(range(i), min(i, 2))),
                  "x:1") for i in range(300)]
    graph = build(nodes)
    assert graph.linear
    assert graph.order() == tuple(f"u{i}" for i in range(300))
    assert drain(graph.scheduler()) == [(f"u{i}",) for i in range(300)]
