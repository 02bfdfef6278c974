"""A row-cursor ``DataTable`` with the movement keys of less, vim and k9s.

Textual's ``DataTable`` binds ``home``/``end`` to the first/last *column*
(sideways); in a table of rows that reads as "did nothing". Here ``home``/``g``
go to the first row and ``end``/``G`` to the last, ``j``/``k`` move down/up.
The task table, the picker's lists and the help table all use it.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable


class RowTable(DataTable[Any]):
    """A :class:`DataTable` moved by rows: ``j``/``k``, ``g``/``G``, ``home``/``end``."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", id="row-down", show=False),
        Binding("k", "cursor_up", "Up", id="row-up", show=False),
        Binding("home,g", "scroll_top", "First row", id="row-first", show=False),
        Binding("end,G", "scroll_bottom", "Last row", id="row-last", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
