"""The help screen (``?``): every key of the console, where it works, and the state legend.

The key table's columns are sized to the box (:func:`fit_help_columns`):
each at least as wide as its longest word, and a cell longer than its column
wraps onto more lines. At 80 columns the ids were cut (``run-pause-re``) at
the box's edge.
"""

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


#: Cells DataTable adds around each column (``cell_padding`` 1, both sides).
_PADDING = 2
#: The action column's narrowest width, whatever the box.
ACTION_MIN = 12
#: The action column's width before the other columns grow past their longest word.
ACTION_WIDE = 24


def fit_help_columns(available: int, rows: Sequence[KeyRow]) -> dict[str, int]:
    """Width of each help column (without padding) for a table ``available`` cells wide.

    Every column gets its longest word (a cell of several words wraps), the
    action at least :data:`ACTION_MIN`; room left widens the action to
    :data:`ACTION_WIDE`, then the others to their longest cell, then the action.

    Args:
        available: the table's width in cells, scroll bar excluded.
        rows: the key rows shown.

    Returns:
        A width by column key: ``key``, ``where``, ``action``, ``id``.
    """
    columns = {"key": 0, "where": 3, "action": 1, "id": 2}  # column: index in a KeyRow
    cells = {key: [row[i] for row in rows] + [key] for key, i in columns.items()}
    longest = {key: max(len(cell) for cell in texts) for key, texts in cells.items()}
    fitted = {key: max(len(word) for cell in texts for word in cell.split() or [""])
              for key, texts in cells.items()}
    fitted["action"] = max(ACTION_MIN, fitted["action"])
    room = available - sum(fitted.values()) - len(columns) * _PADDING
    # Room left goes to what reads worst wrapped first: the action (up to
    # ACTION_WIDE), the ids, the keys and places, then the rest of the action.
    for key, up_to in (("action", ACTION_WIDE), ("id", longest["id"]),
                       ("key", longest["key"]), ("where", longest["where"]),
                       ("action", longest["action"])):
        grow = max(0, min(room, up_to - fitted[key]))
        fitted[key] += grow
        room -= grow
    return fitted


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
        # Rows at once (a key pressed as the help opens moves in them), sized
        # for the box the stylesheet gives at this width; resized once laid out.
        self._fill(min(self.app.size.width * 9 // 10, 110) - 7)  # border, padding, scroll bar
        legend = Text("states: ")
        for state in TaskState:
            legend.append_text(state_text(self.app.theme_variables, state))
            legend.append("  ")
        self.query_one("#help-legend", Static).update(legend)
        table.focus()

    def on_resize(self) -> None:
        """A new width: fit the columns to the box again."""
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        table = self.query_one(DataTable)
        # The vertical scroll bar's cell (tek.tcss) is kept whether it shows or not.
        self._fill(table.size.width - table.styles.scrollbar_size_vertical)

    def _fill(self, available: int) -> None:
        """(Re)build the key table for a table ``available`` cells wide."""
        widths = fit_help_columns(available, self.rows)
        table = self.query_one(DataTable)
        if [c.width for c in table.columns.values()] == [widths[k] for k in widths]:
            return
        row = table.cursor_row
        table.clear(columns=True)
        # "where" before "action": at 80 columns the wide key column left no
        # room for it, and "+ Grow pool" means little without "pools pane".
        for key in ("key", "where", "action", "id"):
            table.add_column(key, key=key, width=widths[key])
        for key, action, binding_id, where in self.rows:
            # height None: as many lines as the longest cell wraps onto
            table.add_row(key, where, action, binding_id, height=None)
        table.move_cursor(row=row)

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help screen."""
        self.dismiss(None)
