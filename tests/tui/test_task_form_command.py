"""The task form's boxes: no text is selected on focus (a stray key replaces nothing), a
multi-line command is shown and edited whole, and ``w`` then saves only what changed."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Label

from tek_tui.app import TekApp
from tek_tui.screens.main import MainScreen
from tek_tui.screens.task_form import CommandBox, TaskForm
from tests.tui.fakes import sizes, until
from tests.tui.plan_console import console_on, main_screen, open_form

#: The tester's plan: no agent column, x_owner between standard columns, a two-line command.
EDIT = (
    "id,command,deps,x_owner,tags\n"
    'a,"echo ""multi""\necho line2",,alice,x;y\n'
    "b,echo b,a,bob,\n"
    "c,echo c,a b,carol,z\n"
)


@pytest.fixture
def edit_file(tmp_path: Path) -> Path:
    path = tmp_path / "edit.csv"
    path.write_text(EDIT, encoding="utf-8")
    return path


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def _form_on(pilot: object, app: TekApp, task_id: str) -> tuple[MainScreen, TaskForm]:
    screen = await main_screen(pilot, app)
    screen.table.select(task_id)  # type: ignore[attr-defined]
    await until(pilot, lambda: screen.selected == task_id)
    return screen, await open_form(pilot, app, "e")


async def _save(pilot: object, app: TekApp, screen: MainScreen) -> None:
    await until(pilot, lambda: app.screen is screen and screen.modified)
    await pilot.press("w")  # type: ignore[attr-defined]
    await until(pilot, lambda: not screen.modified)


@sizes
async def test_a_stray_key_adds_to_the_command_instead_of_replacing_it(
    edit_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(edit_file)
    async with app.run_test(size=size) as pilot:
        screen, form = await _form_on(pilot, app, "b")
        box = form.field("command")
        assert isinstance(box, CommandBox) and app.focused is box
        assert box.selected_text == "" and box.cursor_location == (0, len("echo b"))
        await pilot.press("x", "enter")
        await _save(pilot, app, screen)
    # Only b's row changed, and only by the key typed; no agent column was added.
    assert _text(edit_file) == EDIT.replace("b,echo b,", "b,echo bx,")


@sizes
async def test_moving_to_another_box_selects_nothing_either(
    edit_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(edit_file)
    async with app.run_test(size=size) as pilot:
        screen, form = await _form_on(pilot, app, "b")
        await pilot.press("down")  # command (one line) -> deps
        deps = form.field("deps")
        assert isinstance(deps, Input) and app.focused is deps
        assert deps.selected_text == "" and deps.cursor_position == len("a")
        await pilot.press("tab")
        name = form.field("name")
        await until(pilot, lambda: app.focused is name)
        await pilot.press("B", "shift+tab", "up", "up")  # deps, command, agent
        await until(pilot, lambda: app.focused is form.field("agent"))
        await pilot.press("up", *"bx")
        assert form.field("id").value == "bbx" and name.value == "B"
        await pilot.press("ctrl+a", "ctrl+k", "b", "enter")  # from a one-line box: applies
        await until(pilot, lambda: app.screen is screen)
        assert screen.plan is not None and screen.plan.task("b").label == "B"


@sizes
async def test_a_multiline_command_shows_every_line_and_edits_them_all(
    edit_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(edit_file)
    async with app.run_test(size=size) as pilot:
        screen, form = await _form_on(pilot, app, "a")
        box = form.field("command")
        assert isinstance(box, CommandBox) and app.focused is box
        label = form.query_one("#label-command", Label)
        await until(pilot, lambda: box.size.height == 2)  # both lines in view
        assert box.text == 'echo "multi"\necho line2' and "2 lines" in str(label.render())
        # The cursor is at the end of the last line: typing goes there, nothing is replaced.
        assert box.cursor_location == (1, len("echo line2")) and box.selected_text == ""
        await pilot.press("Z", "ctrl+j", *"echo 3")
        await until(pilot, lambda: box.size.height == 3 and "3 lines" in str(label.render()))
        assert box.text == 'echo "multi"\necho line2Z\necho 3'
        await pilot.press("enter")  # applies the form, as in every box
        await until(pilot, lambda: app.screen is screen)
        assert screen.plan is not None
        assert screen.plan.task("a").command == 'echo "multi"\necho line2Z\necho 3'
        await _save(pilot, app, screen)
    assert _text(edit_file) == EDIT.replace(
        'echo line2",', 'echo line2Z\necho 3",')


@sizes
async def test_up_and_down_move_through_the_lines_then_to_the_next_box(
    edit_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(edit_file)
    async with app.run_test(size=size) as pilot:
        _, form = await _form_on(pilot, app, "a")
        box = form.field("command")
        await pilot.press("up")
        assert app.focused is box and box.cursor_location[0] == 0
        await pilot.press("up")
        await until(pilot, lambda: app.focused is form.field("agent"))
        await pilot.press("down")
        await until(pilot, lambda: app.focused is box)
        await pilot.press("down", "down")  # to the last line, then out of the box
        await until(pilot, lambda: app.focused is form.field("deps"))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, TaskForm))


@sizes
async def test_a_new_task_gets_a_multiline_command(
    edit_file: Path, size: tuple[int, int]
) -> None:
    app = console_on(edit_file)
    async with app.run_test(size=size) as pilot:
        screen = await main_screen(pilot, app)
        form = await open_form(pilot, app, "a")
        assert app.focused is form.field("id")
        await pilot.press(*"d", "down", "down", *"echo 1", "ctrl+j", *"echo 2", "enter")
        await _save(pilot, app, screen)
    text = _text(edit_file)
    assert text == EDIT.replace("b,echo b,", 'd,"echo 1\necho 2",,,\nb,echo b,')
