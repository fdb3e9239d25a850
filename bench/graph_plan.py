"""What planning a workflow graph costs: build (check every requirement), order, and a whole
scheduled run, for large random graphs.

    python bench/graph_plan.py [--nodes N] [--rounds N] [--seed N]

Cases (each prints its node count, explicit edges and stages):

- **linear**: ``--nodes`` units in 10 stages, each requiring 0 to 3 random earlier units
  (earlier in the linear order). The linear order stays valid, so ``order()`` is it.
- **shuffled**: the same requirements, but each stage's ``order`` values shuffled, so many
  requirements point against the linear order: the order comes from graphlib, and the cycle
  check runs. Goal for both: build + order < 1 s at 10,000 units.
- **width 10**: 1,000 units, 100 layers of 10; each unit requires 1 to 3 units of the layer
  before (one stage, ``order`` = layer). Also a scheduled run with ``max_parallel`` 10: how
  many rounds of ``get_ready`` it takes (100 is the ideal).

A figure is the best and the median of ``--rounds`` runs, in process, garbage collection on.
Nothing asserts: the script prints.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from _measure import environment

from flamingock_es.definition.graph import Graph, Node, build

GOAL = 1.0


def random_dag(count: int, stages: int, rng: random.Random, *, shuffle: bool) -> list[Node]:
    """``count`` units in ``stages`` equal stages, each requiring up to 3 earlier ones."""
    per_stage = max(1, count // stages)
    orders = list(range(count))
    if shuffle:
        for start in range(0, count, per_stage):
            block = orders[start:start + per_stage]
            rng.shuffle(block)
            orders[start:start + per_stage] = block
    nodes = []
    for i in range(count):
        wanted = rng.randint(0, min(3, i))
        requires = tuple(f"u{j}" for j in sorted(rng.sample(range(i), wanted)))
        nodes.append(Node(f"u{i}", min(i // per_stage, stages - 1), orders[i], requires,
                          f"changes/u{i}.yaml:1"))
    return nodes


def layered(layers: int, width: int, rng: random.Random) -> list[Node]:
    nodes = []
    for layer in range(layers):
        for k in range(width):
            requires: tuple[str, ...] = ()
            if layer:
                picked = rng.sample(range(width), rng.randint(1, 3))
                requires = tuple(f"l{layer - 1}.{j}" for j in sorted(picked))
            nodes.append(Node(f"l{layer}.{k}", 0, layer, requires, f"changes/l{layer}.yaml:{k}"))
    return nodes


def timed(rounds: int, work: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return min(samples), statistics.median(samples)


def plan(nodes: list[Node]) -> Graph:
    graph = build(nodes)
    graph.order()
    return graph


def run(graph: Graph, max_parallel: int) -> int:
    """A whole run where every unit succeeds at once; returns the rounds of get_ready."""
    scheduler = graph.scheduler(max_parallel=max_parallel)
    rounds = 0
    while scheduler.is_active():
        ready = scheduler.get_ready()
        rounds += 1
        for unit in ready:
            scheduler.done(unit)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(environment())
    print(f"seed {args.seed}, {args.rounds} rounds; figures: best (median)\n")
    print(f"{'case':<34}{'units':>7}{'edges':>8}{'stages':>7}  {'build':>16}  "
          f"{'build + order':>16}  {'scheduled run':>16}  goal")
    cases = [
        ("linear, up to 3 requires", random_dag(args.nodes, 10, rng, shuffle=False), 1),
        ("shuffled orders, up to 3 requires", random_dag(args.nodes, 10, rng, shuffle=True), 1),
        ("width 10 (100 x 10)", layered(100, 10, rng), 10),
    ]
    for name, nodes, parallel in cases:
        graph = plan(nodes)
        edges = len(graph.edges())
        build_best, build_median = timed(args.rounds, partial(build, nodes))
        best, median = timed(args.rounds, partial(plan, nodes))
        run_best, run_median = timed(args.rounds, partial(run, graph, parallel))
        verdict = "PASS" if best < GOAL else "FAIL"
        goal = f"< {GOAL:.0f} s {verdict}" if len(nodes) >= 10_000 else ""
        print(f"{name:<34}{len(nodes):>7}{edges:>8}{len(graph.stages):>7}  "
              f"{build_best * 1e3:7.1f} ({build_median * 1e3:5.1f}) ms  "
              f"{best * 1e3:7.1f} ({median * 1e3:5.1f}) ms  "
              f"{run_best * 1e3:7.1f} ({run_median * 1e3:5.1f}) ms  {goal}")
        if parallel > 1:
            print(f"{'':<34}max_parallel {parallel}: {run(graph, parallel)} rounds of "
                  f"get_ready for {len(nodes)} units; linear order kept: "
                  f"{graph.order() == graph.ids}")
        else:
            print(f"{'':<34}order() is the linear order: {graph.order() == graph.ids}")


if __name__ == "__main__":
    main()
