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

#: Textual's own movement keys, which every pane shares (their bindings have no id).
NAVIGATION_ROWS: tuple[KeyRow, ...] = (
    ("↑↓ PgUp PgDn Home End", "Move in the focused pane", "", "every pane"),
    ("enter", "Open the log of the task under the cursor", "", "tasks pane"),
    ("esc", "Close a box or dialog", "", "every pane"),
)


def collect_key_rows(screen: Screen[Any]) -> list[KeyRow]:
    """The console's keys: the app's, the screen's and every pane widget's bindings.

    Args:
        screen: the screen the help is for.

    Returns:
        Rows in app, screen, widget order. Widget bindings without an ``id``
        (Textual's generic cursor, scroll and text-editing keys) and system
        bindings are left out; a key bound by several widgets shows once per
        place it works.
    """
    rows: list[KeyRow] = []
    seen: set[tuple[str, str, str]] = set()
    sources: list[tuple[str, DOMNode]] = [("everywhere", screen.app), ("screen", screen)]
    sources += [(_where(w), w) for w in screen.query("*")]
    for where, node in sources:
        for bindings in node._bindings.key_to_bindings.values():
            for binding in bindings:
                generic = not binding.id and node not in (screen.app, screen)
                if binding.system or not binding.description or generic:
                    continue
                key = screen.app.get_key_display(binding)
                mark = (key, binding.action, where)
                if mark in seen:
                    continue
                seen.add(mark)
                rows.append((key, binding.description, binding.id or "", where))
    return [*rows, *NAVIGATION_ROWS]


def _where(widget: DOMNode) -> str:
    """``log pane`` for a widget inside ``#pane-log``; else the widget's class name."""
    for node in widget.ancestors_with_self:
        node_id = getattr(node, "id", None) or ""
        if node_id.startswith("pane-"):
            return f"{node_id.removeprefix('pane-')} pane"
    return type(widget).__name__


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
        # "where" before "action": at 80 columns the wide key column left no
        # room for it, and "+ Grow pool" means little without "pools pane".
        table.add_columns("key", "where", "action", "id")
        for key, action, binding_id, where in self.rows:
            table.add_row(key, where, action, binding_id)
        legend = Text("states: ")
        for state in TaskState:
            legend.append_text(state_text(self.app.theme_variables, state))
            legend.append("  ")
        self.query_one("#help-legend", Static).update(legend)
        table.focus()

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help screen."""
        self.dismiss(None)
