"""Pilot tests for problems found driving ``tek tui`` in tmux (the console audit).

Each test reproduces one problem as a user met it: a control acting on a task
the filtered table no longer shows, ``j``/``k`` not moving, footer entries for
help and quit pushed off an 80-column screen, the run bar cut mid-phrase, a
loss figure truncated in the progress column, and ``esc`` not leading back to
the task table, and the picker failing on a plan run twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Footer, Input
from textual.widgets._footer import FooterKey

from core.events import (
    AdmissionChanged,
    CancelTask,
    OutputDropped,
    Pause,
    Resume,
    RunFinished,
    RunStatus,
    TaskChanged,
    TaskInfo,
    TaskState,
)
from tek_tui.app import TekApp
from tek_tui.screens.confirm import ConfirmModal
from tek_tui.screens.help import HelpScreen
from tek_tui.screens.main import MainScreen
from tek_tui.screens.picker import PickerScreen
from tek_tui.widgets.run_bar import RunBar
from tek_tui.widgets.task_table import progress_text
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
async def test_selection_follows_a_row_that_leaves_the_filter(size: tuple[int, int]) -> None:
    """``state:run`` filter; the running task ends: ``c`` must not cancel a hidden task."""
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("slash", *"state:run", "enter")
        await until(pilot, lambda: screen.table.shown_ids == ["train_model"])
        await until(pilot, lambda: screen.selected == "train_model")
        client.emit(TaskChanged("train_model", TaskState.SUCCEEDED, 1, T0 + 60, exit_code=0),
                    TaskChanged("evaluate", TaskState.RUNNING, 1, T0 + 61))
        await until(pilot, lambda: screen.table.shown_ids == ["evaluate"])
        await until(pilot, lambda: screen.selected == "evaluate")
        await pilot.press("c")  # evaluate has tasks downstream: asks, naming it
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "evaluate" in app.screen.question
        await pilot.press("y")
        await until(pilot, lambda: client.controls == [CancelTask("evaluate")])
        # The last shown row leaves: nothing is selected, and `c` says so.
        client.emit(TaskChanged("evaluate", TaskState.SUCCEEDED, 1, T0 + 62, exit_code=0))
        await until(pilot, lambda: screen.table.row_count == 0)
        await until(pilot, lambda: screen.selected is None)
        await pilot.press("c")
        assert client.controls == [CancelTask("evaluate")]


@sizes
async def test_j_and_k_move_in_the_task_table(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        assert screen.selected == "fetch_data"
        await pilot.press("j", "j")
        await until(pilot, lambda: screen.selected == "build_features")
        await pilot.press("k")
        await until(pilot, lambda: screen.selected == "check_schema")


def _footer_keys(app: object) -> list[FooterKey]:
    footer = app.screen.query_one(Footer)  # type: ignore[attr-defined]
    return [k for k in footer.query(FooterKey) if not k.has_class("-command-palette")]


def _fits(app: object, key: FooterKey) -> bool:
    footer = app.screen.query_one(Footer)  # type: ignore[attr-defined]
    region = key.region
    return region.width > 0 and region.right <= footer.region.right


@sizes
@pytest.mark.parametrize("pane_keys", [(), ("tab",), ("tab", "tab", "tab")],
                         ids=["tasks", "log", "pools"])
async def test_footer_always_shows_help_and_quit_and_no_cut_entry(
    size: tuple[int, int], pane_keys: tuple[str, ...]
) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press(*pane_keys)
        await until(pilot, lambda: any(k.action == "help" and k.region.width
                                       for k in _footer_keys(app)))
        keys = _footer_keys(app)
        shown = {k.action for k in keys if k.display and _fits(app, k)}
        assert {"help", "quit_console"} <= shown, shown
        palette = app.screen.query_one(Footer).query_one(".-command-palette")
        for key in keys:
            if key.display:  # whole, and left of the palette key
                assert _fits(app, key) and key.region.right <= palette.region.x, key.description


async def test_run_bar_never_wraps_and_does_not_repeat_a_user_pause() -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await pilot.press("p")
        client.emit(AdmissionChanged(True, "paused by user", T0 + 66))
        await until(pilot, lambda: screen.state.status is RunStatus.PAUSED)
        await pilot.pause(0.2)
        text = str(screen.query_one(RunBar).render())
        assert "paused" in text and "admission paused" not in text
        # Paused for memory while running: the reason is shown, and a line
        # too long for the screen ends in an ellipsis instead of vanishing.
        client.emit(AdmissionChanged(True, "available memory 410 MiB below floor 512 MiB",
                                     T0 + 67))
        await until(pilot, lambda: screen.state.status is RunStatus.RUNNING)
        await pilot.pause(0.2)
        bar = screen.query_one(RunBar)
        line = "".join(s.text for s in bar.render_line(0)).rstrip()
        assert "⏸ available" in line and line.endswith("…"), line
        # Millions of dropped live lines (a task flooding its output) read grouped.
        client.emit(OutputDropped("train_model", 1, 7_427_527))
        # (At 80 columns beside a long admission reason it says it shorter.)
        await until(pilot, lambda: "7,427,527 dropped" in str(bar.render()))
        line = "".join(s.text for s in bar.render_line(0)).rstrip()
        assert "· 1m05s" in line and len(line) <= 80, line


def test_progress_text_keeps_the_loss_whole_in_its_column() -> None:
    task = TaskInfo(id="t", name="t", agent="ml", pool="ml", deps=(), fraction=1.0,
                    progress={"epoch": 20, "epochs": 20, "loss": 0.31234})
    text = progress_text(task)
    assert text.endswith("loss 0.3123") and len(text) <= 22, text
    # Without epochs the fraction is the only progress figure and stays.
    assert progress_text(TaskInfo(id="t", name="t", agent="sh", pool="sh", deps=(),
                                         fraction=0.5)) == " 50%"


@sizes
async def test_escape_leads_back_to_the_task_table(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        for keys in (("tab",), ("tab", "tab"), ("tab", "tab", "tab", "tab")):
            await pilot.press(*keys)
            assert screen.active_pane != "tasks"
            await pilot.press("escape")
            assert screen.active_pane == "tasks" and app.focused is screen.table
        # In the log: the first esc closes the search box, the second goes back.
        await pilot.press("tab", "slash")
        await pilot.press("escape")
        assert screen.active_pane == "log"
        await pilot.press("escape")
        assert app.focused is screen.table
        # Zoomed: esc unzooms.
        await pilot.press("z")
        assert screen.zoomed == "tasks"
        await pilot.press("escape")
        assert screen.zoomed is None


async def test_picker_lists_two_runs_of_one_plan_and_reopens_it(tmp_path: Path) -> None:
    """Found with ``tek tui`` after running a plan twice: the run list failed
    with "row key already exists" (rows were keyed by plan path)."""
    from core.journal import create_journal
    from core.plan_io import read_plan
    from core.store import open_store
    from tests.core.journal_helpers import finished, flat, ran, started

    plan_path = tmp_path / "p.csv"
    plan_path.write_text("id,agent,command\na,noop,\n")
    ids = []
    with open_store() as store:
        for _ in range(2):  # two runs of the plan that ran and ended
            journal = create_journal(read_plan(plan_path), store=store)
            journal.recorder.record_sync(
                flat(started(journal.run_id, 1), ran("a"), finished(journal.run_id)))
            ids.append(journal.run_id)
    app = TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        runs = app.screen.query_one("#run-list", DataTable)
        await until(pilot, lambda: runs.row_count == 2)
        assert not app._notifications
        assert sorted(str(runs.get_row_at(i)[0]).split()[0] for i in range(2)) == sorted(ids)
        runs.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None)
        assert app.screen.table.row_count == 1


@sizes
async def test_filter_says_how_many_tasks_match_and_when_none_do(size: tuple[int, int]) -> None:
    """A filter matching nothing left an empty table with no word of why."""
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        pane = screen.pane("tasks")
        await pilot.press("slash", *"state:run", "enter")
        await until(pilot, lambda: pane.border_title == "Tasks · state:run · 1 of 12")
        client.emit(TaskChanged("train_model", TaskState.SUCCEEDED, 1, T0 + 60, exit_code=0))
        await until(pilot, lambda: pane.border_title
                    == "Tasks · no task matches state:run (/ edits, esc clears)")
        await pilot.press("slash", "ctrl+u", "enter")
        await until(pilot, lambda: pane.border_title == "Tasks")


async def test_footer_offers_resume_while_paused() -> None:
    """The footer said "p Pause" while the run was paused."""
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)

        def labels() -> set[str]:
            return {k.description for k in _footer_keys(app)}

        await until(pilot, lambda: "Pause" in labels() and "Resume" not in labels())
        await pilot.press("p")
        client.emit(AdmissionChanged(True, "paused by user", T0 + 66))
        await until(pilot, lambda: "Resume" in labels() and "Pause" not in labels())
        await pilot.press("p")
        client.emit(AdmissionChanged(False, "", T0 + 67))
        await until(pilot, lambda: "Pause" in labels())
        assert client.controls == [Pause(), Resume()]
        assert screen.state.status is RunStatus.RUNNING


@sizes
async def test_a_finished_run_shows_no_stale_admission_pause(size: tuple[int, int]) -> None:
    """After ``C``, the run bar kept saying "run stopping" once the run had ended."""
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        client.emit(AdmissionChanged(True, "run stopping", T0 + 66),
                    RunFinished("run-demo", RunStatus.CANCELLED, {}, 66.0, T0 + 67))
        await until(pilot, lambda: screen.state.finished)
        await pilot.pause(0.3)
        bar = str(screen.query_one(RunBar).render())
        assert "cancelled" in bar and "stopping" not in bar, bar
        await pilot.press("tab", "tab", "tab")
        pools = screen.query_one("#pools-pane")
        await until(pilot, lambda: screen.pane_visible("pools"))
        await pilot.pause(0.3)
        assert not pools.admission_paused


async def test_help_at_80x24_shows_where_each_key_works() -> None:
    """The help table's "where" column was off screen at 80 columns."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.2)
        table = app.screen.query_one("#help-keys", DataTable)
        lines = ["".join(s.text for s in table.render_line(y)) for y in range(table.size.height)]
        assert "where" in lines[0] and "action" in lines[0], lines[0]
        assert any("everywhere" in line and "Quit" in line for line in lines), lines


