"""DAG pane: pure layout (no Textual) and the DagView widget under Pilot."""

from __future__ import annotations

import re
from collections.abc import Sequence

import anyio
import pytest

from core.events import TaskInfo, TaskState
from tek_tui.widgets.dag_layout import (
    GenerationCounts,
    build_index,
    layout,
    neighbourhood,
)
from tek_tui.widgets.dag_view import MAX_DRAWN, DagView
from tests.tui.widget_host import SIZES, run_host, screen_text


def picture(tasks: Sequence[tuple[str, Sequence[str]]], width: int = 5) -> list[str]:
    """The drawing with each label written as its id (what the view overlays)."""
    index = build_index(tasks)
    drawing = layout(index, node_width=width)
    out = []
    for y, line in enumerate(drawing.lines):
        row = list(line)
        for node in drawing.rows[y]:
            x, _ = drawing.at[node]
            row[x : x + width] = index.ids[node].ljust(width)
        out.append("".join(row).rstrip())
    return out


def info(tasks: Sequence[tuple[str, Sequence[str]]]) -> list[TaskInfo]:
    return [TaskInfo(id=t, name=t, agent="noop", pool="noop", deps=tuple(d)) for t, d in tasks]


def layered(generations: int, width: int) -> list[tuple[str, list[str]]]:
    """A plan of ``generations`` x ``width`` tasks, each needing one or two of the previous generation."""
    out: list[tuple[str, list[str]]] = []
    for g in range(generations):
        for i in range(width):
            deps = [] if g == 0 else [f"t{g - 1}.{i}", f"t{g - 1}.{(i * 7 + 3) % width}"]
            out.append((f"t{g}.{i}", deps))
    return out


DIAMOND = [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])]

# ------------------------------------------------------------------ layout


class TestLayout:
    def test_generations_are_longest_paths(self) -> None:
        index = build_index([("a", []), ("b", ["a"]), ("c", ["a", "b"]), ("x", ["nowhere"])])
        assert index.generation == (0, 1, 2, 0)  # c waits for b, not just a; unknown dep ignored
        assert index.generations == ((0, 3), (1,), (2,))
        assert index.children[0] == (1, 2)

    def test_cycle_is_parked_not_fatal(self) -> None:
        index = build_index([("a", []), ("b", ["a", "c"]), ("c", ["b"])])
        assert index.generation == (0, 1, 1)
        assert len(layout(index).at) == 3

    def test_diamond(self) -> None:
        assert picture(DIAMOND) == [
            "a    ─┬─b    ─┬─d",
            "      └─c    ─┘",
        ]

    def test_chain_is_straight(self) -> None:
        assert picture([("a", []), ("b", ["a"]), ("c", ["b"])]) == ["a    ───b    ───c"]

    def test_sources_never_merge_with_other_edges(self) -> None:
        # a->c, a->e, b->d, b->f: b's stub must not run into a's line to e.
        lines = picture([("a", []), ("b", []), ("c", ["a"]), ("d", ["b"]), ("e", ["a"]), ("f", ["b"])])
        assert lines == [
            "a    ──┬─c",
            "b    ─┐└─e",
            "      ├──d",
            "      └──f",
        ]

    def test_long_edges_share_one_chain(self) -> None:
        # s feeds one task in each of 4 later generations: one chain, branching.
        tasks = [("s", []), ("x", ["s"]), ("y", ["x"]), ("z", ["y"])]
        tasks += [(f"t{i}", ["s", n]) for i, n in enumerate("xyz")]
        drawing = layout(build_index(tasks), node_width=5)
        assert drawing.height <= 4
        assert set(drawing.at) == set(range(7))
        assert all(len(line) == drawing.width for line in drawing.lines)

    def test_neighbourhood(self) -> None:
        index = build_index(layered(6, 4))
        centre = index.position["t3.0"]
        hood = {index.ids[v] for v in neighbourhood(index, centre, depth=1)}
        assert hood == {"t3.0", "t2.0", "t2.3", "t4.0", "t4.3"}  # t2.3 feeds t3.0; t3.0 feeds t4.3
        wide = neighbourhood(index, centre, depth=5, limit=4)
        assert len(wide) == 1 + 4 + 4
        assert len(layout(index, wide).at) == 9

    def test_generation_counts(self) -> None:
        index = build_index(layered(5, 4))
        counts = GenerationCounts(index)
        assert counts.set(index.position["t0.0"], TaskState.RUNNING)
        assert not counts.set(index.position["t0.0"], TaskState.RUNNING)
        assert counts.per_generation[0][TaskState.RUNNING] == 1
        assert counts.per_generation[0][TaskState.PENDING] == 3
        buckets = counts.buckets(2)
        assert [(first, last) for first, last, _ in buckets] == [(0, 2), (3, 4)]
        assert sum(buckets[0][2].values()) == 12

    def test_ten_thousand_index(self) -> None:
        index = build_index(layered(100, 100))
        assert len(index.generations) == 100
        assert all(len(g) == 100 for g in index.generations)


