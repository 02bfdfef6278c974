"""The task form: one text box per plan column; answers the edited :class:`Plan`, or None.

``TaskForm(plan, replace=id)`` edits a task, ``TaskForm(plan, after=id)`` adds
one after it. The boxes hold CSV cell text (what the plan file would say, an
empty box meaning the column's default). ``enter`` in any box checks the whole
edited plan with :func:`core.plan_edit.put_task` (the reader ``tek validate``
uses): problems are listed in the form, one line each, and nothing is applied
until there are none; ``esc`` closes it unchanged. ``up``/``down`` move between
boxes like ``tab``/``shift+tab``. After a refused ``enter`` the focus goes to
the first box with a problem; the problem list scrolls and says how many there
are. ``e`` puts the cursor on ``command`` (what is edited most; the id box is
one ``up`` away), at the end of its text; the focused box is highlighted. A
new task's id box starts empty, with an example as its placeholder (a default
id looked like a value).

No box selects its text when focused (Textual's default): with the text
selected, one stray key replaced the whole command, and ``enter`` applied it.

The command may span lines (a quoted CSV cell), so its box is a
:class:`CommandBox`, a ``TextArea`` that grows to four lines and then scrolls
(the label counts the lines). ``enter`` applies the form there too, like in
every other box (the form is filled and applied from the keyboard, and a
command is one line far more often than not); ``ctrl+j`` (or ``shift+enter``
where the terminal tells it apart) starts a new line. ``up``/``down`` move
between its lines, and leave it from the first or last one.

The form's own layout (one row per column, label beside box, so all sixteen
and a few problems fit 24 lines) is in ``DEFAULT_CSS``: it is this modal's
intrinsic shape, and tek.tcss (``.modal-box``) belongs to the other modals.
:class:`CommandBox` lives here, not in ``widgets/``: it is this form's part.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from core.errors import PlanError
from core.plan import COLUMNS, Plan
from core.plan_edit import put_task, task_cells

#: What each box means, shown as its placeholder (from the README's plan table).
HINTS: dict[str, str] = {
    "id": "e.g. build_docs (unique: letters digits _ . : -)",
    "agent": "shell (default), ml, noop, plan",
    "command": "shell text, ML op line, sub-plan path",
    "deps": "ids, separated by ; or spaces",
    "name": "label (default: the id)",
    "pool": "worker pool (default: the agent)",
    "cpus": "default 1",
    "gpus": "default 0",
    "memory_mb": "default 0",
    "priority": "default 0; higher runs first",
    "retries": "default 0",
    "retry_backoff_s": "default 1",
    "timeout_s": "seconds; default none",
    "env": "KEY=VALUE;KEY2=VALUE2",
    "cwd": "relative to the plan's folder",
    "tags": "labels, separated by ;",
}

#: The form's boxes, for moving the focus (the scroll containers can take it too).
BOXES = "Input, CommandBox"


class CommandBox(TextArea):
    """The command's box: several lines; ``enter`` applies the form, ``ctrl+j`` adds a line."""

    BINDINGS = [
        # Priority: TextArea inserts a newline for enter before any plain binding is seen.
        Binding("enter", "submit", "Apply", id="task-form-command-apply", show=False,
                priority=True),
        Binding("ctrl+j,shift+enter", "newline", "New line", id="task-form-command-newline"),
    ]

    class Submitted(Message):
        """``enter`` was pressed in the box."""

        def __init__(self, box: CommandBox) -> None:
            super().__init__()
            self.box = box

        @property
        def control(self) -> CommandBox:
            """The box."""
            return self.box

    def __init__(self, text: str = "", *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(text, soft_wrap=True, tab_behavior="focus", compact=True,
                         highlight_cursor_line=False, placeholder=placeholder, id=id)

    @property
    def value(self) -> str:
        """The text, as an ``Input`` names it (the form reads every box alike)."""
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.text = text
        self.move_cursor(self.document.end)

    def on_mount(self) -> None:
        # At the end, as an Input puts it: typing adds to the command, never replaces it.
        self.move_cursor(self.document.end)

    def action_submit(self) -> None:
        """Ask the form to apply."""
        self.post_message(self.Submitted(self))

    def action_newline(self) -> None:
        """Start a new line at the cursor (replacing the selection, as typing does)."""
        if not self.read_only:
            self.replace("\n", *self.selection, maintain_selection_offset=False)

    def action_cursor_up(self, select: bool = False) -> None:
        """Up a line; from the first line, to the previous box (as in the other boxes)."""
        if not select and self.navigator.is_first_wrapped_line(self.cursor_location):
            self.screen.focus_previous(BOXES)
        else:
            super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        """Down a line; from the last line, to the next box."""
        if not select and self.navigator.is_last_wrapped_line(self.cursor_location):
            self.screen.focus_next(BOXES)
        else:
            super().action_cursor_down(select)


class TaskForm(ModalScreen[Plan | None]):
    """Edit (``replace=``) or add (``after=``) one task of a plan."""

    DEFAULT_CSS = """
    TaskForm { align: center middle; }
    TaskForm #task-form-box { width: 90%; max-width: 110; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1; }
    TaskForm #task-form-fields { height: auto; max-height: 16; }
    TaskForm Grid { grid-size: 2; grid-columns: 16 1fr; grid-rows: auto; height: auto; }
    TaskForm Input, TaskForm Input:focus { border: none; height: 1; padding: 0 1; }
    TaskForm CommandBox { height: auto; max-height: 4; padding: 0 1; background: $surface; }
    TaskForm Input:focus, TaskForm CommandBox:focus { background: $primary 35%;
        text-style: bold; }
    TaskForm Input > .input--placeholder, TaskForm CommandBox > .text-area--placeholder {
        color: $text-disabled; text-style: italic; }
    TaskForm #task-form-problems { height: auto; max-height: 6; display: none;
        border-top: solid $error; border-title-color: $error; }
    TaskForm #task-form-problems.-shown { display: block; }
    TaskForm #task-form-problems-text { color: $error; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="task-form-cancel"),
        # Priority: the fields' scroll container binds up/down too (to scroll, once a
        # multi-line command makes the fields taller than their room).
        Binding("down", "move(1)", "Next field", id="task-form-next", show=False,
                priority=True),
        Binding("up", "move(-1)", "Previous field", id="task-form-prev", show=False,
                priority=True),
    ]

    def __init__(self, plan: Plan, *, replace: str | None = None,
                 after: str | None = None) -> None:
        super().__init__()
        self.plan = plan
        self.replace = replace
        self.after = after
        if replace is not None:
            self.cells = task_cells(plan.task(replace))
        else:
            self.cells = dict.fromkeys(COLUMNS, "") | {"agent": "shell"}
        self.problems: list[str] = []
        """Problems of the last ``enter`` (empty once applied)."""

    def compose(self) -> ComposeResult:
        title = f"Edit task {self.replace}" if self.replace is not None else "Add a task"
        with Vertical(id="task-form-box"):
            yield Static(f"[b]{title}[/b]  enter: apply · ctrl+j: new line · esc: cancel",
                         id="task-form-title")
            with VerticalScroll(id="task-form-fields"), Grid():
                for column in COLUMNS:
                    if column == "command":
                        yield Label(_command_label(self.cells[column]), id="label-command")
                        yield CommandBox(self.cells[column], placeholder=HINTS[column],
                                         id="field-command")
                        continue
                    yield Label(column)
                    yield Input(self.cells[column], placeholder=HINTS[column],
                                id=f"field-{column}", select_on_focus=False)
            with VerticalScroll(id="task-form-problems"):
                yield Static("", id="task-form-problems-text")

    def on_mount(self) -> None:
        self.field("command" if self.replace else "id").focus()

    def field(self, column: str) -> Input | CommandBox:
        """The box of ``column`` (``command``'s is a :class:`CommandBox`)."""
        if column == "command":
            return self.query_one("#field-command", CommandBox)
        return self.query_one(f"#field-{column}", Input)

    def values(self) -> dict[str, str]:
        """The boxes' text, by column."""
        return {column: self.field(column).value for column in COLUMNS}

    @on(Input.Submitted)
    @on(CommandBox.Submitted)
    def _submitted(self, event: Input.Submitted | CommandBox.Submitted) -> None:
        event.stop()
        self.action_apply()

    @on(TextArea.Changed, "#field-command")
    def _command_changed(self, event: TextArea.Changed) -> None:
        self.query_one("#label-command", Label).update(_command_label(event.text_area.text))

    def action_apply(self) -> None:
        """Check the edited plan; close with it when valid, else list the problems."""
        try:
            plan = put_task(self.plan, self.values(), replace=self.replace, after=self.after)
        except PlanError as exc:
            self.problems = exc.problems
            self._show_problems()
            return
        self.problems = []
        self.dismiss(plan)

    def _show_problems(self) -> None:
        """List the problems (scrolling, counted) and focus the first box with one."""
        n = len(self.problems)
        box = self.query_one("#task-form-problems", VerticalScroll)
        box.border_title = f"{n} problem{'s' if n != 1 else ''}" + (" (scroll)" if n > 5 else "")
        box.add_class("-shown")
        # Text, not markup: a value such as "[x]" must show as typed.
        self.query_one("#task-form-problems-text", Static).update(Text("\n".join(self.problems)))
        box.scroll_home(animate=False)
        named = {problem.partition(":")[0] for problem in self.problems}
        first = next((column for column in COLUMNS if column in named), None)
        if first is not None:
            self.field(first).focus()

    def action_cancel(self) -> None:
        """Close without changing the plan."""
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``up``/``down`` in the command box move between its lines first (it leaves itself)."""
        if action == "move" and isinstance(self.focused, CommandBox):
            return False
        return super().check_action(action, parameters)

    def action_move(self, step: int) -> None:
        """Focus the next (``1``) or previous (``-1``) box."""
        if step > 0:
            self.focus_next(BOXES)
        else:
            self.focus_previous(BOXES)


def _command_label(text: str) -> str:
    """``command``, and under it how many lines it has when more than one."""
    lines = text.count("\n") + 1
    return "command" if lines == 1 else f"command\n({lines} lines)"
