"""The console on a small plan file: shared by the plan-editing tests (``plan_file``
is the fixture in ``tests/tui/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

from tek_tui.app import TekApp
from tek_tui.screens.main import MainScreen
from tek_tui.screens.task_form import TaskForm
from tests.tui.fakes import until

PLAN = "id,agent,command,deps\nprep,noop,,\ntrain,noop,,prep\nreport,noop,,train\n"


def console_on(plan_file: Path) -> TekApp:
    """The console opened on ``plan_file``."""
    return TekApp(plan_path=plan_file, search_dirs=[plan_file.parent], theme="tek-dark")


async def main_screen(pilot: object, app: TekApp) -> MainScreen:
    """The main screen, once its run state and selection are there."""
    await until(pilot, lambda: isinstance(app.screen, MainScreen)
                and app.screen.state is not None and app.screen.selected is not None, limit=20)
    screen = app.screen
    assert isinstance(screen, MainScreen)
    return screen


def messages(app: TekApp) -> list[str]:
    """Every notification so far, as ``title: message``."""
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def open_form(pilot: object, app: TekApp, key: str) -> TaskForm:
    """Press ``key`` (``a`` or ``e``) and return the task form it opens."""
    await pilot.press(key)  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, TaskForm))
    form = app.screen
    assert isinstance(form, TaskForm)
    return form


async def submit(pilot: object, form: TaskForm, column: str, value: str) -> None:
    """Type ``value`` into the form's ``column`` box and press enter."""
    box = form.field(column)
    box.value = value
    box.focus()
    await pilot.press("enter")  # type: ignore[attr-defined]


async def modify(pilot: object, app: TekApp, screen: MainScreen) -> None:
    """Edit the selected task's command (to ``0``): the plan has unsaved changes."""
    await submit(pilot, await open_form(pilot, app, "e"), "command", "0")
    await until(pilot, lambda: app.screen is screen and screen.modified)
