"""Third-round tester findings: controls that follow a rename, ended runs, live modals."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.events import TaskState
from tek_tui.app import TekApp
from tek_tui.screens.confirm import ConfirmModal
from tek_tui.screens.main import MainScreen
from tests.tui.fakes import sizes, until
from tests.tui.plan_console import console_on, main_screen, messages, open_form


def _state_of(screen: MainScreen, task_id: str) -> TaskState:
    assert screen.state is not None
    return screen.state.tasks[task_id].state


@sizes
async def test_a_skip_before_start_follows_a_rename(plan_file: Path, size: tuple[int, int]) -> None:
    """`x` `y` on a task, then `e` renaming it: the skip stays on the renamed task."""
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        assert screen.selected == "prep"
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: _state_of(screen, "prep") is TaskState.SKIPPED)
        form = await open_form(pilot, app, "e")
        form.field("id").value = "setup"
        form.field("id").focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen and screen.selected == "setup")
        assert _state_of(screen, "setup") is TaskState.SKIPPED
        assert screen.state is not None and screen.state.counts.get(TaskState.SKIPPED) == 1
        assert not [m for m in messages(app) if m.startswith(("refused", "dropped"))]
        # ... and the run started from the saved plan gets it too.
        await pilot.press("w")
        await until(pilot, lambda: not screen.modified)
        await pilot.press("s")
        await until(pilot, lambda: screen.state is not None and screen.state.started_ts is not None
                    and all(t.state.is_terminal for t in screen.state.tasks.values()), limit=20)
        assert _state_of(screen, "setup") is TaskState.SKIPPED
        assert _state_of(screen, "report") is TaskState.SUCCEEDED


# ------------------------------------------------------------ 2: ended run's pools


def _footer_actions(app: TekApp) -> set[str]:
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey

    footer = app.screen.query_one(Footer)
    return {k.action.partition("(")[0] for k in footer.query(FooterKey)
            if not k.has_class("-command-palette")}


async def _focus_pools(pilot: object, screen: MainScreen) -> object:
    await pilot.press("tab", "tab", "tab")  # type: ignore[attr-defined]  # tasks → log → dag → pools
    pools = screen.query_one("#pools-pane")
    await until(pilot, lambda: screen.active_pane == "pools" and bool(pools.pools))
    return pools


@sizes
async def test_an_ended_run_hides_pool_keys_and_reads_no_throughput(size: tuple[int, int]) -> None:
    from core.events import PoolChanged, RunFinished, RunStatus
    from tests.tui.fakes import (
        T0,
        FakeClient,
        FrozenClock,
        demo_events,
        demo_snapshot,
        make_app,
        ready,
    )

    client = FakeClient(demo_snapshot(), demo_events())
    pane_clock = FrozenClock(100.0)
    app = make_app(client, pane_clock=pane_clock)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        pools = await _focus_pools(pilot, screen)
        await until(pilot, lambda: "resize" in _footer_actions(app))
        pane_clock.now += 2
        client.emit(PoolChanged("shell", 2, 0, 0, 9, T0 + 40))
        await until(pilot, lambda: pools.finished_per_second("shell") > 0)
        client.emit(RunFinished("run-demo", RunStatus.FAILED, {}, 40.0, T0 + 40))
        await until(pilot, lambda: screen.state.finished)
        await until(pilot, lambda: "resize" not in _footer_actions(app))
        assert "ask_size" not in _footer_actions(app)
        assert pools.finished_per_second("shell") == 0.0
        await pilot.press("plus")
        await pilot.pause()
        assert "→" not in str(pools.render())


async def test_a_refused_resize_drops_the_pending_size() -> None:
    from core.events import ResizePool
    from tests.tui.fakes import FakeClient, demo_events, demo_snapshot, make_app, ready

    client = FakeClient(demo_snapshot(), demo_events())
    client.refuse[ResizePool] = "pool shell: no"
    app = make_app(client)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await ready(pilot)
        pools = await _focus_pools(pilot, screen)
        await pilot.press("plus")
        await until(pilot, lambda: any(m.startswith("refused") for m in messages(app)))
        await until(pilot, lambda: "→" not in str(pools.render()))
        assert pools._requested == {}


# ------------------------------------------------------------ 3: live behind a modal


@pytest.mark.parametrize("key", ["question_mark", "ctrl+p", "C"])
async def test_the_run_bar_and_table_keep_updating_behind_a_modal(key: str) -> None:
    from textual.screen import ModalScreen

    from core.events import TaskChanged
    from tek_tui.widgets.run_bar import RunBar
    from tests.tui.fakes import T0, FakeClient, demo_events, demo_snapshot, make_app, ready

    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await ready(pilot)
        bar = screen.query_one(RunBar)
        await until(pilot, lambda: "✗ 1" in str(bar.render()))
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, ModalScreen))
        client.emit(TaskChanged("lint", TaskState.FAILED, 2, T0 + 40, reason="exit code 2"),
                    TaskChanged("evaluate", TaskState.RUNNING, 1, T0 + 40))
        await until(pilot, lambda: "✗ 2" in str(bar.render()))
        row = screen.table.get_row("evaluate")
        assert "running" in str(row[0])
        assert isinstance(app.screen, ModalScreen)  # still open


# ------------------------------------------------------------ 4: filter feedback


@sizes
async def test_a_filter_that_cannot_match_says_why_and_the_title_shows_the_filter(
    size: tuple[int, int],
) -> None:
    from textual.widgets import Input

    from tests.tui.fakes import make_app, ready

    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        pane = screen.pane("tasks")
        box = screen.query_one("#task-filter", Input)
        await pilot.press("slash", *"state:bogus", "enter")
        await until(pilot, lambda: any("unknown state 'bogus'" in m for m in messages(app)))
        message = next(m for m in messages(app) if "unknown state" in m)
        assert "failed" in message and "succeeded" in message  # names the valid states
        assert box.display and screen.table.filter_text == "" and screen.table.row_count == 12
        await pilot.press("ctrl+u", *"colour:red", "enter")
        await until(pilot, lambda: any("unknown filter key 'colour'" in m and "tag:" in m
                                       for m in messages(app)))
        assert box.display and screen.table.filter_text == ""
        await pilot.press("ctrl+u", *"state:fail", "enter")
        await until(pilot, lambda: not box.display)
        assert pane.border_title == "Tasks · state:fail · 1 of 12"
        await pilot.press("slash", "ctrl+u", *"nothing_like_this", "enter")
        await until(pilot, lambda: screen.table.row_count == 0)
        assert pane.border_title.startswith("Tasks · no task matches nothing_like_this")
        await pilot.press("escape")
        await until(pilot, lambda: pane.border_title == "Tasks")


# ------------------------------------------------------------ 5, 6: narrow columns, run bar

LONG = "prepare_the_training_shard_001"  # 30 characters


def _long_client() -> object:
    from core.events import RunStarted, TaskChanged
    from tests.tui.fakes import T0, FakeClient, _task, demo_snapshot

    tasks = (_task(LONG), _task("b", deps=(LONG,)), _task("c", deps=("b",)))
    events = [RunStarted("run-demo", "plans/demo.csv", 3, T0),
              TaskChanged(LONG, TaskState.RUNNING, 1, T0),
              TaskChanged(LONG, TaskState.FAILED, 1, T0 + 3, exit_code=3, reason="exit code 3"),
              TaskChanged("b", TaskState.SKIPPED, 0, T0 + 3, reason=f"upstream {LONG} failed")]
    return FakeClient(demo_snapshot(tasks=tasks), events)


def _table_lines(screen: MainScreen) -> list[str]:
    table = screen.table
    return [table.render_line(y).text for y in range(table.size.height)]


async def test_at_60x20_the_id_shrinks_before_progress_and_the_bar_keeps_its_clock() -> None:
    from tek_tui.widgets.run_bar import RunBar
    from tests.tui.fakes import make_app, ready

    app = make_app(_long_client())
    async with app.run_test(size=(60, 20)) as pilot:
        screen = await ready(pilot)
        await until(pilot, lambda: "progress/why" in _table_lines(screen)[0])
        lines = _table_lines(screen)
        failed = next(line for line in lines if "failed" in line)
        assert "prepare_the_tra" in failed and "…" in failed and LONG not in failed
        assert "exit code 3" in failed
        bar = screen.query_one(RunBar)
        line = "".join(s.text for s in bar.render_line(0)).rstrip()
        assert line.endswith("· 1m05s") and "…" not in line, line


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
async def test_the_last_column_shown_ends_at_the_edge_in_an_ellipsis(size: tuple[int, int]) -> None:
    from tests.tui.fakes import make_app, ready

    app = make_app(_long_client())
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("z")  # the table alone: its width is the screen's
        await until(pilot, lambda: screen.zoomed == "tasks")
        await pilot.pause(0.1)
        table = screen.table
        widths = [c.get_render_width(table) for c in table.columns.values()]
        inner = table.size.width - 1  # the scroll bar's cell
        ends = [sum(widths[:i + 1]) for i in range(len(widths))]
        # Every column shown ends inside the table; none is cut by its edge.
        assert all(end <= inner or start >= inner
                   for start, end in zip([0, *ends], ends, strict=False)), (ends, inner)
        skipped = next(line for line in _table_lines(screen) if "skipped" in line)
        assert "upstream prepare" in skipped
        if size[0] == 100:  # room for the name, cut short: it ends in "…" at the edge
            first = next(line for line in _table_lines(screen) if "failed" in line)
            assert first.rstrip().endswith("…") and len(first.rstrip()) <= inner + 1, first


async def test_the_id_column_grows_when_a_longer_id_is_added(plan_file: Path) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await main_screen(pilot, app)
        before = screen.table.columns["id"].width  # type: ignore[index]
        form = await open_form(pilot, app, "a")
        form.field("agent").value = "noop"
        form.field("id").value = LONG
        form.field("id").focus()
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen and screen.selected == LONG)
        await until(pilot, lambda: screen.table.columns["id"].width >= len(LONG))  # type: ignore[index]
        assert before < len(LONG)
        assert any(LONG in line for line in _table_lines(screen))


async def test_the_picker_shows_the_end_of_long_paths(tmp_path: Path) -> None:
    """The plan column was cut at the edge (``/tmp/probe_tu``): the file name must show."""
    from textual.widgets import DataTable

    from core.journal import create_journal
    from core.plan_io import read_plan
    from core.store import open_store
    from tek_tui.screens.picker import PickerScreen
    from tests.core.journal_helpers import finished, flat, ran, started

    deep = tmp_path / "a_rather_long_folder_name" / "another_long_folder_name" / "plans"
    deep.mkdir(parents=True)
    plan_path = deep / "fail.csv"
    plan_path.write_text("id,agent,command\na,noop,\n")
    with open_store() as store:
        journal = create_journal(read_plan(plan_path), store=store)
        journal.recorder.record_sync(
            flat(started(journal.run_id, 1), ran("a"), finished(journal.run_id)))
    app = TekApp(search_dirs=[deep])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        runs = app.screen.query_one("#run-list", DataTable)
        plans = app.screen.query_one("#plan-list", DataTable)
        await until(pilot, lambda: runs.row_count == 1
                    and str(runs.get_row_at(0)[-1]).startswith("…"))
        for table in (runs, plans):
            line = table.render_line(1).text.rstrip()
            end = "/fail.csv" if table is runs else "/plans"
            assert line.endswith(end), line
            assert "…/" in line


# ------------------------------------------------------------ 7: labels


async def test_help_names_places_not_classes(tmp_path: Path) -> None:
    from tek_tui.screens.help import collect_key_rows
    from tek_tui.screens.picker import PickerScreen

    app = TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        places = {row[3] for row in collect_key_rows(app.screen)}
        assert "plan and run lists" in places
        assert not [p for p in places if p[:1].isupper()], places  # RowTable, TekFooter…


@sizes
async def test_slash_reads_search_in_the_log_pane(size: tuple[int, int]) -> None:
    from tests.tui.fakes import make_app, ready

    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await until(pilot, lambda: _slash(screen) == "Filter")
        await pilot.press("l")
        await until(pilot, lambda: screen.active_pane == "log")
        await until(pilot, lambda: _slash(screen) == "Search")
        if size[0] > 100:  # the footer has room for it
            assert "Search" in _footer_descriptions(app) and "Filter" not in _footer_descriptions(app)
        await pilot.press("slash")
        await until(pilot, lambda: screen.log_view.query_one("#log-search").display)


def _slash(screen: MainScreen) -> str:
    """What ``/`` says it does now (footer, help)."""
    active = screen.active_bindings.get("slash")
    return active.binding.description if active is not None and active.enabled else ""


def _footer_descriptions(app: TekApp) -> set[str]:
    from textual.widgets import Footer
    from textual.widgets._footer import FooterKey

    return {k.description for k in app.screen.query_one(Footer).query(FooterKey)}


@sizes
async def test_sub_second_durations_show_tenths(size: tuple[int, int]) -> None:
    from core.events import RunStarted, TaskChanged
    from tests.tui.fakes import T0, FakeClient, _task, demo_snapshot, make_app, ready

    tasks = (_task("quick"), _task("quicker"), _task("instant"))
    events = [RunStarted("run-demo", "plans/demo.csv", 3, T0)]
    for task_id, seconds in (("quick", 0.3), ("quicker", 0.07), ("instant", 0.01)):
        events += [TaskChanged(task_id, TaskState.RUNNING, 1, T0),
                   TaskChanged(task_id, TaskState.SUCCEEDED, 1, T0 + seconds, exit_code=0)]
    app = make_app(FakeClient(demo_snapshot(tasks=tasks), events))
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        assert screen.table.cell_values("quick")["duration"] == "0.3s"
        assert screen.table.cell_values("quicker")["duration"] == "0.1s"
        # Under 0.05 s too: `0.0s` in a column of `1.0s`, never a bare `0s`.
        assert screen.table.cell_values("instant")["duration"] == "0.0s"


# ------------------------------------------------------------ 8: the task form


@sizes
async def test_task_form_problems_scroll_are_counted_and_focus_the_first_bad_box(
    plan_file: Path, size: tuple[int, int]
) -> None:
    from textual.containers import VerticalScroll

    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        form = await open_form(pilot, app, "a")
        assert form.field("id").value == "" and form.field("id").placeholder.startswith("e.g.")
        for column in ("cpus", "gpus", "memory_mb", "priority", "retries", "timeout_s"):
            form.field(column).value = "x"
        form.field("timeout_s").focus()
        await pilot.press("enter")
        await until(pilot, lambda: len(form.problems) > 5)
        box = form.query_one("#task-form-problems", VerticalScroll)
        await until(pilot, lambda: app.focused is form.field("id"))  # the first box with a problem
        assert box.border_title == f"{len(form.problems)} problems (scroll)"
        await until(pilot, lambda: box.max_scroll_y > 0)
        # The focused box stands out from the others.
        assert form.field("id").styles.background != form.field("name").styles.background
        assert app.screen is form and screen.plan is not None and len(screen.plan) == 3


# ------------------------------------------------------------ 10: the loss curve


async def test_the_loss_curve_shows_the_last_points_on_their_own_scale() -> None:
    from textual.widgets import Sparkline, Static

    from tests.tui.fakes import make_app, ready

    app = make_app()
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await ready(pilot)
        log = screen.log_view
        losses = [50.0] + [1.0 - i / 1000 for i in range(400)]  # a high first loss, then flat-ish
        log.set_loss(losses, "loss 0.601")
        await pilot.pause()
        curve = log.query_one("#loss-curve", Sparkline)
        width = curve.size.width
        assert 0 < width < len(losses)
        assert list(curve.data) == losses[-width:]  # type: ignore[arg-type]
        label = str(log.query_one("#loss-label", Static).render())
        low, high = min(losses[-width:]), max(losses[-width:])
        assert f"{low:.3g}–{high:.3g}" in label and "50" not in label
