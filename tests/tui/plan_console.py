"""The console on a small plan file: shared by the plan-editing tests (``plan_file``
is the fixture in ``tests/tui/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

from tek_tui.app import TekApp
from tek_tui.screens.main import MainScreen
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
