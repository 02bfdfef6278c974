"""DAG analysis of a plan: cycles, topological generations, critical path, reach.

Edges run from a dependency to the task that waits for it (``dep -> task``).

Departure from DESIGN.md ("core.dag (networkx ...)"): the whole-plan analyses
(cycle detection, generations, depth, width, critical path, remaining path
lengths, upstream/downstream) run on a compact integer index built once per
plan, not on a networkx graph: one pass in file order when every dependency
comes earlier in the file (the usual case: that order is then topological),
else Kahn's algorithm over list positions. Building a networkx ``DiGraph``
alone takes about 0.8 s per 100k tasks here (``bench/plan_import.py``), several
times the whole index, which would break the import targets of issue 2 (1M
tasks in under 10 s and 1.5 GB). networkx stays the interchange type:
:func:`build_graph` returns a frozen ``DiGraph`` for consumers that want its
algorithms or drawing, and the tests check every analysis here against
networkx on random DAGs.

Plans are immutable, so the index (and the graph) is cached on the plan
object itself, in its instance ``__dict__`` the way ``functools.cached_property``
does; the cache lives and dies with the plan. Plans built in code may name
missing dependencies: such edges are ignored here (``core.plan_io`` rejects
them at import).

networkx is imported only inside :func:`build_graph`, so ``tek validate`` and
the engine do not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx

    from core.plan import Plan

_INDEX_KEY = "_tek_dag_index"
_GRAPH_KEY = "_tek_dag_graph"


@dataclass(slots=True)
class DagIndex:
    """The plan's graph over task positions (plan order), built once per plan.

    Attributes:
        ids: task ids in plan order.
        pos: id -> position (the first task, should ids repeat).
        preds: per position, positions of its dependencies (file order, no
            repeats, no self-loops, missing ids left out).
        edges: number of edges.
        generations: layers of positions (each task one layer after its
            deepest dependency), each in plan order; tasks on or behind a
            cycle are in none of them.
        cycles: cycles found, each a list of positions in edge order with the
            first repeated at the end (up to ``max_cycles``, disjoint).
        level: per position, its generation (-1 on or behind a cycle).
    """

    ids: list[str]
    pos: dict[str, int]
    preds: list[list[int]]
    edges: int
    generations: list[list[int]]
    level: list[int]
    cycles: list[list[int]]
    _succs: list[list[int]] | None = None
    unit_remaining: list[float] | None = None

    @property
    def succs(self) -> list[list[int]]:
        """Per position, the positions waiting for it (built on first use)."""
        if self._succs is None:
            self._succs = _invert(self.preds)
        return self._succs


_NONE: list[int] = []


def _invert(preds: list[list[int]]) -> list[list[int]]:
    succs: list[list[int]] = [[] for _ in preds]
    for i, ps in enumerate(preds):
        for p in ps:
            succs[p].append(i)
    return succs


def _clean(found: Sequence[int | None], i: int) -> list[int]:
    """Drop missing ids (None), self-loops and repeats, keeping file order."""
    kept: list[int] = []
    for j in found:
        if j is not None and j != i and j not in kept:
            kept.append(j)
    return kept


def create_index(plan: Plan, *, max_cycles: int = 10) -> DagIndex:
    """Return the plan's cached :class:`DagIndex`, building it on first use.

    Args:
        plan: the plan.
        max_cycles: stop looking for more disjoint cycles after this many.

    Returns:
        The index (shared; do not mutate).
    """
    cached = plan.__dict__.get(_INDEX_KEY)
    if isinstance(cached, DagIndex):
        return cached
    ids = [t.id for t in plan.tasks]
    n = len(ids)
    # Reversed so that the first task wins should ids repeat (the reader
    # reports duplicates; here the first one is the one others depend on).
    pos = dict(zip(reversed(ids), range(n - 1, -1, -1), strict=True))
    get = pos.get
    preds: list[list[int]] = [_NONE] * n
    level = [0] * n
    level_of = level.__getitem__
    edges = 0
    backward = True
    for i, task in enumerate(plan.tasks):
        deps = task.deps
        if not deps:
            continue
        found = list(map(get, deps))
        if None in found or i in found or (len(found) > 1 and len(set(found)) < len(found)):
            # Missing ids, self-loops and repeats are the reader's to report;
            # here they would only make a task wait for itself or count twice.
            mine = _clean(found, i)
            if not mine:
                continue
        else:
            mine = found  # type: ignore[assignment]  # no None in it (no cast(): hot loop)
        preds[i] = mine
        edges += len(mine)
        # While every dependency so far comes earlier in the file, plan order
        # is a topological order: layers fall out of one pass, no Kahn needed.
        if backward:
            if max(mine) > i:
                backward = False
            else:
                level[i] = 1 + max(map(level_of, mine))
    cycles: list[list[int]] = []
    succs = None
    if backward:
        generations: list[list[int]] = [[] for _ in range(max(level, default=-1) + 1)]
        for i, lv in enumerate(level):
            generations[lv].append(i)
    else:
        succs = _invert(preds)
        generations, leftover = _kahn(preds, succs, range(n))
        cycles = _peel_cycles(preds, succs, leftover, max_cycles)
        level = [-1] * n
        for g, gen in enumerate(generations):
            for i in gen:
                level[i] = g
    index = DagIndex(ids, pos, preds, edges, generations, level, cycles, succs)
    plan.__dict__[_INDEX_KEY] = index
    return index


def _kahn(
    preds: list[list[int]], succs: list[list[int]], nodes: range | list[int]
) -> tuple[list[list[int]], list[int]]:
    """Layer ``nodes`` by Kahn's algorithm; return (generations, nodes left on cycles)."""
    member = None if isinstance(nodes, range) else set(nodes)
    indeg: dict[int, int] | list[int]
    if member is None:
        indeg = [len(p) for p in preds]
    else:
        indeg = {i: sum(1 for p in preds[i] if p in member) for i in nodes}
    current = [i for i in nodes if indeg[i] == 0]
    generations: list[list[int]] = []
    done = 0
    while current:
        generations.append(current)
        done += len(current)
        nxt: list[int] = []
        for i in current:
            for j in succs[i]:
                if member is not None and j not in member:
                    continue
                indeg[j] -= 1
                if indeg[j] == 0:
                    nxt.append(j)
        # Discovery order depends on edge order; plan order reads better and is stable.
        nxt.sort()
        current = nxt
    if done == len(nodes):
        return generations, []
    return generations, [i for i in nodes if indeg[i] > 0]


