"""The help screen (``?``): every key of the console, where it works, and the state legend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from core.events import TaskState
from tek_tui.widgets.states import state_text

#: One row of the key table: (key, action, binding id, where it works).
KeyRow = tuple[str, str, str, str]


def collect_key_rows(screen: Screen[Any]) -> list[KeyRow]:
    """Every binding of the app, ``screen`` and the screen's widgets, once each.

    Args:
        screen: the screen the help is for.

    Returns:
        Rows in app, screen, widget order; system bindings and ones without a
        description are left out.
    """
    rows: list[KeyRow] = []
    seen: set[tuple[str, str, str]] = set()
    sources: list[tuple[str, DOMNode]] = [("everywhere", screen.app), ("screen", screen)]
    sources += [(type(w).__name__, w) for w in screen.query("*")]
    for where, node in sources:
        for key, bindings in node._bindings.key_to_bindings.items():
            for binding in bindings:
                if binding.system or not binding.description:
                    continue
                mark = (key, binding.action, where)
                if mark in seen:
                    continue
                seen.add(mark)
                rows.append((key, binding.description, binding.id or "", where))
    return rows


class HelpScreen(ModalScreen[None]):
    """Lists the key table the main screen collected from its bindings."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help-close")]

    def __init__(self, rows: Sequence[KeyRow]) -> None:
        super().__init__()
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("[b]tek keys[/b]  (esc closes)", id="help-title")
            yield DataTable(id="help-keys", cursor_type="row")
            yield Static(id="help-legend")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action", "id", "where")
        for row in self.rows:
            table.add_row(*row)
        legend = Text("states: ")
        for state in TaskState:
            legend.append_text(state_text(self.app.theme_variables, state))
            legend.append("  ")
        self.query_one("#help-legend", Static).update(legend)
        table.focus()

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help screen."""
        self.dismiss(None)