# ------------------------------------------------------------------ widget


@pytest.mark.parametrize("size", SIZES)
async def test_small_plan_drawn_with_symbols(size: tuple[int, int]) -> None:
    async with run_host(DagView, size) as (app, pilot, posted):
        view = app.query_one(DagView)
        view.set_tasks(info(DIAMOND))
        view.update_states({"a": TaskState.SUCCEEDED, "b": TaskState.RUNNING, "c": TaskState.FAILED})
        await pilot.pause()
        text = screen_text(app)
        assert not view.overview
        for label in ("✓ a", "● b", "✗ c", "○ d"):
            assert label in text
        assert "┬" in text and "┘" in text
        view.update_states({"d": TaskState.SKIPPED})
        await pilot.pause()
        assert "⤼ d" in screen_text(app)
        assert posted == []


@pytest.mark.parametrize("size", SIZES)
async def test_keys_move_between_nodes_and_post(size: tuple[int, int]) -> None:
    async with run_host(DagView, size) as (app, pilot, posted):
        view = app.query_one(DagView)
        view.set_tasks(info(DIAMOND))
        view.select("a")
        await pilot.pause()
        assert posted == []  # following another pane is silent
        await pilot.press("right")  # to a dependant
        assert view.selected == "b"
        await pilot.press("j")  # down the same generation
        assert view.selected == "c"
        await pilot.press("l")
        assert view.selected == "d"
        await pilot.press("h")  # back to the nearest dependency
        assert view.selected in ("b", "c")
        await pilot.press("k", "up", "left")
        await pilot.pause()
        ids = [m.task_id for m in posted if isinstance(m, DagView.TaskSelected)]
        assert ids[:3] == ["b", "c", "d"]
        assert view.selected == "a" and ids[-1] == "a"
        assert all(m.control is view for m in posted)


async def test_first_key_selects_when_nothing_is() -> None:
    async with run_host(DagView, (80, 24)) as (app, pilot, posted):
        view = app.query_one(DagView)
        view.set_tasks(info(DIAMOND))
        await pilot.press("down")
        assert view.selected == "a"
        assert [m.task_id for m in posted if isinstance(m, DagView.TaskSelected)] == ["a"]


async def test_scrolls_to_follow_selection() -> None:
    chain = [(f"step{i}", [f"step{i - 1}"] if i else []) for i in range(40)]
    async with run_host(DagView, (80, 24)) as (app, pilot, _):
        view = app.query_one(DagView)
        view.set_tasks(info(chain))
        await pilot.pause()
        assert view.virtual_size.width > 80
        view.select("step39")
        await pilot.pause()
        assert view.scroll_x > 0
        assert "○ step39" in screen_text(app)
        view.select("step0")
        await pilot.pause()
        assert view.scroll_x == 0