def _peel_cycles(
    preds: list[list[int]], succs: list[list[int]], leftover: list[int], max_cycles: int
) -> list[list[int]]:
    """Find up to ``max_cycles`` disjoint cycles among the nodes Kahn could not order."""
    cycles: list[list[int]] = []
    while leftover and len(cycles) < max_cycles:
        alive = set(leftover)
        # Every node left has a predecessor that is also left, so walking
        # backwards must revisit a node: the walk's tail from there is a cycle.
        seen: dict[int, int] = {}
        walk: list[int] = []
        node = leftover[0]
        while node not in seen:
            seen[node] = len(walk)
            walk.append(node)
            node = next(p for p in preds[node] if p in alive)
        back = walk[seen[node] :]
        cycle = back[::-1]
        # Start at the task that comes first in the file: stable, easy to find.
        first = cycle.index(min(cycle))
        cycle = cycle[first:] + cycle[:first]
        cycle.append(cycle[0])
        cycles.append(cycle)
        # Drop the cycle and re-layer the rest: what only waited on it frees up.
        on_cycle = set(back)
        rest = [i for i in leftover if i not in on_cycle]
        _, leftover = _kahn(preds, succs, rest)
    return cycles


def build_graph(plan: Plan) -> nx.DiGraph[str]:
    """The plan as a networkx ``DiGraph`` (edge dep -> task), frozen and cached.

    Args:
        plan: the plan.

    Returns:
        A frozen graph (``networkx.freeze``); ``.copy()`` it to modify. Nodes
        are task ids in plan order, with a ``task`` attribute.
    """
    cached = plan.__dict__.get(_GRAPH_KEY)
    if cached is not None:
        return cached
    import networkx as nx

    index = create_index(plan)
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from((t.id, {"task": t}) for t in plan.tasks)
    ids = index.ids
    graph.add_edges_from((ids[j], ids[i]) for i, ps in enumerate(index.preds) for j in ps)
    nx.freeze(graph)
    plan.__dict__[_GRAPH_KEY] = graph
    return graph


def find_cycle(plan: Plan) -> list[str] | None:
    """One dependency cycle, or None when the plan is acyclic.

    Args:
        plan: the plan.

    Returns:
        Ids in edge order with the first repeated at the end
        (``["a", "b", "c", "a"]``: a runs before b, b before c, c before a).
    """
    cycles = create_index(plan).cycles
    if not cycles:
        return None
    ids = create_index(plan).ids
    return [ids[i] for i in cycles[0]]


