"""The screen shown while a plan file is read and its run built.

``tek tui PLAN`` used to show the plan picker during the load, so an ``enter``
pressed then opened the picker's highlighted plan instead of PLAN. While a
plan loads the console now shows only this screen: it names the plan, binds
no key that could act on another one (``q`` quits, ``?`` and ``t`` still
work), and the app replaces it with the run's main screen, or with the picker
listing the plan's problems when it cannot be run.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import LoadingIndicator, Static

from tek_tui.widgets.footer import TekFooter


class LoadingScreen(Screen[None]):
    """``loading PLAN…`` with a spinner, until the plan is read and its run built."""

    BINDINGS = [Binding("q", "app.quit", "Quit", id="loading-quit")]

    def __init__(self, path: Path, verb: str = "loading") -> None:
        super().__init__()
        self.path = path
        """The plan being loaded (or the socket of the run being attached to)."""
        self.verb = verb

    def compose(self) -> ComposeResult:
        name = self.path.stem if self.path.suffix == ".sock" else self.path.name
        with Middle(id="loading"):
            with Center():
                yield Static(f"{self.verb} [b]{escape(name)}[/b]…", id="loading-text")
            with Center():
                yield Static(escape(str(self.path.parent)), id="loading-folder")
            yield LoadingIndicator(id="loading-spinner")
        yield TekFooter()