async def test_j_and_k_scroll_the_log() -> None:
    """README: ``jk`` move in every pane; in the log they did nothing."""
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await pilot.press("l")
        screen.log_view.append([(1, f"line {i}") for i in range(200)])
        log = screen.log_view.lines_widget
        await until(pilot, lambda: log.line_count >= 200 and log.scroll_y > 0)
        await pilot.press("f")  # hold still
        bottom = log.scroll_y
        await pilot.press("k", "k")
        await until(pilot, lambda: log.scroll_y == bottom - 2)
        await pilot.press("j")
        await until(pilot, lambda: log.scroll_y == bottom - 1)


async def test_filter_box_footer_and_hint() -> None:
    """With the filter box open the footer offered only "/ Filter" (which types a "/")."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        await pilot.press("slash")
        box = screen.query_one("#task-filter", Input)
        assert app.focused is box and "esc" in str(box.border_subtitle)
        await until(pilot, lambda: "filter" not in {k.action for k in _footer_keys(app)})
        await pilot.press(*"a/b", "enter")
        assert screen.table.filter_text == "a/b"


async def test_sort_is_named_as_its_column() -> None:
    """``o`` said "sorted by duration" for the column headed "time"."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("o", "o")
        messages = [str(n.message) for n in app._notifications]
        assert messages == ["sorted by time"], messages  # it replaced "sorted by state"
        await pilot.press("o", "o")
        assert str(list(app._notifications)[-1].message) == "sorted by plan order"


