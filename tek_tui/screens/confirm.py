"""Questions as modals: ``ConfirmModal(question)`` answers ``bool`` via ``dismiss``;
``SaveFirstModal`` asks what to do with unsaved plan edits on quit."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tek_tui.widgets.footer import TekFooter


class ConfirmModal(ModalScreen[bool]):
    """Ask before doing something that cannot be undone (cancel run, quit)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self._yes, self._no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(classes="modal-buttons"):
                yield Button(f"{self._yes} (y)", id="yes", variant="error")
                yield Button(f"{self._no} (n)", id="no", variant="primary")
        # Its own footer, over the run screen's: only the keys that work here.
        yield TekFooter()

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button answers the question."""
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        """Answer from the keyboard."""
        self.dismiss(answer)


class SaveFirstModal(ModalScreen[str]):
    """Quit with unsaved edits: ``"save"`` (save, then quit), ``"discard"`` or ``"stay"``."""

    BINDINGS = [
        Binding("s", "answer('save')", "Save and quit", id="save-first-save"),
        Binding("d", "answer('discard')", "Quit without saving", id="save-first-discard"),
        Binding("n,escape", "answer('stay')", "Stay", id="save-first-stay"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="save-first-box", classes="modal-box"):
            yield Static(self.question, id="confirm-question")
            with Horizontal(classes="modal-buttons"):
                yield Button("Save and quit (s)", id="save", variant="primary")
                yield Button("Quit without saving (d)", id="discard", variant="error")
                yield Button("Stay (n)", id="stay")
        yield TekFooter()

    def on_mount(self) -> None:
        self.query_one("#save", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button answers the question."""
        event.stop()
        self.dismiss(event.button.id or "stay")

    def action_answer(self, answer: str) -> None:
        """Answer from the keyboard."""
        self.dismiss(answer)
