"""A workflow's units as a dependency graph: stages in order, plus the ``requires`` users write.

Why a graph at all: a straight line of stages forces every unit to wait for the one before it,
even when they touch unrelated things. ``requires`` says what really has to come first, so
independent units can run side by side (``max_parallel``) and a failure can be contained to
what depends on it.

Why stages still matter: they are ordered groups. Every unit of stage *k* comes after every
unit of the stages before it, whatever ``requires`` says; requirements only add edges. A
requirement on a unit of a *later* stage contradicts that and is refused.

Why the order is "linear first": today's workflows have no ``requires`` and run stage by
stage, ``order`` within a stage, one at a time. :meth:`Graph.order` returns exactly that order
whenever it is a valid topological order, so nothing changes for them; only when a
requirement points against it does the order move, and then as little as possible (among the
units that may go next, the one earliest in the linear order goes first).

The linear order ranks units by ``(stage, order)``; units of one stage that share an ``order``
keep the order they were given in (as :class:`~flamingock_es.definition.workflow.Stage` sorts them
today), so pass the nodes in the workflow's execution order. That rank, unique per unit, is
also the order in which :class:`Scheduler` hands out ready units.

The ordering itself is :class:`graphlib.TopologicalSorter`'s; this module only picks among
what it says is ready. The stage barrier is a virtual node per stage boundary (it requires
every unit of the stage before; every unit of the stage after requires it), so a stage of
*a* units followed by one of *b* costs *a + b* edges, not *a x b*.

Pure: no I/O, plain inputs (:class:`Node`), so the loader, planner and runner can use it as
they see fit.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FailurePolicy",
    "Graph",
    "GraphError",
    "Node",
    "Scheduler",
    "build",
]

FailurePolicy = Literal["stop", "isolate"]
"""What :meth:`Scheduler.failed` does: ``stop`` hands out nothing more (today's behaviour);
``isolate`` skips what depends on the failure and keeps scheduling everything else."""

_MAX_CYCLES = 20
"""Cycles reported at most by one :func:`build`: past that, fixing the first ones comes first."""


@dataclass(frozen=True, slots=True)
class Node:
    """One ChangeUnit as the graph sees it.

    ``stage`` is the index of its stage in the workflow (any integers; only their order
    counts), ``order`` its ``order`` field, ``requires`` the ids it names, ``source`` where it
    is defined (``file:line``), for messages.
    """

    id: str
    stage: int
    order: int
    requires: tuple[str, ...] = ()
    source: str = "<unknown>"


class GraphError(ValueError):
    """The requirements do not form a valid graph; ``problems`` lists each one, sorted.

    The message is meant for the user as it is: every problem on its own line, each naming the
    units involved and where they are defined.
    """

    def __init__(self, problems: Sequence[str], note: str = "") -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            listed = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{len(self.problems)} problems with the units' requirements:\n{listed}"
        super().__init__(f"{message}\n{note}" if note else message)


def _source_key(source: str) -> tuple[str, int]:
    """``file:line`` sorted as a person reads it: by file, then by line number."""
    path, _, line = source.rpartition(":")
    if path and line.isdigit():
        return (path, int(line))
    return (source, -1)


def _stage_name(stage: int, names: Mapping[int, str]) -> str:
    name = names.get(stage)
    return f"stage {stage} ({name!r})" if name else f"stage {stage}"


def build(nodes: Iterable[Node], *, stage_names: Mapping[int, str] | None = None) -> Graph:
    """Check the nodes' requirements and return their :class:`Graph`.

    Refuses, with every problem at once (a :class:`GraphError`): a duplicate id, a requirement
    naming no unit (with the closest id, if one is close), a unit requiring itself, a
    requirement on a unit of a later stage, and each cycle, named in order with where each of
    its units is defined. ``stage_names`` (stage index to name) only makes messages clearer.
    """
    names = dict(stage_names or {})
    given = list(nodes)
    ranked = sorted(range(len(given)), key=lambda i: (given[i].stage, given[i].order, i))
    ordered = tuple(given[i] for i in ranked)
    index: dict[str, int] = {}
    problems: list[tuple[tuple[str, int], str]] = []

    def problem(source: str, text: str) -> None:
        problems.append((_source_key(source), text))

    for rank, node in enumerate(ordered):
        first = index.setdefault(node.id, rank)
        if first != rank:
            problem(node.source, f"{node.source}: duplicate unit id {node.id!r}, already "
                                 f"defined at {ordered[first].source}; ids are unique in a "
                                 f"workflow, so rename one of them")
    requires: list[tuple[int, ...]] = []
    backward = False
    known: list[str] | None = None
    for rank, node in enumerate(ordered):
        wanted: dict[int, None] = {}
        for target in node.requires:
            at = index.get(target)
            if at is None:
                if known is None:
                    known = sorted(index)
                import difflib  # only for this message: every run loads this module

                close = difflib.get_close_matches(target, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problem(node.source, f"{node.source}: unit {node.id!r} requires {target!r}, "
                                     f"which is not a unit of this workflow{hint}")
            elif at == rank or target == node.id:
                problem(node.source, f"{node.source}: unit {node.id!r} requires itself; "
                                     f"remove {node.id!r} from its requires")
            elif ordered[at].stage > node.stage:
                other = ordered[at]
                problem(node.source,
                        f"{node.source}: unit {node.id!r} in {_stage_name(node.stage, names)} "
                        f"requires {other.id!r} ({other.source}) in "
                        f"{_stage_name(other.stage, names)}, a later stage; stages run in "
                        f"order, so move {other.id!r} to an earlier stage or {node.id!r} to "
                        f"a later one")
            else:
                wanted[at] = None
                backward = backward or at > rank
        requires.append(tuple(wanted))
    cycles = _cycles(requires) if backward else []
    for cycle in cycles:
        units = [ordered[i] for i in cycle]
        path = " -> ".join(unit.id for unit in [*units, units[0]])
        where = ", ".join(f"{unit.id!r} at {unit.source}" for unit in units)
        problem(units[0].source, f"{units[0].source}: requirements form a cycle {path} "
                                 f"(each requires the next): {where}; remove one of "
                                 f"these requirements")
    if problems:
        note = ""
        if len(cycles) == _MAX_CYCLES:
            note = (f"(only the first {_MAX_CYCLES} cycles are listed; there may be more "
                    f"once these are fixed)")
        raise GraphError([text for _, text in sorted(problems)], note)
    return Graph(ordered, index, tuple(requires), linear=not backward)


def _cycles(requires: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Cycles among the requirements, each as ``[a, b, c]`` for ``a -> b -> c -> a``.

    :class:`graphlib.CycleError` names one cycle; to name more, one requirement of it is
    dropped and the search runs again, up to :data:`_MAX_CYCLES`. Each cycle starts at its
    unit earliest in the linear order, so the message does not depend on where the search
    happened to enter it.
    """
    edges = [list(targets) for targets in requires]
    found: list[list[int]] = []
    while len(found) < _MAX_CYCLES:
        sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
        for unit, targets in enumerate(edges):
            sorter.add(unit, *targets)
        try:
            sorter.prepare()
        except graphlib.CycleError as error:
            # graphlib lists predecessor before successor, first node repeated at the end:
            # reversed, each unit requires the next.
            members: list[int] = list(reversed(error.args[1][:-1]))
            start = members.index(min(members))
            cycle = members[start:] + members[:start]
            found.append(cycle)
            edges[cycle[-1]].remove(cycle[0])
        else:
            break
    return found


class Graph:
    """The checked graph of a workflow's units (made by :func:`build`, not directly).

    Units are known by id; ``ids`` is the linear order (stage by stage, ``order`` within a
    stage). "Dependents" and "requirements" are transitive; with ``stages=True`` (the default)
    they include what the stage order implies (every unit of a later stage depends on every
    unit of an earlier one), with ``stages=False`` only what ``requires`` says.
    """

    __slots__ = ("_dependents", "_index", "_order", "_requires", "_stage_bounds", "_stage_of",
                 "linear", "nodes")

    def __init__(self, nodes: tuple[Node, ...], index: dict[str, int],
                 requires: tuple[tuple[int, ...], ...], *, linear: bool) -> None:
        self.nodes = nodes
        """In the linear order."""
        self.linear = linear
        """Whether every requirement agrees with the linear order (then ``order()`` is it)."""
        self._index = index
        self._requires = requires
        self._dependents: list[list[int]] = [[] for _ in nodes]
        for unit, targets in enumerate(requires):
            for target in targets:
                self._dependents[target].append(unit)
        # Stages are contiguous runs of the linear order: (start, end) of each, and each
        # unit's position in that list.
        self._stage_of: list[int] = []
        self._stage_bounds: list[tuple[int, int]] = []
        for rank, node in enumerate(nodes):
            bounds = self._stage_bounds
            if not bounds or nodes[bounds[-1][0]].stage != node.stage:
                bounds.append((rank, rank + 1))
            else:
                bounds[-1] = (bounds[-1][0], rank + 1)
            self._stage_of.append(len(bounds) - 1)
        self._order: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"<Graph of {len(self.nodes)} units, {len(self._stage_bounds)} stages>"

    # -- looking things up ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._index

    @property
    def ids(self) -> tuple[str, ...]:
        """Every unit id, in the linear order."""
        return tuple(node.id for node in self.nodes)

    @property
    def stages(self) -> tuple[int, ...]:
        """The stage indexes that have units, in order."""
        return tuple(self.nodes[start].stage for start, _ in self._stage_bounds)

    def node(self, unit_id: str) -> Node:
        """The node of ``unit_id`` (``KeyError`` if it is not a unit of the graph)."""
        return self.nodes[self._rank(unit_id)]

    def edges(self) -> tuple[tuple[str, str], ...]:
        """Every explicit requirement as ``(unit, required unit)``, in the linear order."""
        return tuple((self.nodes[unit].id, self.nodes[target].id)
                     for unit, targets in enumerate(self._requires) for target in targets)

    def _rank(self, unit_id: str) -> int:
        try:
            return self._index[unit_id]
        except KeyError:
            raise KeyError(f"{unit_id!r} is not a unit of this workflow") from None

    def _ids(self, ranks: Iterable[int]) -> tuple[str, ...]:
        return tuple(self.nodes[rank].id for rank in sorted(ranks))

    # -- order ------------------------------------------------------------------------------

    def order(self) -> tuple[str, ...]:
        """A topological order: the linear order when it is one, else the closest stable one.

        "Closest": whenever several units may go next, the one earliest in the linear order
        goes, so a unit moves only as far as a requirement forces it to.
        """
        if self._order is None:
            if self.linear:
                self._order = self.ids
            else:
                sorter = self._sorter()
                ready: list[int] = []
                result: list[int] = []
                while sorter.is_active():
                    for rank in sorter.get_ready():
                        if rank >= len(self.nodes):
                            sorter.done(rank)  # a stage barrier: nothing to run
                        else:
                            heapq.heappush(ready, rank)
                    if ready:
                        rank = heapq.heappop(ready)
                        result.append(rank)
                        sorter.done(rank)
                self._order = tuple(self.nodes[rank].id for rank in result)
        return self._order

    def _sorter(self) -> graphlib.TopologicalSorter[int]:
        """The graph for graphlib, prepared: units are their ranks, barrier *s* is ``n + s``.

        Barrier *s* (for stage *s* >= 1) requires every unit of stage *s - 1*; every unit of
        stage *s* requires it. Stages are contiguous in the linear order and never empty here.
        """
        count = len(self.nodes)
        sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
        for stage, (start, end) in enumerate(self._stage_bounds):
            if stage:
                previous = self._stage_bounds[stage - 1]
                sorter.add(count + stage, *range(*previous))
            for rank in range(start, end):
                if stage:
                    sorter.add(rank, count + stage, *self._requires[rank])
                else:
                    sorter.add(rank, *self._requires[rank])
        sorter.prepare()
        return sorter

    # -- reach ------------------------------------------------------------------------------

    def _reach(self, start: int, edges: Sequence[Sequence[int]],
               within: range | None = None) -> set[int]:
        """Ranks reachable from ``start`` along ``edges`` (``start`` excluded), staying inside
        ``within`` when given."""
        seen: set[int] = set()
        todo = [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen and (within is None or nxt in within):
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def dependents(self, unit_id: str, *, stages: bool = True) -> tuple[str, ...]:
        """Every unit that depends on ``unit_id``, directly or not, in the linear order."""
        rank = self._rank(unit_id)
        if not stages:
            return self._ids(self._reach(rank, self._dependents))
        start, end = self._stage_bounds[self._stage_of[rank]]
        same = self._reach(rank, self._dependents, range(start, end))
        return self._ids([*same, *range(end, len(self.nodes))])

    def requirements(self, unit_id: str, *, stages: bool = True) -> tuple[str, ...]:
        """Every unit that ``unit_id`` depends on, directly or not, in the linear order."""
        rank = self._rank(unit_id)
        if not stages:
            return self._ids(self._reach(rank, self._requires))
        start, end = self._stage_bounds[self._stage_of[rank]]
        same = self._reach(rank, self._requires, range(start, end))
        return self._ids([*range(start), *same])

    def compensation_order(self, applied_ids: Sequence[str]) -> tuple[str, ...]:
        """The order in which to undo ``applied_ids``: dependents before what they require.

        Dependence includes the stage order (a later stage is undone before an earlier one).
        Among units that could be undone next, the newest goes first; "newest" is the latest
        in ``applied_ids``, so pass them in the order they were applied.
        """
        position: dict[int, int] = {}
        for at, unit_id in enumerate(applied_ids):
            position[self._rank(unit_id)] = at
        if not position:
            return ()
        # The reverse graph, on graphlib: a unit "requires" its dependents to be undone
        # first. Units not applied pass straight through (they are only relays of
        # dependence); a stage boundary is a barrier node as in ``_sorter``.
        count = len(self.nodes)
        sorter: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
        bounds = self._stage_bounds
        for stage, (start, end) in enumerate(bounds):
            following = [count + stage + 1] if stage + 1 < len(bounds) else []
            if stage + 1 < len(bounds):
                sorter.add(count + stage + 1, *range(*bounds[stage + 1]))
            for rank in range(start, end):
                sorter.add(rank, *self._dependents[rank], *following)
        sorter.prepare()
        ready: list[tuple[int, int]] = []
        result: list[int] = []
        while sorter.is_active():
            relayed = False
            for rank in sorter.get_ready():
                if rank in position:
                    heapq.heappush(ready, (-position[rank], rank))
                else:
                    sorter.done(rank)
                    relayed = True
            if relayed:
                continue
            if ready:
                _, rank = heapq.heappop(ready)
                result.append(rank)
                sorter.done(rank)
        return tuple(self.nodes[rank].id for rank in result)

    def scheduler(self, *, max_parallel: int = 1,
                  stage_max_parallel: Mapping[int, int] | None = None,
                  on_failure: FailurePolicy = "stop") -> Scheduler:
        """A :class:`Scheduler` over this graph (see there)."""
        return Scheduler(self, max_parallel=max_parallel,
                         stage_max_parallel=stage_max_parallel, on_failure=on_failure)


class Scheduler:
    """Hands out the units that may start now, as the previous ones finish.

    A thin layer over :class:`graphlib.TopologicalSorter` (``get_ready`` / ``done``) that adds
    what a run needs: at most ``max_parallel`` units running at once in the workflow and at
    most ``stage_max_parallel[stage]`` in a stage; ready units handed out in the linear order
    (so with ``max_parallel=1`` and no requirements against it, exactly today's order); and
    what happens to the rest when a unit fails or is skipped:

    - :meth:`failed` under ``stop`` (the default) hands out nothing more; what is running
      still reports back. Under ``isolate`` it skips every unit that depends on the failure,
      the later stages included (they come after it), and keeps scheduling the rest.
    - :meth:`skip` (a unit whose ``when:`` is false) lets the graph go on, but skips the units
      that require it, directly or not: they need what it would have done. The stage order is
      not a reason to skip: a later stage still runs. On a later run the skipped unit is
      looked at again, and the units it held back with it, in order.

    ``skipped`` says which unit was skipped because of which failure or skip. Not thread-safe:
    call it from the thread that runs the workflow.
    """

    def __init__(self, graph: Graph, *, max_parallel: int = 1,
                 stage_max_parallel: Mapping[int, int] | None = None,
                 on_failure: FailurePolicy = "stop") -> None:
        limits = dict(stage_max_parallel or {})
        for name, value in [("max_parallel", max_parallel),
                            *((f"stage {stage} max_parallel", limit)
                              for stage, limit in limits.items())]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
        if on_failure not in ("stop", "isolate"):
            raise ValueError(f"on_failure must be 'stop' or 'isolate', not {on_failure!r}")
        self._graph = graph
        self._max = max_parallel
        self._stage_limit = [min(max_parallel, limits.get(graph.nodes[start].stage,
                                                          max_parallel))
                             for start, _ in graph._stage_bounds]
        self._policy: FailurePolicy = on_failure
        self._sorter = graph._sorter()
        self._ready: list[int] = []
        self._running: dict[int, int] = {}
        self._stage_running = [0] * len(graph._stage_bounds)
        self._skipped: dict[int, int] = {}
        self._finished: set[int] = set()
        self._stopped = False

    @property
    def running(self) -> tuple[str, ...]:
        """The units handed out and not yet reported back, in the linear order."""
        return self._graph._ids(self._running)

    @property
    def skipped(self) -> dict[str, str]:
        """Each unit skipped so far, with the failed or skipped unit that caused it."""
        nodes = self._graph.nodes
        return {nodes[rank].id: nodes[cause].id for rank, cause in sorted(self._skipped.items())}

    @property
    def stopped(self) -> bool:
        """A unit failed under ``stop``: nothing more is handed out."""
        return self._stopped

    def pending(self) -> tuple[str, ...]:
        """The units neither handed out nor skipped (after a stop: those that will not run)."""
        done = self._finished | self._skipped.keys() | self._running.keys()
        return self._graph._ids(rank for rank in range(len(self._graph.nodes))
                                if rank not in done)

    def is_active(self) -> bool:
        """Whether anything is left to hand out or to hear back from."""
        self._pull()
        if self._running:
            return True
        return not self._stopped and self._sorter.is_active()

    def get_ready(self) -> tuple[str, ...]:
        """The units that may start now, within the parallel limits, in the linear order.

        Each unit is handed out once; call again after :meth:`done`, :meth:`failed` or
        :meth:`skip` for the next ones.
        """
        self._pull()
        if self._stopped:
            return ()
        handed: list[int] = []
        held: list[int] = []
        while self._ready and len(self._running) < self._max:
            rank = heapq.heappop(self._ready)
            stage = self._graph._stage_of[rank]
            if self._stage_running[stage] >= self._stage_limit[stage]:
                held.append(rank)
                continue
            self._running[rank] = stage
            self._stage_running[stage] += 1
            handed.append(rank)
        for rank in held:
            heapq.heappush(self._ready, rank)
        return tuple(self._graph.nodes[rank].id for rank in handed)

    def done(self, unit_id: str) -> None:
        """``unit_id`` finished (applied): what waited for it may start."""
        self._finish(self._take(unit_id))

    def failed(self, unit_id: str) -> tuple[str, ...]:
        """``unit_id`` failed; returns the units skipped because of it (none under ``stop``)."""
        rank = self._take(unit_id)
        if self._policy == "stop":
            self._stopped = True
            self._finished.add(rank)
            return ()
        graph = self._graph
        start, end = graph._stage_bounds[graph._stage_of[rank]]
        same = graph._reach(rank, graph._dependents, range(start, end))
        skipped = self._mark([*same, *range(end, len(graph.nodes))], rank)
        self._finish(rank)
        return skipped

    def skip(self, unit_id: str) -> tuple[str, ...]:
        """``unit_id`` was not run (its condition is false); returns the units skipped with it:
        those that require it, directly or not (the stage order alone skips nothing)."""
        rank = self._take(unit_id)
        skipped = self._mark(self._graph._reach(rank, self._graph._dependents), rank)
        self._finish(rank)
        return skipped

    def _take(self, unit_id: str) -> int:
        rank = self._graph._rank(unit_id)
        stage = self._running.pop(rank, None)
        if stage is None:
            raise ValueError(f"{unit_id!r} is not running: only a unit handed out by "
                             f"get_ready() can be reported, once")
        self._stage_running[stage] -= 1
        return rank

    def _finish(self, rank: int) -> None:
        self._finished.add(rank)
        self._sorter.done(rank)

    def _mark(self, ranks: Iterable[int], cause: int) -> tuple[str, ...]:
        """Skip those of ``ranks`` not already finished, skipped or running, for ``cause``.

        None of them can be waiting in the ready heap: each depends on ``cause``, which has
        only just finished, so graphlib has not handed any of them over yet.
        """
        fresh = sorted(rank for rank in ranks if rank not in self._skipped
                       and rank not in self._finished and rank not in self._running)
        for rank in fresh:
            self._skipped[rank] = cause
        return tuple(self._graph.nodes[rank].id for rank in fresh)

    def _pull(self) -> None:
        """Take what graphlib says is ready: barriers and skipped units are passed at once."""
        count = len(self._graph.nodes)
        while True:
            passed = False
            for rank in self._sorter.get_ready():
                if rank >= count or rank in self._skipped:
                    self._sorter.done(rank)
                    passed = True
                else:
                    heapq.heappush(self._ready, rank)
            if not passed:
                return
