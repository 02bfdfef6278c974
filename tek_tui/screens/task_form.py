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
one ``up`` away); the focused box is highlighted. A new task's id box starts
empty, with an example as its placeholder (a default id looked like a value).

The form's own layout (one row per column, label beside box, so all sixteen
and a few problems fit 24 lines) is in ``DEFAULT_CSS``: it is this modal's
intrinsic shape, and tek.tcss (``.modal-box``) belongs to the other modals.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

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


class TaskForm(ModalScreen[Plan | None]):
    """Edit (``replace=``) or add (``after=``) one task of a plan."""

    DEFAULT_CSS = """
    TaskForm { align: center middle; }
    TaskForm #task-form-box { width: 90%; max-width: 110; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1; }
    TaskForm #task-form-fields { height: auto; max-height: 16; }
    TaskForm Grid { grid-size: 2; grid-columns: 16 1fr; grid-rows: 1; height: auto; }
    TaskForm Input, TaskForm Input:focus { border: none; height: 1; padding: 0 1; }
    TaskForm Input:focus { background: $primary 35%; text-style: bold; }
    TaskForm Input > .input--placeholder { color: $text-disabled; text-style: italic; }
    TaskForm #task-form-problems { height: auto; max-height: 6; display: none;
        border-top: solid $error; border-title-color: $error; }
    TaskForm #task-form-problems.-shown { display: block; }
    TaskForm #task-form-problems-text { color: $error; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="task-form-cancel"),
        Binding("down", "move(1)", "Next field", id="task-form-next", show=False),
        Binding("up", "move(-1)", "Previous field", id="task-form-prev", show=False),
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
            yield Static(f"[b]{title}[/b]  enter: apply · esc: cancel",
                         id="task-form-title")
            with VerticalScroll(id="task-form-fields"), Grid():
                for column in COLUMNS:
                    yield Label(column)
                    yield Input(self.cells[column], placeholder=HINTS[column],
                                id=f"field-{column}")
            with VerticalScroll(id="task-form-problems"):
                yield Static("", id="task-form-problems-text")

    def on_mount(self) -> None:
        self.query_one("#field-command" if self.replace else "#field-id", Input).focus()

    def field(self, column: str) -> Input:
        """The box of ``column``."""
        return self.query_one(f"#field-{column}", Input)

    def values(self) -> dict[str, str]:
        """The boxes' text, by column."""
        return {column: self.field(column).value for column in COLUMNS}

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

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

    def action_move(self, step: int) -> None:
        """Focus the next (``1``) or previous (``-1``) box."""
        if step > 0:
            self.focus_next(Input)
        else:
            self.focus_previous(Input)
