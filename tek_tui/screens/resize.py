"""Set a pool's size by typing it: ``ResizeModal(pool, size)`` answers the new size or None."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tek_tui.widgets.footer import TekFooter

#: Largest pool size accepted from the keyboard.
MAX_POOL_SIZE = 1024


class ResizeModal(ModalScreen[int | None]):
    """Ask for a pool's new size."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="resize-cancel")]

    def __init__(self, pool: str, size: int) -> None:
        super().__init__()
        self.pool = pool
        self.size_now = size

    def compose(self) -> ComposeResult:
        with Vertical(id="resize-box", classes="modal-box"):
            yield Static(f"New size for pool [b]{self.pool}[/b] (now {self.size_now}):")
            yield Input(str(self.size_now), id="resize-input", type="integer")
            yield Static("", id="resize-error")
        yield TekFooter()  # over the run screen's: only the keys that work here

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            size = int(event.value)
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_POOL_SIZE:
            self.query_one("#resize-error", Static).update(
                f"size must be a whole number from 0 to {MAX_POOL_SIZE} (got {event.value!r})"
            )
            return
        self.dismiss(size)

    def action_cancel(self) -> None:
        """Close without resizing."""
        self.dismiss(None)