def generations(plan: Plan) -> list[list[str]]:
    """Topological generations: tasks whose deps are all in earlier ones.

    Each generation lists ids in plan order. Tasks on or behind a cycle are
    left out.
    """
    index = create_index(plan)
    ids = index.ids
    return [[ids[i] for i in gen] for gen in index.generations]


def depth(plan: Plan) -> int:
    """Number of generations (the longest chain, counted in tasks)."""
    return len(create_index(plan).generations)


def width(plan: Plan) -> int:
    """Size of the widest generation (0 for an empty plan)."""
    return max((len(g) for g in create_index(plan).generations), default=0)


def _weights(index: DagIndex, durations: Mapping[str, float] | None) -> list[float]:
    """Per-position weights: 1 each, or past durations (mean of known ones for the rest)."""
    n = len(index.ids)
    if durations is None:
        return [1.0] * n
    known = [float(durations[t]) for t in index.ids if t in durations]
    fallback = sum(known) / len(known) if known else 1.0
    return [float(durations.get(t, fallback)) for t in index.ids]


def critical_path(plan: Plan, durations: Mapping[str, float] | None = None) -> list[str]:
    """The longest chain of dependent tasks, first to last.

    Args:
        plan: the plan.
        durations: seconds per task id (past runs); tasks missing from it
            weigh the mean of the known ones. None: every task weighs 1.

    Returns:
        Ids from a source to a sink. Ties: the path ends at the earliest task
        in plan order, and steps back through the first-listed dependency.
        Empty for an empty plan.
    """
    index = create_index(plan)
    if not index.generations:
        return []
    preds = index.preds
    if durations is None:
        # Unit weights: the chain length of a task is its generation, so walk
        # back from the first task of the last generation through parents one
        # generation up; no pass over the whole plan.
        level = index.level
        node = index.generations[-1][0]
        path = [node]
        for g in range(len(index.generations) - 2, -1, -1):
            node = next(p for p in preds[node] if level[p] == g)
            path.append(node)
        return [index.ids[i] for i in reversed(path)]
    weight = _weights(index, durations)
    dist = [0.0] * len(index.ids)
    via = [-1] * len(index.ids)
    for gen in index.generations:
        for i in gen:
            ps = preds[i]
            if ps:
                # max() keeps the first of equals: ties go to the first listed dep.
                arg = max(ps, key=dist.__getitem__)
                dist[i] = dist[arg] + weight[i]
                via[i] = arg
            else:
                dist[i] = weight[i]
    end = max((i for gen in index.generations for i in gen), key=lambda i: (dist[i], -i))
    path = []
    while end != -1:
        path.append(end)
        end = via[end]
    return [index.ids[i] for i in reversed(path)]


def remaining_path_lengths(
    plan: Plan, durations: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Longest path from each task to any sink, counting the task itself.

    The engine orders ready tasks by it (critical path first).

    Args:
        plan: the plan.
        durations: as for :func:`critical_path`.

    Returns:
        id -> length (tasks on a cycle are absent).
    """
    index = create_index(plan)
    if durations is None and index.unit_remaining is not None:
        rem = index.unit_remaining
    else:
        weight = _weights(index, durations)
        rem = [0.0] * len(index.ids)
        rem_of = rem.__getitem__
        succs = index.succs
        for gen in reversed(index.generations):
            for i in gen:
                after = succs[i]
                rem[i] = weight[i] + max(map(rem_of, after)) if after else weight[i]
        if durations is None:
            index.unit_remaining = rem
    ids = index.ids
    if not index.cycles:
        return dict(zip(ids, rem, strict=True))
    return {ids[i]: rem[i] for gen in index.generations for i in gen}


def _reach(plan: Plan, task_id: str, *, forward: bool) -> set[str]:
    index = create_index(plan)
    start = index.pos[task_id]  # KeyError for an unknown id, like Plan.task
    edges = index.succs if forward else index.preds
    seen = {start}
    stack = [start]
    while stack:
        for j in edges[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    seen.discard(start)
    return {index.ids[i] for i in seen}


def upstream(plan: Plan, task_id: str) -> set[str]:
    """Every task ``task_id`` waits for, directly or not (not itself).

    Raises:
        KeyError: no task has this id.
    """
    return _reach(plan, task_id, forward=False)


def downstream(plan: Plan, task_id: str) -> set[str]:
    """Every task that waits for ``task_id``, directly or not (not itself).

    Raises:
        KeyError: no task has this id.
    """
    return _reach(plan, task_id, forward=True)
