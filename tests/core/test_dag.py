"""DAG analysis: hand-checked small plans, and agreement with networkx on random ones."""

from __future__ import annotations

import random

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import dag
from core.plan import Plan, Task


def plan_of(edges: dict[str, str]) -> Plan:
    """A plan from ``{"task": "dep dep"}`` in insertion order."""
    return Plan(tuple(Task(t, deps=tuple(d.split())) for t, d in edges.items()))


DIAMOND = plan_of({"a": "", "b": "a", "c": "a", "d": "b c", "e": ""})


def test_generations_depth_width() -> None:
    assert dag.generations(DIAMOND) == [["a", "e"], ["b", "c"], ["d"]]
    assert dag.depth(DIAMOND) == 3
    assert dag.width(DIAMOND) == 2


def test_generations_when_deps_point_forward() -> None:
    plan = plan_of({"d": "b c", "c": "a", "b": "a", "a": ""})
    assert dag.generations(plan) == [["a"], ["c", "b"], ["d"]]
    assert dag.find_cycle(plan) is None


def test_empty_plan() -> None:
    empty = Plan(())
    assert dag.generations(empty) == []
    assert dag.depth(empty) == 0 and dag.width(empty) == 0
    assert dag.critical_path(empty) == [] and dag.remaining_path_lengths(empty) == {}
    assert dag.find_cycle(empty) is None


def test_critical_path_unit_and_weighted() -> None:
    assert dag.critical_path(DIAMOND) == ["a", "b", "d"]  # tie b/c: first listed dep
    assert dag.critical_path(DIAMOND, {"a": 1, "b": 1, "c": 5, "d": 1, "e": 1}) == ["a", "c", "d"]
    # d has no duration: it weighs the mean of the known ones (3.25), so the
    # chain a-b-d weighs 5.25 and e alone (10) is heavier.
    assert dag.critical_path(DIAMOND, {"a": 1, "b": 1, "c": 1, "e": 10}) == ["e"]
    assert dag.critical_path(DIAMOND, {"a": 1, "b": 1, "c": 1, "e": 3}) == ["a", "b", "d"]


def test_remaining_path_lengths() -> None:
    assert dag.remaining_path_lengths(DIAMOND) == {"a": 3, "b": 2, "c": 2, "d": 1, "e": 1}
    weighted = dag.remaining_path_lengths(DIAMOND, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    assert weighted == {"a": 8, "b": 6, "c": 7, "d": 4, "e": 5}
    # the unit answer is cached, and a copy comes back each time
    first = dag.remaining_path_lengths(DIAMOND)
    first["a"] = 99
    assert dag.remaining_path_lengths(DIAMOND)["a"] == 3


def test_upstream_downstream() -> None:
    assert dag.upstream(DIAMOND, "d") == {"a", "b", "c"}
    assert dag.downstream(DIAMOND, "a") == {"b", "c", "d"}
    assert dag.upstream(DIAMOND, "e") == set() == dag.downstream(DIAMOND, "e")
    with pytest.raises(KeyError):
        dag.upstream(DIAMOND, "zz")


def test_find_cycle_in_edge_order_starting_at_the_first_task() -> None:
    plan = plan_of({"x": "", "c": "b", "a": "c x", "b": "a", "y": "a"})
    assert dag.find_cycle(plan) == ["c", "a", "b", "c"]
    assert dag.generations(plan) == [["x"]]  # the cycle and what waits on it are left out


def test_disjoint_cycles_are_all_found() -> None:
    plan = plan_of({"a": "b", "b": "a", "c": "a", "d": "e", "e": "d"})
    index = dag.create_index(plan)
    assert [[index.ids[i] for i in c] for c in index.cycles] == [["a", "b", "a"], ["d", "e", "d"]]


def test_missing_self_and_repeated_deps_are_ignored() -> None:
    plan = plan_of({"a": "a zz", "b": "a a"})
    assert dag.create_index(plan).edges == 1
    assert dag.generations(plan) == [["a"], ["b"]]


def test_build_graph_is_frozen_and_cached() -> None:
    graph = dag.build_graph(DIAMOND)
    assert list(graph.nodes) == ["a", "b", "c", "d", "e"]
    assert set(graph.edges) == {("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")}
    assert graph.nodes["d"]["task"] is DIAMOND.task("d")
    assert nx.is_frozen(graph) and dag.build_graph(DIAMOND) is graph
    with pytest.raises(nx.NetworkXError):
        graph.add_edge("e", "a")


def random_plan(rng: random.Random, n: int, forward: bool) -> Plan:
    """A random DAG; with ``forward`` its rows are shuffled so deps may come later."""
    tasks = [
        Task(f"t{i}", deps=tuple(f"t{rng.randrange(i)}" for _ in range(min(i, rng.randint(0, 3)))))
        for i in range(n)
    ]
    if forward:
        rng.shuffle(tasks)
    return Plan(tuple(tasks))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60), forward=st.booleans())
def test_agrees_with_networkx(seed: int, n: int, forward: bool) -> None:
    plan = random_plan(random.Random(seed), n, forward)
    graph = dag.build_graph(plan)
    assert dag.find_cycle(plan) is None
    assert [sorted(g) for g in dag.generations(plan)] == [
        sorted(g) for g in nx.topological_generations(graph)
    ]
    assert dag.width(plan) == max((len(g) for g in nx.topological_generations(graph)), default=0)
    path = dag.critical_path(plan)
    if n:
        assert len(path) == nx.dag_longest_path_length(graph) + 1
        assert all(graph.has_edge(u, v) for u, v in zip(path, path[1:], strict=False))
    rng = random.Random(seed + 1)
    weights = {t.id: float(rng.randint(1, 9)) for t in plan}
    heavy = dag.critical_path(plan, weights)
    if n:
        # Node weights as edge weights: from a super-source to every task, and
        # along each edge the weight of the task it enters.
        weighted = nx.DiGraph()
        weighted.add_weighted_edges_from(((u, v, weights[v]) for u, v in graph.edges), "w")
        weighted.add_weighted_edges_from((("<s>", t, weights[t]) for t in weights), "w")
        assert sum(weights[t] for t in heavy) == nx.dag_longest_path_length(weighted, "w")
        assert all(graph.has_edge(u, v) for u, v in zip(heavy, heavy[1:], strict=False))
    remaining = dag.remaining_path_lengths(plan)
    for task in plan:
        below = graph.subgraph(nx.descendants(graph, task.id) | {task.id})
        assert remaining[task.id] == nx.dag_longest_path_length(below) + 1
    some = plan.tasks[n // 2].id if n else None
    if some is not None:
        assert dag.upstream(plan, some) == nx.ancestors(graph, some)
        assert dag.downstream(plan, some) == nx.descendants(graph, some)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 40))
def test_a_cycle_is_found_when_networkx_finds_one(seed: int, n: int) -> None:
    rng = random.Random(seed)
    tasks = [Task(f"t{i}", deps=tuple(f"t{rng.randrange(n)}" for _ in range(rng.randint(0, 2))))
             for i in range(n)]
    plan = Plan(tuple(tasks))
    graph = dag.build_graph(plan)
    cycle = dag.find_cycle(plan)
    assert (cycle is None) == nx.is_directed_acyclic_graph(graph)
    if cycle is not None:
        assert cycle[0] == cycle[-1] and len(set(cycle)) == len(cycle) - 1
        assert all(graph.has_edge(u, v) for u, v in zip(cycle, cycle[1:], strict=False))
