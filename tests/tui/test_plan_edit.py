"""Editing a plan in the console before the run starts: a/e/D/w, the task form, quitting."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.events import RunStatus, TaskState
from core.plan_edit import same_tasks
from core.plan_io import read_plan
from tek_tui.app import TekApp
from tek_tui.cli import main
from tek_tui.screens.confirm import ConfirmModal, SaveFirstModal
from tek_tui.screens.main import MainScreen
from tek_tui.widgets.run_bar import RunBar
from tests.tui.fakes import FakeClient, FrozenClock, demo_snapshot, sizes, until
from tests.tui.plan_console import (
    PLAN,
    console_on,
    main_screen,
    messages,
    modify,
    open_form,
    submit,
)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _bar(screen: MainScreen) -> str:
    return str(screen.query_one(RunBar).render())


@sizes
async def test_add_a_task_after_the_selected_one(plan_file: Path, size: tuple[int, int]) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        assert screen.selected == "prep"
        palette = {c.title for c in app.get_system_commands(screen)}
        assert {"Add", "Edit", "Delete", "Save"} <= palette  # and in the footer, help
        form = await open_form(pilot, app, "a")
        assert form.field("id").value == "" and form.field("agent").value == "shell"
        assert form.field("id").placeholder.startswith("e.g. ")
        assert app.focused is form.field("id")
        await pilot.press("ctrl+a", "ctrl+k", *"fetch")  # typed, as a user would
        form.field("command").value = "echo hi"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen)
        assert screen.plan is not None
        assert [t.id for t in screen.plan] == ["prep", "fetch", "train", "report"]
        assert screen.table.row_count == 4 and screen.selected == "fetch"
        assert screen.modified and "modified" in _bar(screen)
        assert _text(plan_file) == PLAN  # nothing written until w


@sizes
async def test_edit_a_command_and_rename_an_id_used_as_a_dep(
    plan_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        form = await open_form(pilot, app, "e")
        assert form.field("id").value == "prep" and app.focused is form.field("command")
        await submit(pilot, form, "command", "0.01")
        await until(pilot, lambda: app.screen is screen)
        assert screen.plan is not None and screen.plan.task("prep").command == "0.01"
        form = await open_form(pilot, app, "e")
        await submit(pilot, form, "id", "setup")
        await until(pilot, lambda: app.screen is screen)
        assert [t.id for t in screen.plan] == ["setup", "train", "report"]
        assert screen.plan.task("train").deps == ("setup",)
        assert screen.selected == "setup" and "setup" in screen.state.tasks  # type: ignore[union-attr]


@sizes
async def test_delete_with_dependants_asks_and_drops_the_deps(
    plan_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "train depends on prep" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen)
        assert screen.plan is not None and len(screen.plan) == 3 and not screen.modified
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: screen.plan is not None and len(screen.plan) == 2)
        assert screen.plan.task("train").deps == ()
        assert screen.table.row_count == 2 and screen.selected == "train"
        await pilot.press("down", "D")  # report: nobody depends on it, no question
        await until(pilot, lambda: len(screen.plan) == 1)  # type: ignore[arg-type]
        assert app.screen is screen


@sizes
async def test_invalid_input_is_shown_and_not_applied(
    plan_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        before = screen.plan
        form = await open_form(pilot, app, "e")
        form.field("deps").value = "nope"
        await submit(pilot, form, "cpus", "lots")
        await until(pilot, lambda: bool(form.problems))
        assert app.screen is form
        shown = str(form.query_one("#task-form-problems-text").render())
        assert "cpus: not a number (lots)" in shown
        assert any(p.startswith("deps: ") and "nope" in p for p in form.problems)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert screen.plan is before and not screen.modified
        assert "modified" not in _bar(screen)


@sizes
async def test_save_and_read_back(plan_file: Path, size: tuple[int, int]) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        form = await open_form(pilot, app, "a")
        form.field("id").value = "q,uoted"
        await submit(pilot, form, "id", "extra")
        form.field("command").value = 'echo "a, b"'
        await submit(pilot, form, "env", "K=V;L=2")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("w")
        await until(pilot, lambda: not screen.modified)
        assert "modified" not in _bar(screen)
        assert any(f"saved 4 tasks to {plan_file}" in m for m in messages(app))
        assert screen.plan is not None and same_tasks(read_plan(plan_file), screen.plan)
        assert read_plan(plan_file).task("extra").env == (("K", "V"), ("L", "2"))
    assert main(["validate", str(plan_file)]) == 0


@sizes
async def test_editing_is_refused_during_a_run(plan_file: Path, size: tuple[int, int]) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        await pilot.press("s", "e")  # `e` right behind `s`: before the run says it started
        await pilot.pause()
        assert app.screen is screen
        await until(pilot, lambda: screen.state is not None
                    and screen.state.counts.get(TaskState.SUCCEEDED, 0) == 3, limit=20)
        for key in ("a", "e", "D", "w"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen
        assert "refused: the plan is running" in messages(app)
        assert _text(plan_file) == PLAN


@sizes
async def test_start_after_saving_runs_the_edited_plan(
    plan_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        form = await open_form(pilot, app, "a")
        form.field("agent").value = "noop"
        await submit(pilot, form, "id", "extra")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("s")
        await pilot.pause()
        assert any("unsaved changes" in m for m in messages(app))
        assert screen.state is not None and screen.state.status.value == "pending"
        await pilot.press("w")
        await until(pilot, lambda: not screen.modified)
        await pilot.press("s", "s")  # the second one must not build a second run
        await until(pilot, lambda: screen.state is not None
                    and screen.state.counts.get(TaskState.SUCCEEDED, 0) == 4, limit=20)
        assert sorted(screen.state.tasks) == ["extra", "prep", "report", "train"]
        assert screen.client.snapshot().plan_path == str(plan_file)
        assert not [m for m in messages(app) if m.startswith("error")]
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)
    # The journal holds the edited run only: the loaded one never started.
    from core.store import open_store

    with open_store() as store:
        runs = store.list_runs()
    assert [(r.task_count, r.status) for r in runs] == [(4, "succeeded")]


@sizes
async def test_quit_with_unsaved_changes_asks(plan_file: Path, size: tuple[int, int]) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        await modify(pilot, app, screen)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, SaveFirstModal))
        assert "unsaved changes" in app.screen.question  # type: ignore[attr-defined]
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen)
        assert app.is_running
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, SaveFirstModal))
        await pilot.press("d")
        await until(pilot, lambda: not app.is_running, limit=20)
    assert _text(plan_file) == PLAN


async def test_quit_with_unsaved_changes_can_save_first(plan_file: Path) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await main_screen(pilot, app)
        await modify(pilot, app, screen)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, SaveFirstModal))
        await pilot.press("s")
        await until(pilot, lambda: not app.is_running, limit=20)
    assert read_plan(plan_file).task("prep").command == "0"


async def test_no_plan_no_editing_keys() -> None:
    """A run this console did not load (attached client): nothing to edit, keys hidden."""
    client = FakeClient(demo_snapshot())
    app = TekApp(client=client, clock=FrozenClock(), theme="tek-dark")
    async with app.run_test(size=(200, 50)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        shown = {b.action for _n, b, enabled, _t in screen.active_bindings.values() if enabled}
        assert not shown & {"add_task", "edit_task", "delete_task", "save_plan"}
        assert not {"Add", "Edit", "Save"} & {c.title for c in app.get_system_commands(screen)}
        await pilot.press("e", "a", "w")
        await pilot.pause()
        assert app.screen is screen and not app._notifications


@sizes
async def test_save_without_changes_leaves_the_file(tmp_path: Path, size: tuple[int, int]) -> None:
    own = tmp_path / "own.csv"
    text = 'id , agent,command\n"a",noop,\n'  # a layout tek's writer would change
    own.write_text(text, encoding="utf-8")
    app = console_on(own)
    async with app.run_test(size=size) as pilot:
        await main_screen(pilot, app)
        await pilot.press("w")
        await until(pilot, lambda: any("no changes to save" in m for m in messages(app)))
        assert _text(own) == text


async def test_a_failed_save_says_why_and_stays_modified(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    plan_file = folder / "demo.csv"
    plan_file.write_text(PLAN, encoding="utf-8")
    app = console_on(plan_file)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await main_screen(pilot, app)
        await modify(pilot, app, screen)
        shutil.rmtree(folder)  # the folder went away under the console
        await pilot.press("w")
        await until(pilot, lambda: any(m.startswith("not saved: ") for m in messages(app)))
        assert screen.modified and "modified" in _bar(screen)
        assert any("cannot write" in m for m in messages(app))


async def test_the_editing_keys_leave_the_footer_once_the_run_starts(plan_file: Path) -> None:
    from tek_tui.widgets.footer import TekFooter

    def footer(screen: MainScreen) -> set[str]:
        return {str(k.description) for k in screen.query_one(TekFooter).query("FooterKey")}

    app = console_on(plan_file)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await main_screen(pilot, app)
        await until(pilot, lambda: "Edit" in footer(screen))
        assert {"Add", "Delete", "Save"} <= footer(screen)
        await pilot.press("s")
        await until(pilot, lambda: screen.state is not None
                    and screen.state.counts.get(TaskState.SUCCEEDED, 0) == 3, limit=20)
        await until(pilot, lambda: not {"Add", "Edit", "Delete", "Save"} & footer(screen))
        assert "Help" in footer(screen)


def _all_ended(screen: MainScreen) -> bool:
    """Every task of the started run has ended (the console keeps its run open)."""
    state = screen.state
    return state is not None and state.status is not RunStatus.PENDING and all(
        t.state.is_terminal for t in state.tasks.values())


def _state_of(screen: MainScreen, task_id: str) -> TaskState:
    assert screen.state is not None
    return screen.state.tasks[task_id].state


@sizes
async def test_controls_before_start_survive_edits_and_apply_to_added_tasks(
    plan_file: Path, size: tuple[int, int]
) -> None:
    """A skip given before an edit was undone by it (the edited plan's run never got it),
    and an added task could not be skipped ("unknown task") until the run started."""
    app = console_on(plan_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        await pilot.press("down", "down", "x")  # skip report
        await until(pilot, lambda: _state_of(screen, "report") is TaskState.SKIPPED)
        await pilot.press("up", "up")
        form = await open_form(pilot, app, "a")
        form.field("agent").value = "noop"
        await submit(pilot, form, "id", "extra")
        await until(pilot, lambda: screen.selected == "extra")
        assert _state_of(screen, "report") is TaskState.SKIPPED  # the edit kept it
        await pilot.press("x")  # an added task can be skipped before the start
        await until(pilot, lambda: _state_of(screen, "extra") is TaskState.SKIPPED)
        await pilot.press("w")
        await until(pilot, lambda: not screen.modified)
        await pilot.press("s")
        await until(pilot, lambda: _all_ended(screen), limit=20)
        states = {tid: t.state for tid, t in screen.state.tasks.items()}
        assert states == {"prep": TaskState.SUCCEEDED, "extra": TaskState.SKIPPED,
                          "train": TaskState.SUCCEEDED, "report": TaskState.SKIPPED}
        assert not [m for m in messages(app) if m.startswith(("refused", "dropped"))]


async def test_a_control_whose_task_was_deleted_is_dropped_and_named(plan_file: Path) -> None:
    app = console_on(plan_file)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await main_screen(pilot, app)
        await pilot.press("down", "down", "x")  # skip report, then delete it
        await until(pilot, lambda: _state_of(screen, "report") is TaskState.SKIPPED)
        await pilot.press("D")
        await until(pilot, lambda: screen.plan is not None and len(screen.plan) == 2)
        await until(pilot, lambda: any(m.startswith("dropped after the edit") and "report" in m
                                       for m in messages(app)))
        await pilot.press("w")
        await until(pilot, lambda: not screen.modified)
        await pilot.press("s")
        await until(pilot, lambda: _all_ended(screen), limit=20)
        assert {t.state for t in screen.state.tasks.values()} == {TaskState.SUCCEEDED}