@pytest.mark.parametrize("size", SIZES)
async def test_big_plan_overview_and_neighbourhood(size: tuple[int, int]) -> None:
    tasks = info(layered(100, 100))  # 10,000 tasks
    async with run_host(DagView, size) as (app, pilot, posted):
        view = app.query_one(DagView)
        with anyio.fail_after(30):
            view.set_tasks(tasks)
            for g in range(5):
                view.update_states({t.id: TaskState.SUCCEEDED for t in tasks[: (g + 1) * 1000]})
                view.update_states({t.id: TaskState.RUNNING for t in tasks[(g + 1) * 1000 : (g + 1) * 1000 + 50]})
            view.update_states({t.id: t.state for t in tasks[9000:]})  # a full, unchanged mapping
            await pilot.pause()
        assert view.overview and len(tasks) > MAX_DRAWN
        text = screen_text(app)
        assert "10000 tasks, 100 generations" in text
        # Bars are grouped to a third of the height; the counts always add up.
        assert sum(int(n) for n in re.findall(r"✓(\d+)", text)) == 5000
        assert "●50" in text and "○" in text and "█" in text
        assert "select a task" in text
        view.select("t50.3")
        await pilot.pause()
        text = screen_text(app)
        assert "Around t50.3" in text
        assert "● t50.3" in text
        drawing = view.drawing
        assert drawing is not None and len(drawing.at) <= 1 + 24 + 24
        await pilot.press("right")
        assert view.selected is not None and view.selected.startswith("t51.")
        assert posted[-1].task_id == view.selected  # type: ignore[attr-defined]
        assert view.selected in {view._index.ids[v] for v in view.drawing.at}  # type: ignore[union-attr]


async def test_overview_bars_line_up_whatever_the_generation_labels() -> None:
    tasks = info(layered(1500, 1))  # "1-..." up to "1...-1500": labels of 5 to 9 cells
    async with run_host(DagView, (200, 50)) as (app, pilot, _):
        app.query_one(DagView).set_tasks(tasks)
        await pilot.pause()
        bars = [line for line in screen_text(app).splitlines() if "█" in line]
        assert len(bars) > 3 and "-1500 " in bars[-1]
        assert len({line.index("█") for line in bars}) == 1


async def test_layout_not_recomputed_by_state_updates() -> None:
    tasks = info(layered(10, 10))
    async with run_host(DagView, (200, 50)) as (app, pilot, _):
        view = app.query_one(DagView)
        view.set_tasks(tasks)
        drawing = view.drawing
        view.update_states({t.id: TaskState.SUCCEEDED for t in tasks})
        await pilot.pause()
        assert view.drawing is drawing
        assert "✓ t9.9" in screen_text(app)


async def test_new_plan_keeps_selection_by_id() -> None:
    async with run_host(DagView, (80, 24)) as (app, pilot, _):
        view = app.query_one(DagView)
        view.set_tasks(info(layered(3, 3)))
        view.select("t2.2")  # node 8
        view.set_tasks(info(DIAMOND))  # only 4 nodes: the selection is gone, no crash
        assert view.selected is None
        view.select("b")
        view.set_tasks(info([("x", []), *DIAMOND]))
        assert view.selected == "b"
        await pilot.pause()
        assert "○ b" in screen_text(app)


async def test_empty_plan_and_unknown_ids_are_harmless() -> None:
    async with run_host(DagView, (80, 24)) as (app, pilot, posted):
        view = app.query_one(DagView)
        view.set_tasks([])
        view.update_states({"ghost": TaskState.RUNNING})
        view.select("ghost")
        await pilot.press("down", "right")
        await pilot.pause()
        assert view.selected is None and not view.overview and posted == []
        view.set_tasks(info(DIAMOND))
        view.update_states({"ghost": TaskState.RUNNING, "a": TaskState.RETRYING})
        await pilot.pause()
        assert "↻ a" in screen_text(app)