async def test_a_damaged_journal_runs_the_plan_without_one_and_says_so(tmp_path: Path, tek_home: Path) -> None:
    """The console never writes into a damaged journal: it runs unjournaled and warns."""
    from core.journal import create_journal
    from core.store import open_store
    from tests.core.journal_helpers import chain_plan, damage_a_middle_page

    db = tek_home / "tek.db"
    with open_store(db) as store:
        create_journal(chain_plan(3000), store=store).ready()
    damage_a_middle_page(db)
    before = db.read_bytes()
    plan_path = tmp_path / "p.csv"
    plan_path.write_text("id,agent,command\na,noop,\n")
    app = TekApp(plan_path=plan_path, search_dirs=[tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.state is not None)
        await until(pilot, lambda: bool(app._notifications))
        (note,) = list(app._notifications)
        assert note.message.startswith("running without a journal: ") and "journal is damaged" in note.message
        assert note.severity == "warning"
    assert db.read_bytes() == before


async def test_a_plan_left_before_its_start_leaves_no_run_in_history(tmp_path: Path) -> None:
    """Opening a plan to look at it and quitting recorded a cancelled run with nothing run."""
    from core.store import open_store

    plan_path = tmp_path / "p.csv"
    plan_path.write_text("id,agent,command\na,noop,\n")
    app = TekApp(plan_path=plan_path, search_dirs=[tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.state is not None)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    with open_store() as store:
        assert store.list_runs() == []


async def test_the_run_clock_stops_when_every_task_has_ended(tmp_path: Path) -> None:
    """A console run stays open after its last task (for retries); its clock kept
    counting, so a run of a second read "1h" an hour later."""
    import time

    plan_path = tmp_path / "p.csv"
    plan_path.write_text("id,agent,command\na,noop,\n")
    app = TekApp(plan_path=plan_path, search_dirs=[tmp_path], start=True,
                 clock=lambda: time.time() + 3600)  # the console looks an hour later
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.state is not None
                    and app.screen.state.counts.get(TaskState.SUCCEEDED) == 1)
        bar = app.screen.query_one(RunBar)
        await until(pilot, lambda: "all tasks ended" in str(bar.render()))
        assert str(bar.render()).endswith("· 0s")


@pytest.mark.parametrize(("command", "code"), [("true", 0), ("exit 3", 1)])
async def test_the_console_exits_as_tek_run_does(tmp_path: Path, command: str, code: int) -> None:
    """`tek tui PLAN --start` in a script: 0 when the run succeeded, 1 when a task failed."""
    plan_path = tmp_path / "p.csv"
    plan_path.write_text(f"id,command\na,{command}\n")
    app = TekApp(plan_path=plan_path, search_dirs=[tmp_path], start=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None and not app.screen.state.active
                    and app.screen.state.started_ts is not None, limit=20)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)
    assert app.return_value == code
