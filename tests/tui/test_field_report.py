"""Pilot tests for what a tester found driving the console in tmux (one test per finding).

Each test fails without its fix: the log that stopped following, ``=`` on the
wrong pool, failure reasons nowhere to be seen, one-key cancels of the wrong
task, a cursor off screen, Home/End, the footer, ``esc`` and the filter, blank
durations, the broken plan's error box, and the smaller ones.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Footer
from textual.widgets._footer import FooterKey

from core.events import (
    CancelTask,
    Event,
    OutputLines,
    Progress,
    ResizePool,
    RunStarted,
    SkipTask,
    TaskChanged,
    TaskInfo,
    TaskState,
)
from core.paths import run_log_path
from tek_tui.app import TekApp
from tek_tui.screens.confirm import ConfirmModal
from tek_tui.screens.help import HelpScreen
from tek_tui.screens.picker import PickerScreen
from tek_tui.screens.resize import ResizeModal
from tek_tui.widgets.log_view import LogView
from tek_tui.widgets.run_bar import RunBar
from tek_tui.widgets.task_table import TaskTable
from tests.tui.fakes import (
    DEMO_TASKS,
    T0,
    FakeClient,
    demo_events,
    demo_snapshot,
    make_app,
    ready,
    sizes,
    until,
)
from tests.tui.widget_host import screen_text

BROKEN_PLAN = Path(__file__).resolve().parents[2] / "sample_plans" / "broken_columns.csv"


def _at_end(log: LogView) -> bool:
    lines = log.lines_widget
    return lines.max_scroll_y > 0 and lines.scroll_y == lines.max_scroll_y


class TestLogFollows:
    @sizes
    async def test_following_keeps_the_last_line_visible_after_the_chart_and_a_resize(
        self, size: tuple[int, int]
    ) -> None:
        client = FakeClient(demo_snapshot(), demo_events())
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            await pilot.press(*["down"] * 5, "l")  # unit_tests: no loss curve yet
            log = screen.log_view
            await until(pilot, lambda: screen.selected == "unit_tests" and not log._loading)
            client.emit(OutputLines("unit_tests", 1, tuple(f"out {i}" for i in range(200))))
            await until(pilot, lambda: _at_end(log) and log.lines_widget.lines[-1] == "out 199")
            # The loss curve appears: the log's view shrinks by two rows.
            client.emit(Progress("unit_tests", 1, T0 + 66, {"loss": 1.0}))
            await until(pilot, lambda: log.query_one("#loss-row").display)
            client.emit(OutputLines("unit_tests", 1, ("after the chart",)))
            await until(pilot, lambda: log.lines_widget.lines[-1] == "after the chart")
            await until(pilot, lambda: _at_end(log))
            assert "following" in str(log.query_one("#log-header").render())
            # The terminal shrinks: still at the end, and new lines still scroll.
            await pilot.resize_terminal(size[0], size[1] - 4)
            client.emit(OutputLines("unit_tests", 1, ("after the resize",)))
            await until(pilot, lambda: log.lines_widget.lines[-1] == "after the resize")
            await until(pilot, lambda: _at_end(log))


class TestPoolsPaneSize:
    @sizes
    async def test_equals_in_the_pools_pane_sizes_the_pool_selected_there(
        self, size: tuple[int, int]
    ) -> None:
        client = FakeClient(demo_snapshot(), demo_events())
        app = make_app(client)
        async with app.run_test(size=size) as pilot:
            screen = await ready(pilot)  # the table's cursor: fetch_data, pool "shell"
            await pilot.press("tab", "tab", "tab")
            pools = screen.query_one("#pools-pane")
            await until(pilot, lambda: screen.active_pane == "pools" and bool(pools.pools))
            await pilot.press("down", "equals_sign")  # pool "ml", size 1
            await until(pilot, lambda: isinstance(app.screen, ResizeModal))
            assert app.screen.pool == "ml"
            await pilot.press("ctrl+u", "3", "enter")
            await until(pilot, lambda: client.controls == [ResizePool("ml", 3)])


def _header(log: LogView) -> str:
    return str(log.query_one("#log-header").render())


class TestWhyATaskEnded:
    @sizes
    async def test_log_header_and_table_say_why_a_task_failed_or_was_skipped(
        self, size: tuple[int, int]
    ) -> None:
        client = FakeClient(demo_snapshot(), demo_events())
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            table, log = screen.table, screen.log_view
            assert str(table.get_cell("unit_tests", "progress")) == "exit code 1"
            assert table.cell_values("integration")["progress"] == "upstream unit_tests failed"
            await pilot.press(*["down"] * 5)
            await until(pilot, lambda: screen.selected == "unit_tests")
            assert "unit_tests · ✗ failed: exit code 1 · attempt 1" in _header(log)
            await pilot.press("down")  # integration: skipped, never started
            await until(pilot, lambda: screen.selected == "integration")
            assert _header(log) == "integration · ⤼ skipped: upstream unit_tests failed"
            # A change of the selected task shows at once; a timeout keeps its exit code.
            client.emit(TaskChanged("integration", TaskState.RUNNING, 1, T0 + 66),
                        TaskChanged("integration", TaskState.FAILED, 1, T0 + 69,
                                    exit_code=-15, reason="timed out after 3s"))
            await until(pilot, lambda: "timed out after 3s (exit -15)" in _header(log))
            assert "✗ failed" in _header(log)

    async def test_a_long_id_ends_in_an_ellipsis(self) -> None:
        long_id = "a_task_with_a_really_very_long_identifier_x"
        snapshot = demo_snapshot(tasks=(TaskInfo(long_id, "n", "shell", "shell", ()),))
        async with make_app(FakeClient(snapshot)).run_test(size=(80, 24)) as pilot:
            screen = await ready(pilot)
            await pilot.pause()
            row = screen.table.render_line(1).text  # first row, under the header
            assert "a_task_with_a_really_very_lon" in row and "…" in row and long_id not in row


class TestConfirmDownstream:
    @sizes
    async def test_cancel_asks_naming_the_task_and_acts_on_it_whatever_the_table_does(
        self, size: tuple[int, int]
    ) -> None:
        client = FakeClient(demo_snapshot(), demo_events())
        app = make_app(client)
        async with app.run_test(size=size) as pilot:
            screen = await ready(pilot)
            await pilot.press("slash", *"state:run", "enter")
            await until(pilot, lambda: screen.table.shown_ids == ["train_model"])
            await until(pilot, lambda: screen.selected == "train_model")
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            question = app.screen.question
            assert "train_model" in question and "5 downstream tasks" in question
            assert "evaluate, report, publish, …" in question
            # Meanwhile the row under the cursor changes to another task.
            client.emit(TaskChanged("train_model", TaskState.SUCCEEDED, 1, T0 + 66),
                        TaskChanged("evaluate", TaskState.RUNNING, 1, T0 + 66))
            await pilot.press("y")
            await until(pilot, lambda: client.controls == [CancelTask("train_model")])
            await until(pilot, lambda: screen.table.shown_ids == ["evaluate"])
            # `n` sends nothing.
            await until(pilot, lambda: screen.selected == "evaluate")
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            assert "Skip task evaluate?" in app.screen.question
            # a skip does not skip its downstream: that runs as if it had succeeded
            assert "will run without it: report, publish" in app.screen.question
            await pilot.press("n")
            await until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
            assert client.controls == [CancelTask("train_model")]

    async def test_no_question_when_nothing_downstream_would_be_skipped(self) -> None:
        client = FakeClient(demo_snapshot(), demo_events())
        app = make_app(client)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await ready(pilot)
            screen.table.select("cleanup")  # pending, the last task: nothing depends on it
            await until(pilot, lambda: screen.selected == "cleanup")
            await pilot.press("x")
            await until(pilot, lambda: client.controls == [SkipTask("cleanup")])
            assert not isinstance(app.screen, ConfirmModal)


def _many_tasks(n: int = 60) -> tuple[TaskInfo, ...]:
    return tuple(TaskInfo(f"t{i:02d}", f"t{i:02d}", "shell", "shell", ()) for i in range(n))


def _cursor_in_view(table: TaskTable) -> bool:
    top = int(table.scroll_y)
    rows = table.scrollable_content_region.height - table.header_height
    return top <= table.cursor_row < top + rows


class TestCursorStaysInView:
    async def test_after_the_terminal_shrinks_and_after_unzoom(self) -> None:
        client = FakeClient(demo_snapshot(tasks=_many_tasks()))
        app = make_app(client)
        async with app.run_test(size=(200, 50)) as pilot:
            screen = await ready(pilot)
            table = screen.table
            table.move_cursor(row=40)
            await until(pilot, lambda: screen.selected == "t40" and _cursor_in_view(table))
            await pilot.resize_terminal(80, 24)
            await until(pilot, lambda: table.size.height < 20)
            await until(pilot, lambda: _cursor_in_view(table))
            # Zoomed, the table grows; back, it shrinks again around the cursor.
            table.move_cursor(row=table.row_count - 1)
            await pilot.press("z")
            await until(pilot, lambda: screen.zoomed == "tasks" and _cursor_in_view(table))
            table.move_cursor(row=45)
            await pilot.pause()
            await pilot.press("z")
            await until(pilot, lambda: screen.zoomed is None)
            await until(pilot, lambda: _cursor_in_view(table))


class TestRowKeys:
    @sizes
    async def test_home_end_g_and_G_go_to_the_first_and_last_task(
        self, size: tuple[int, int]
    ) -> None:
        async with make_app(FakeClient(demo_snapshot(tasks=_many_tasks()))).run_test(
            size=size
        ) as pilot:
            screen = await ready(pilot)
            await pilot.press("end")
            await until(pilot, lambda: screen.selected == "t59")
            assert screen.table.scroll_x == 0  # not sideways
            await pilot.press("home")
            await until(pilot, lambda: screen.selected == "t00")
            await pilot.press("G")
            await until(pilot, lambda: screen.selected == "t59" and _cursor_in_view(screen.table))
            await pilot.press("g")
            await until(pilot, lambda: screen.selected == "t00")

    async def test_j_and_k_move_in_the_picker_and_in_help(self, tmp_path: Path) -> None:
        for name in ("a.csv", "b.csv", "c.csv"):
            (tmp_path / name).write_text("id,command\nt,true\n")
        app = TekApp(search_dirs=[tmp_path], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, PickerScreen))
            plans = app.screen.query_one("#plan-list", DataTable)
            await pilot.press("j", "j")
            assert plans.cursor_row == 2
            await pilot.press("k")
            assert plans.cursor_row == 1
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            assert isinstance(app.screen, HelpScreen)
            rows = app.screen.rows
            assert not any("enter" == key and "log" in action for key, action, _, _ in rows)
            assert any(key == "enter" and "plan" in action for key, action, _, _ in rows)
            keys = app.screen.query_one("#help-keys", DataTable)
            await pilot.press("j")
            assert keys.cursor_row == 1


class TestHelpRows:
    async def test_no_textual_copy_key_and_one_row_per_key_and_place(self) -> None:
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            rows = app.screen.rows
            assert not any("Copy" in action for _, action, _, _ in rows)
            places = [(key, where) for key, _, _, where in rows]
            assert len(places) == len(set(places)), places
            p_rows = [row for row in rows if row[0] == "p"]
            assert [row[1] for row in p_rows] == ["Pause / Resume"]
            assert any(key == "enter" and "log" in action for key, action, _, _ in rows)


class TestSortShown:
    async def test_the_sorted_column_is_marked_in_the_header(self) -> None:
        async with make_app().run_test(size=(80, 24)) as pilot:
            screen = await ready(pilot)
            table = screen.table
            await pilot.press("o")  # by state
            await pilot.pause()
            assert "state ▼" in table.render_line(0).text
            await pilot.press("o")  # by time
            await pilot.pause()
            header = table.render_line(0).text
            assert "time ▼" in header and "state ▼" not in header
            await pilot.press("o", "o")  # plan order: no mark
            await pilot.pause()
            assert "▼" not in table.render_line(0).text


def _footer_actions(app: TekApp) -> set[str]:
    footer = app.screen.query_one(Footer)
    return {k.action.partition("(")[0] for k in footer.query(FooterKey)
            if not k.has_class("-command-palette")}


class TestFooterSaysWhatWorks:
    async def test_start_leaves_the_footer_once_the_run_has_started(self) -> None:
        client = FakeClient(demo_snapshot())
        app = make_app(client)
        async with app.run_test(size=(200, 50)) as pilot:
            await ready(pilot)
            await until(pilot, lambda: "start" in _footer_actions(app))
            await pilot.press("s")
            await until(pilot, lambda: "start" not in _footer_actions(app))
            assert {"pause_resume", "cancel_task", "skip_task"} <= _footer_actions(app)

    async def test_when_every_task_ended_only_retry_and_quit_remain_as_the_bar_says(
        self,
    ) -> None:
        tasks = DEMO_TASKS[:2]  # fetch_data, then check_schema
        events: list[Event] = [RunStarted("run-demo", "plans/demo.csv", 2, T0),
                  TaskChanged("fetch_data", TaskState.RUNNING, 1, T0),
                  TaskChanged("fetch_data", TaskState.SUCCEEDED, 1, T0 + 1, exit_code=0),
                  TaskChanged("check_schema", TaskState.RUNNING, 1, T0 + 1),
                  TaskChanged("check_schema", TaskState.FAILED, 1, T0 + 2, exit_code=2)]
        client = FakeClient(demo_snapshot(tasks=tasks), events)
        app = make_app(client)
        async with app.run_test(size=(200, 50)) as pilot:
            screen = await ready(pilot)
            await until(pilot, lambda: "retry_task" in _footer_actions(app)
                        and "cancel_task" not in _footer_actions(app))
            shown = _footer_actions(app)
            assert not shown & {"start", "pause_resume", "skip_task", "cancel_run"}, shown
            bar = screen.query_one(RunBar)
            await until(pilot, lambda: "(r retries, q closes)" in str(bar.render()))
            screen.attached = True  # as `tek tui --attach` opens it: q detaches
            screen.refresh_bindings()
            screen._paint_run_bar(screen.state, screen.clock())
            await until(pilot, lambda: "(r retries, q detaches)" in str(bar.render()))
            await until(pilot, lambda: any(k.description == "Detach"
                                           for k in app.screen.query(FooterKey)))

    async def test_a_dialog_shows_its_own_keys_not_the_run_screens(self) -> None:
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("C")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await until(pilot, lambda: "answer" in _footer_actions(app))
            assert not _footer_actions(app) & {"cancel_task", "skip_task", "start"}


class TestEscClearsTheFilter:
    @sizes
    async def test_esc_in_the_table_clears_an_applied_filter_then_goes_back(
        self, size: tuple[int, int]
    ) -> None:
        async with make_app().run_test(size=size) as pilot:
            screen = await ready(pilot)
            await pilot.press("slash", *"state:fail", "enter")
            assert screen.table.shown_ids == ["unit_tests"]
            await pilot.press("z")
            await until(pilot, lambda: screen.zoomed == "tasks")
            await pilot.press("escape")
            await until(pilot, lambda: screen.table.row_count == 12)
            assert screen.table.filter_text == "" and screen.pane("tasks").border_title == "Tasks"
            assert screen.zoomed == "tasks"  # one step at a time
            await pilot.press("escape")
            await until(pilot, lambda: screen.zoomed is None)


class TestDurations:
    @sizes
    async def test_a_fast_failure_whose_start_the_stream_coalesced_away_gets_a_time(
        self, size: tuple[int, int]
    ) -> None:
        client = FakeClient(demo_snapshot(), demo_events())
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            # The console only sees the end, which says when the attempt started.
            client.emit(TaskChanged("cleanup", TaskState.FAILED, 1, T0 + 63, exit_code=3,
                                    started_ts=T0 + 60))
            await until(pilot, lambda: screen.table.cell_values("cleanup")["duration"] == "3.0s")
            # A retry's end without its start seen is not timed from the first attempt.
            client.emit(TaskChanged("fetch_data", TaskState.FAILED, 2, T0 + 64, exit_code=1))
            await until(pilot, lambda: screen.state.tasks["fetch_data"].attempt == 2)
            await until(pilot, lambda: screen.table.cell_values("fetch_data")["duration"] == "")


class TestBrokenPlanAt80x24:
    async def test_every_problem_can_be_read_and_the_picker_stays_usable(self) -> None:
        plan = BROKEN_PLAN
        app = TekApp(plan_path=plan, search_dirs=[plan.parent], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, PickerScreen)
                        and app.screen.query_one("#plan-problems").display)
            screen = app.screen
            box = screen.query_one("#plan-problems")
            plans = screen.query_one("#plan-list", DataTable)
            await pilot.pause()
            # Bounded, bottom border on screen, the plan list below it still visible.
            assert box.region.bottom <= plans.region.y < 24 and plans.region.height >= 3
            assert "12 problems" in str(box.border_subtitle)
            # The last problem scrolls into view.
            box.focus()
            await pilot.press("end")
            await until(pilot, lambda: box.scroll_y == box.max_scroll_y > 0)
            await pilot.pause()
            shown = screen_text(app).splitlines()
            last = next(i for i, line in enumerate(shown) if "header has 8" in line)
            assert shown[last + 1].lstrip().startswith("╰")  # its box closes below it


class TestLogSearchLine:
    async def test_a_match_in_a_log_cut_to_its_tail_says_so(self) -> None:
        path = run_log_path("run-demo", "train_model", 1)
        path.parent.mkdir(parents=True)
        path.write_text("".join(f"line {i}\n" for i in range(8000)))
        client = FakeClient(demo_snapshot(), demo_events())
        async with make_app(client).run_test(size=(200, 50)) as pilot:
            screen = await ready(pilot)
            await pilot.press("down", "down", "down", "l")
            log = screen.log_view
            await until(pilot, lambda: log.lines_widget.line_count == 5000)
            await pilot.press("slash", *"line 7990", "enter")
            await until(pilot, lambda: log.match_line is not None)
            assert "match 1/1 at line 4,991 of the last 5,000" in _header(log)

    async def test_a_match_in_a_whole_log_gives_its_file_line(self) -> None:
        path = run_log_path("run-demo", "train_model", 1)
        path.parent.mkdir(parents=True)
        path.write_text("".join(f"line {i}\n" for i in range(100)))
        client = FakeClient(demo_snapshot(), demo_events())
        async with make_app(client).run_test(size=(200, 50)) as pilot:
            screen = await ready(pilot)
            await pilot.press("down", "down", "down", "l")
            log = screen.log_view
            await until(pilot, lambda: log.lines_widget.line_count == 100)
            await pilot.press("slash", *"line 42", "enter")
            await until(pilot, lambda: log.match_line is not None)
            assert _header(log).endswith("match 1/1 at line 43")
