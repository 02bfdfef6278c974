"""What a new user found: an ended run's pools, dialogs that fit, key bursts, empty plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Footer
from textual.widgets._footer import FooterKey

from core.events import (
    Event,
    PoolChanged,
    ResizePool,
    RunStarted,
    TaskChanged,
    TaskState,
)
from tek_tui.app import TekApp
from tek_tui.screens.confirm import SaveFirstModal
from tests.tui.fakes import (
    DEMO_TASKS,
    T0,
    FakeClient,
    FrozenClock,
    burst,
    demo_snapshot,
    make_app,
    ready,
    resize_of,
    sizes,
    until,
)
from tests.tui.plan_console import console_on, main_screen, modify
from tests.tui.widget_host import screen_text


def _footer_actions(app: TekApp) -> set[str]:
    footer = app.screen.query_one(Footer)
    return {k.action.partition("(")[0] for k in footer.query(FooterKey)
            if not k.has_class("-command-palette")}


# ------------------------------------------- 1: every task ended, run open for retries


def _all_ended_client() -> FakeClient:
    """fetch_data succeeded, check_schema failed: every task ended, the run still open."""
    events: list[Event] = [
        RunStarted("run-demo", "plans/demo.csv", 2, T0),
        TaskChanged("fetch_data", TaskState.RUNNING, 1, T0),
        TaskChanged("fetch_data", TaskState.SUCCEEDED, 1, T0 + 1, exit_code=0),
        TaskChanged("check_schema", TaskState.RUNNING, 1, T0 + 1),
        TaskChanged("check_schema", TaskState.FAILED, 1, T0 + 2, exit_code=2),
        PoolChanged("shell", 2, 0, 0, 2, T0 + 2),
    ]
    return FakeClient(demo_snapshot(tasks=DEMO_TASKS[:2]), events)


@sizes
async def test_once_every_task_ended_the_pool_keys_leave_the_footer_and_the_rate_falls(
    size: tuple[int, int],
) -> None:
    client = _all_ended_client()
    pane_clock = FrozenClock(100.0)
    app = make_app(client, pane_clock=pane_clock)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("tab", "tab", "tab")  # tasks → log → dag → pools
        pools: Any = screen.query_one("#pools-pane")
        await until(pilot, lambda: screen.active_pane == "pools" and bool(pools.pools))
        await until(pilot, lambda: "retry_task" in _footer_actions(app))
        # As the run bar says, r and q are what is left: no + - = either.
        assert not _footer_actions(app) & {"resize", "ask_size", "resize_to"}
        await until(pilot, lambda: pools.finished_per_second("shell") > 0)
        pane_clock.now += 6  # nothing has finished for longer than the rate's window
        assert pools.finished_per_second("shell") == 0.0
        pools._repaint_rates()
        await pilot.pause()
        assert "shell" in str(pools.render()) and "2.0" not in str(pools.render())
        # They still resize a pool: a retry (r) runs in it.
        await pilot.press("plus")
        await until(pilot, lambda: resize_of(client.controls) == [ResizePool("shell", 3)])


# ------------------------------------------------ 2: the unsaved-changes question fits


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (200, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_unsaved_changes_question_is_centred_and_whole(
    plan_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        await modify(pilot, app, screen)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, SaveFirstModal))
        await pilot.pause()
        box = app.screen.query_one("#save-first-box").region
        width, height = size
        # Centred (not drawn over the run bar at the top left) ...
        assert abs(box.x - (width - box.right)) <= 1, box
        assert abs(box.y - (height - 1 - box.bottom)) <= 1, box  # the footer's line aside
        # ... and every button whole inside it: "Stay (n)" was cut to its top edge.
        content = app.screen.query_one("#save-first-box").content_region
        text = screen_text(app)
        for button in app.screen.query(Button):
            assert content.contains_region(button.region), (button.id, button.region, content)
            assert str(button.label) in text


# ------------------------------------------------------------- 3: keys in one burst


def _pane_of_focus(app: TekApp) -> str:
    node: Any = app.focused
    while node is not None and not (node.id or "").startswith("pane-"):
        node = node.parent
    return (node.id or "").removeprefix("pane-") if node is not None else ""


@sizes
async def test_tab_tab_z_in_one_burst_zooms_the_pane_the_focus_is_on(
    size: tuple[int, int],
) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await burst(pilot, "tab", "tab", "z")  # tasks → log → dag, zoom
        assert _pane_of_focus(app) == "dag"
        assert screen.zoomed == "dag"
        assert screen.pane_visible("dag") and not screen.pane_visible("log")
        # Once the focus events have come (the log pane's, deeper, came last) ...
        await until(pilot, lambda: screen.pane("dag").has_class("-active"))
        await pilot.pause()
        # ... the active pane is still the one with the focus.
        assert screen.active_pane == "dag" and not screen.pane("log").has_class("-active")


@sizes
async def test_text_right_after_slash_reaches_the_filter_box(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await burst(pilot, "slash", *"lint", "enter")  # from the task table
        assert screen.table.filter_text == "lint"
        assert screen.table.shown_ids == ["lint"]
        # From the DAG pane, reached by a burst too: `/` is its Filter, not the log's Search.
        await burst(pilot, "escape", "tab", "tab")
        assert screen.table.filter_text == "" and _pane_of_focus(app) == "dag"
        await burst(pilot, "slash", *"unit", "enter")
        assert screen.table.filter_text == "unit"
        assert screen.table.shown_ids == ["unit_tests"]
        assert not screen.log_view.query_one("#log-search").display
        # `tab /`: the `/` (handled as soon as the app takes it) came before the `tab`.
        await burst(pilot, "escape", "tab", "slash", *"done", "enter")
        assert screen.log_view.needle == "done" and screen.table.filter_text == ""


@sizes
async def test_slash_while_another_pane_is_zoomed_shows_the_filter_box(
    size: tuple[int, int],
) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await burst(pilot, "tab", "tab", "z", "slash", *"lint")
        box = screen.query_one("#task-filter")
        assert app.focused is box and box.value == "lint"
        assert screen.zoomed == "tasks" and screen.pane_visible("tasks")


# ------------------------------------------------- 5: sorted by time, longest first


def _seconds(text: str) -> float:
    """``35s``, ``4.0s``, ``1m05s`` in seconds; blank (never started) as -1."""
    if not text:
        return -1.0
    minutes, _, rest = text.rstrip("s").rpartition("m")
    return float(minutes or 0) * 60 + float(rest)


@sizes
async def test_sorting_by_time_shows_the_longest_first_from_the_top(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        table = screen.table
        await pilot.press("down", "down", "down", "down")
        assert screen.selected == "lint"  # a short task: 2.0s
        await pilot.press("o", "o")  # plan order → state → time
        await pilot.pause()
        assert "time ▼" in table.render_line(0).text
        # What shows from the top of the view: the longest first, with the cursor on it.
        top = int(table.scroll_y)
        shown = [_seconds(table.cell_values(i)["duration"]) for i in table.shown_ids[top:]]
        assert top == 0 and table.cursor_row == 0, (top, table.cursor_row)
        assert shown == sorted(shown, reverse=True) and shown[0] == 35.0
        assert screen.selected == "train_model"
        await pilot.press("o")  # by id: A to Z, marked so
        await pilot.pause()
        assert "id ▲" in table.render_line(0).text and "time ▼" not in table.render_line(0).text
        assert table.shown_ids == sorted(table.shown_ids)


# ---------------------------------------- 6: "sorted by …", "theme: …" replace their last


@sizes
async def test_sort_and_theme_notes_replace_the_last_one(size: tuple[int, int]) -> None:
    from textual.widgets._toast import Toast

    app = make_app()
    async with app.run_test(size=size, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("o", "o", "o", "t", "t")
        latest = ["sorted by id", f"theme: {app.theme}"]  # tek-dark → tek-light → tek-contrast
        await until(pilot, lambda: sorted(t._notification.message
                                          for t in app.screen.query(Toast)) == latest)
        assert sorted(n.message for n in app._notifications) == latest
        app.notify("sorted out")  # a message that only starts alike still stacks
        await until(pilot, lambda: len(app._notifications) == 3)


# --------------------------------------------------- 7: the help's columns fit 80x24


async def test_help_shows_every_key_id_whole_at_80x24() -> None:
    from textual.widgets import DataTable

    from tek_tui.screens.help import HelpScreen

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        table = help_screen.query_one("#help-keys", DataTable)
        # Every column within the table (none beyond its edge) ...
        used = sum(column.get_render_width(table) for column in table.columns.values())
        assert used <= table.size.width, (used, table.size.width)
        # ... and as wide as its longest word: a cell wraps, never cuts one.
        for row in help_screen.rows:
            for text, key in zip(row, ("key", "action", "id", "where"), strict=True):
                longest = max((len(word) for word in text.split()), default=0)
                assert longest <= table.columns[key].width, (key, text)  # type: ignore[index]
        for binding_id in ("run-pause-resume", "pool-cursor-down", "pool-resize-selected"):
            index = next(i for i, row in enumerate(help_screen.rows) if binding_id in row[2])
            table.move_cursor(row=index)
            await pilot.pause()
            assert binding_id in screen_text(app), binding_id


# ---------------------------------------------- 8: the palette lists tek's actions once


@sizes
async def test_the_palette_lists_each_tek_action_once_and_no_textual_command(
    size: tuple[int, int],
) -> None:
    from textual.command import CommandList, CommandPalette

    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        for pane in ("tasks", "log", "dag", "pools", "system"):
            assert screen.active_pane == pane
            titles = [c.title for c in app.get_system_commands(screen)]
            assert len(titles) == len(set(titles)), (pane, titles)
            assert not {"Keys", "Maximize", "Screenshot"} & set(titles), (pane, titles)
            await pilot.press("tab")
        await pilot.press("ctrl+p")  # what the palette itself lists
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        options = app.screen.query_one(CommandList)
        await until(pilot, lambda: options.option_count > 10)
        shown = [str(options.get_option_at_index(i).prompt).split("\n")[0]
                 for i in range(options.option_count)]
        assert len(shown) == len(set(shown)) and shown.count("Quit") == 1, shown
        assert not {"Keys", "Maximize", "Screenshot"} & set(shown), shown


# -------------------------------------------- 9: a narrow footer keeps l Log and / Filter


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("started", [False, True], ids=["before-start", "running"])
async def test_a_narrow_footer_drops_other_keys_before_log_and_filter(
    size: tuple[int, int], started: bool
) -> None:
    from tests.tui.fakes import demo_events

    client = FakeClient(demo_snapshot(), demo_events() if started else [])
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await until(pilot, lambda: {"open_log", "filter", "help", "quit_console"}
                    <= _footer_actions(app))
        footer = app.screen.query_one(Footer)
        keys = list(footer.query(FooterKey))
        assert max(k.region.right for k in keys) <= size[0]  # nothing cut at the edge
        line = screen_text(app).splitlines()[-1]
        assert "l Log" in line and "/ Filter" in line, line


# ------------------------------------------ 10: another task's log follows its end again


@sizes
async def test_selecting_another_task_follows_its_log_again(size: tuple[int, int]) -> None:
    from core.paths import run_log_path

    path = run_log_path("run-demo", "lint", 1)
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"lint line {i}\n" for i in range(300)))
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        log = screen.log_view
        await pilot.press("l", "f")  # fetch_data's log, paused
        assert not log.follow
        await pilot.press("escape", "down", "down", "down", "down")
        await until(pilot, lambda: screen.selected == "lint"
                    and log.lines_widget.line_count == 300)
        assert log.follow and log.lines_widget.auto_scroll
        assert "following" in str(log.query_one("#log-header").render())
        await until(pilot, lambda: log.lines_widget.scroll_y == log.lines_widget.max_scroll_y > 0)


# ------------------------------------------------- 11: a plan without tasks never starts


def _refused_empty(app: TekApp) -> bool:
    return any(n.title == "refused" and "no tasks" in n.message for n in app._notifications)


@pytest.mark.parametrize("start", [False, True], ids=["s", "--start"])
async def test_s_on_a_header_only_plan_is_refused_and_records_nothing(
    tmp_path: Path, start: bool
) -> None:
    """`tek run` refuses a header-only plan (exit 2); `s` started it and journaled a
    succeeded run of nothing. (`D` already refuses to delete a plan's last task.)"""
    from core.events import RunStatus
    from core.store import open_store
    from tek_tui.screens.main import MainScreen

    plan = tmp_path / "empty.csv"
    plan.write_text("id,agent,command\n")
    app = TekApp(plan_path=plan, search_dirs=[tmp_path], theme="tek-dark", start=start)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None, limit=20)
        screen = app.screen
        assert isinstance(screen, MainScreen) and screen.state is not None
        if not start:
            await pilot.press("s")
        await until(pilot, lambda: _refused_empty(app))
        assert screen.state.status is RunStatus.PENDING
        await pilot.press("q")  # at once: nothing to stop (it waited 15 s for the run to end)
        await until(pilot, lambda: not app.is_running, limit=5)
    assert app.return_code == 0
    with open_store() as store:
        assert store.list_runs() == []
