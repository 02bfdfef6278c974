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
from tek_tui.widgets.footer import TekFooter
from tek_tui.widgets.row_table import RowTable
from tek_tui.widgets.states import state_text

#: One row of the key table: (key, action, binding id, where it works).
KeyRow = tuple[str, str, str, str]

#: Textual's own movement keys, which every pane shares (their bindings have no id).
NAVIGATION_ROWS: tuple[KeyRow, ...] = (
    ("↑↓ PgUp PgDn", "Move in the focused pane", "", "every pane"),
    ("esc", "Close a box or dialog", "", "every pane"),
)


def collect_key_rows(screen: Screen[Any]) -> list[KeyRow]:
    """The console's keys: the app's, the screen's and every pane widget's bindings.

    Args:
        screen: the screen the help is for.

    Returns:
        Rows in app, screen, widget order, then what ``enter`` does on this
        screen (its ``ENTER_HELP`` row, if any) and the shared movement keys.
        Bindings without an ``id`` (Textual's generic cursor, scroll, copy
        and text-editing keys) and system bindings are left out; a key bound
        by several widgets shows once per place it works.
    """
    # One row per key and place: a key with two labels (``p`` Pause/Resume,
    # ``q`` Quit/Detach) reads "Pause / Resume", its ids "run-pause-resume run-resume".
    rows: dict[tuple[str, str], KeyRow] = {}
    sources: list[tuple[str, DOMNode]] = [("everywhere", screen.app), ("screen", screen)]
    sources += [(_where(w), w) for w in screen.query("*")]
    for where, node in sources:
        for bindings in node._bindings.key_to_bindings.values():
            for binding in bindings:
                # Only tek's bindings (each has an id): Textual's own (copy
                # text, focus next) are not keys of this console.
                if binding.system or not binding.description or not binding.id:
                    continue
                key = screen.app.get_key_display(binding)
                old = rows.get((key, where))
                if old is None:
                    rows[key, where] = (key, binding.description, binding.id, where)
                elif binding.description not in old[1].split(" / "):
                    rows[key, where] = (key, f"{old[1]} / {binding.description}",
                                        f"{old[2]} {binding.id}", where)
    enter: KeyRow | None = getattr(screen, "ENTER_HELP", None)
    return [*rows.values(), *([enter] if enter else []), *NAVIGATION_ROWS]


#: How the help names a place that is not a pane, by widget id.
PLACES = {"plan-list": "plan and run lists", "run-list": "plan and run lists",
          "help-keys": "help"}


def _where(widget: DOMNode) -> str:
    """``log pane`` for a widget inside ``#pane-log``; else a name a user knows
    (:data:`PLACES`), never a class name such as ``RowTable``."""
    for node in widget.ancestors_with_self:
        node_id = getattr(node, "id", None) or ""
        if node_id.startswith("pane-"):
            return f"{node_id.removeprefix('pane-')} pane"
    node_id = getattr(widget, "id", None) or ""
    if node_id in PLACES:
        return PLACES[node_id]
    if isinstance(widget, RowTable):
        return "lists"
    return node_id.replace("-", " ") or "screen"


class HelpScreen(ModalScreen[None]):
    """Lists the key table the main screen collected from its bindings."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help-close")]

    def __init__(self, rows: Sequence[KeyRow]) -> None:
        super().__init__()
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("[b]tek keys[/b]  (esc closes)", id="help-title")
            yield RowTable(id="help-keys")
            yield Static(id="help-legend")
        yield TekFooter()  # over the run screen's: only the keys that work here

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
