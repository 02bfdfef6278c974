"""Pilot tests of the panes: table, filter, sort, log, zoom, tabs, help, themes, palette."""

from __future__ import annotations

from textual.pilot import Pilot

from core.events import OutputLines, Progress, TaskChanged, TaskState
from core.paths import config_path, run_log_path
from tek_tui.config import remembered_theme
from tek_tui.screens.help import HelpScreen
from tek_tui.widgets.log_view import LogView
from tests.tui.fakes import (
    T0,
    FakeClient,
    demo_events,
    demo_snapshot,
    make_app,
    ready,
    sizes,
    until,
)


@sizes
async def test_table_shows_state_symbol_and_progress(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        table = screen.table
        assert table.row_count == 12
        assert str(table.get_cell("fetch_data", "state")) == "✓ succeeded"  # painted
        assert str(table.get_cell("train_model", "progress")) == "ep 8/20 loss 0.55"
        assert table.get_cell("train_model", "duration") == "35s"  # running: clock - start
        values = table.cell_values("unit_tests")
        assert values["state"] is TaskState.FAILED and values["attempt"] == "1"
        assert table.cell_values("integration")["state"] is TaskState.SKIPPED
        assert table.cell_values("build_features")["duration"] == "21s"
        # rows below the fold are painted once scrolled to
        table.move_cursor(row=table.row_count - 1)
        await pilot.pause()
        assert str(table.get_cell("cleanup", "state")) == "○ pending"
        assert str(table.get_cell("integration", "state")) == "⤼ skipped"


@sizes
async def test_filter_by_state_tag_and_text(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("slash")
        await pilot.press(*"state:f,sk", "enter")  # state prefixes
        assert screen.table.shown_ids == ["unit_tests", "integration"]
        await pilot.press("slash", "ctrl+u", *"tag:ci", "enter")
        assert screen.table.shown_ids == ["lint", "unit_tests", "integration"]
        await pilot.press("slash", "ctrl+u", *"feat", "enter")
        assert screen.table.shown_ids == ["build_features"]
        await pilot.press("slash", "ctrl+u", "enter")
        assert screen.table.row_count == 12


@sizes
async def test_filtered_rows_follow_state_changes(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("slash", *"state:ru", "enter")
        assert screen.table.shown_ids == ["train_model"]
        client.emit(TaskChanged("evaluate", TaskState.RUNNING, 1, T0 + 60),
                    TaskChanged("train_model", TaskState.SUCCEEDED, 1, T0 + 60))
        await until(pilot, lambda: screen.table.shown_ids == ["evaluate"])


@sizes
async def test_sort_cycles(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("o")
        assert screen.table.sort_mode == "state"
        assert screen.table.shown_ids[:2] == ["unit_tests", "train_model"]
        await pilot.press("o")
        assert screen.table.shown_ids[0] == "train_model"  # longest duration
        await pilot.press("o", "o")
        assert screen.table.sort_mode == "plan"
        assert screen.table.shown_ids[0] == "fetch_data"


def _with_train_model_log(content: bytes) -> FakeClient:
    """The demo run's client, with ``content`` as train_model's first log."""
    path = run_log_path("run-demo", "train_model", 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return FakeClient(demo_snapshot(), demo_events())


async def _show_train_model_log(pilot: Pilot[None]) -> LogView:
    screen = await ready(pilot)
    await pilot.press("down", "down", "down", "l")  # train_model, log pane
    return screen.log_view


@sizes
async def test_log_reads_file_then_follows_live_lines(size: tuple[int, int]) -> None:
    client = _with_train_model_log("".join(f"line {i}\n" for i in range(8000)).encode())
    async with make_app(client).run_test(size=size) as pilot:
        log = await _show_train_model_log(pilot)
        await until(pilot, lambda: log.lines_widget.line_count == 5000)
        assert log.lines_widget.lines[-1] == "line 7999"  # the tail, bounded by max_lines
        client.emit(OutputLines("train_model", 1, ("line 7999", "fresh 1", "fresh 2")))
        await until(pilot, lambda: log.lines_widget.lines[-1] == "fresh 2")
        assert log.lines_widget.lines[-3:] == ["line 7999", "fresh 1", "fresh 2"]
        # follow: on by default, `f` pauses it
        assert log.follow
        await pilot.press("f")
        assert not log.follow and not log.lines_widget.auto_scroll
        # search jumps to a match
        await pilot.press("slash", *"line 4242", "enter")
        assert log.match_line is not None and log.lines_widget.lines[log.match_line] == "line 4242"
        # ML progress draws the loss curve
        client.emit(Progress("train_model", 1, T0 + 70, {"loss": 0.5, "epoch": 9, "epochs": 20}))
        await until(pilot, lambda: log.query_one("#loss-row").display)


@sizes
async def test_new_attempt_gets_a_separator(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press(*["down"] * 5)  # unit_tests, failed
        await until(pilot, lambda: screen.selected == "unit_tests")
        client.emit(TaskChanged("unit_tests", TaskState.RUNNING, 2, T0 + 66),
                    OutputLines("unit_tests", 2, ("retrying",)))
        await until(pilot, lambda: "retrying" in screen.log_view.lines_widget.lines)
        assert "── attempt 2 ──" in screen.log_view.lines_widget.lines


@sizes
async def test_tab_zoom_and_narrow_layout(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        narrow = size[0] < 120
        assert screen.has_class("-narrow") == narrow
        seen = []
        for _ in range(5):
            seen.append(screen.active_pane)
            visible = [p for p in ("tasks", "log", "dag", "pools", "system")
                       if screen.pane(p).display]
            assert screen.active_pane in visible
            assert len(visible) == (2 if narrow else 5)
            await pilot.press("tab")
        assert seen == ["tasks", "log", "dag", "pools", "system"]
        assert screen.active_pane == "tasks"
        await pilot.press("tab", "z")
        assert screen.zoomed == "log"
        assert [p for p in ("tasks", "log", "dag") if screen.pane(p).display] == ["log"]
        await pilot.press("z")
        assert screen.zoomed is None and screen.pane("tasks").display


@sizes
async def test_help_lists_every_binding(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        ids = {binding_id for row in app.screen.rows for binding_id in row[2].split()}
        for binding_id in ("run-start", "run-pause-resume", "task-cancel", "task-retry",
                           "task-skip", "run-cancel", "pool-grow", "pool-shrink",
                           "pool-resize", "open-log", "pane-zoom", "pane-next", "task-filter",
                           "theme-cycle", "help", "quit", "sort-tasks", "log-follow",
                           "log-next-match"):
            assert binding_id in ids, binding_id
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))


@sizes
async def test_theme_cycles_and_is_remembered(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        assert app.theme == "tek-dark"
        await pilot.press("t")
        assert app.theme == "tek-light"
        assert remembered_theme() == "tek-light"
        await pilot.press("t", "t")
        assert app.theme == "tek-dark"
        assert 'theme = "tek-dark"' in config_path().read_text()


async def test_palette_offers_every_screen_action() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        commands = list(app.get_system_commands(screen))
        titles = {cmd.title for cmd in commands}
        assert {"Pause", "Cancel", "Retry", "Skip", "Cancel run", "Zoom", "Filter",
                "Log", "Theme", "Help", "Sort"} <= titles
        assert "Start" not in titles  # the run has started: only what works now is offered
        helps = " ".join(cmd.help for cmd in commands)
        # not Textual's theme picker (its themes are not tek's), nor its text copying
        assert "Change the current theme" not in helps and "Copy" not in titles
        command = next(c for c in app.get_system_commands(screen) if c.title == "Skip")
        await command.callback()
        assert app.client.controls[-1].task_id == "fetch_data"  # type: ignore[union-attr]


@sizes
async def test_dag_selection_moves_the_table(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        assert screen.selected == "fetch_data"
        await pilot.press("tab", "tab")  # tasks → log → dag
        assert screen.active_pane == "dag"
        await pilot.press("right")  # downstream of fetch_data
        await until(pilot, lambda: screen.selected != "fetch_data")
        assert screen.selected in ("check_schema", "integration")
        assert screen.table.selected_task_id == screen.selected


async def test_a_broken_event_stream_is_reported_not_fatal() -> None:
    from core.errors import ProtocolError

    class BrokenClient(FakeClient):
        async def _stream(self, queue):  # type: ignore[no-untyped-def, override]
            yield demo_events()[0]
            raise ProtocolError("protocol version 9 is newer than 1")

    app = make_app(BrokenClient(demo_snapshot()))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: any("newer than 1" in str(n.message)
                                       for n in app._notifications))
        assert app.is_running
        await pilot.press("down")  # still answers keys


@sizes
async def test_huge_lines_are_clipped_and_the_tail_read_is_bounded(size: tuple[int, int]) -> None:
    """A task that printed 12 MB without a newline: the pane opens at once with it clipped.

    (Reading that log's tail froze the console for ~20 s at 50 MB: each block
    read copied everything read before it.)
    """
    from tek_tui.widgets.log_view import LINE_CHARS, TAIL_BYTES

    client = _with_train_model_log(b"x" * (12 << 20) + b"\ndone\n")
    assert run_log_path("run-demo", "train_model", 1).stat().st_size > 2 * TAIL_BYTES
    async with make_app(client).run_test(size=size) as pilot:
        log = await _show_train_model_log(pilot)
        await until(pilot, lambda: log.lines_widget.lines[-1:] == ["done"])
        first = log.lines_widget.lines[0]
        assert first.startswith("… " + "x" * LINE_CHARS + " … (")  # read from inside the line
        assert first.endswith(f"{TAIL_BYTES - len(b'done') - 2 - LINE_CHARS:,} more characters in the log file)")
        client.emit(OutputLines("train_model", 1, ("y" * (3 << 20),)))
        await until(pilot, lambda: log.lines_widget.lines[-1].startswith("y"))
        assert len(log.lines_widget.lines[-1]) < LINE_CHARS + 60
