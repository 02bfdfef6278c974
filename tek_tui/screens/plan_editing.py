"""Plan editing keys for the run screen: add, edit, delete a task, save the plan.

:class:`PlanEditScreen` sits between :class:`RunControlScreen` and
:class:`~tek_tui.screens.main.MainScreen`. It holds the plan the console
opened (None when it shows a run it did not load, such as an attached
client: then the keys are hidden and do nothing). Editing works only before
the run starts; afterwards the keys answer "refused: the plan is running".

How an edit reaches the run. The run is built (and journaled) when the plan
loads, before any edit. An edit changes :attr:`plan` and shows it: the table
and DAG are redrawn from the snapshot of a new, never started run of the
edited plan (built with ``core.engine.create_run``, so pools and checks are
the engine's own). ``s`` on an edited plan first asks the app to replace the
loaded run with a journaled run of the edited one (the loaded run, never
started, is dropped from the journal, as when the console quits before
``s``), then starts it. ``s`` is refused while there are unsaved changes: the
journal and ``tek run --resume`` read the plan file, so the run must be what
the file says.

Controls given before ``s`` (skip or cancel a task, pause, resize a pool) go
to the run on screen, the loaded one or the preview, and are kept: each new
preview and the run that replaces the loaded one get them again, in order,
so an edit never undoes them. A control on a task that an edit renames
follows the new id (as its dependants' deps do); one that no longer applies
(its task was deleted, its pool is gone) is dropped, with a notification
naming it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import anyio
from textual import work
from textual.binding import Binding

from core.client import RunClient
from core.errors import ControlError, TekError
from core.events import CancelRun, CancelTask, Control, RetryTask, RunStatus, SkipTask, Start
from core.plan import Plan
from core.plan_edit import delete_task, dependants, same_tasks
from core.plan_write import write_plan
from tek_tui.screens.confirm import ConfirmModal, SaveFirstModal
from tek_tui.screens.run_controls import RunControlScreen
from tek_tui.screens.run_state import RunState
from tek_tui.screens.task_form import TaskForm

#: Actions that need a plan (hidden from footer and palette without one).
EDIT_ACTIONS = frozenset({"add_task", "edit_task", "delete_task", "save_plan"})
#: How long ``s`` waits for the loaded (never started) run to end before replacing it.
REPLACE_GRACE_S = 10.0


class PlanEditScreen(RunControlScreen):
    """A run screen whose plan can be edited from the keyboard before the run starts."""

    BINDINGS = [
        Binding("a", "add_task", "Add", id="task-add",
                tooltip="Add a task after the selected one (before the run starts)"),
        Binding("e", "edit_task", "Edit", id="task-edit",
                tooltip="Edit the selected task (before the run starts)"),
        Binding("D", "delete_task", "Delete", id="task-delete",
                tooltip="Delete the selected task (asks when others depend on it)"),
        Binding("w", "save_plan", "Save", id="plan-save",
                tooltip="Write the plan back to its CSV file"),
    ]

    def __init__(self, client: RunClient, plan: Plan | None = None) -> None:
        super().__init__(client)
        self.plan = plan
        """The plan as edited; None when this console did not load one."""
        self.modified = False
        """The plan has changes not yet written to its file."""
        self._run_plan = plan
        self._replacing = False
        """``s`` is replacing the loaded run with one of the edited plan."""
        self._started = False
        """``s`` was accepted: the run's state may not say so yet, edits are over."""
        self._preview: RunClient | None = None
        """The never started run of the edited plan on screen; None before an edit."""
        self._before_start: list[Control] = []
        """Controls accepted before ``s``, replayed on each run that replaces the one shown."""

    # ------------------------------------------------------------- helpers

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Without a plan the editing keys are neither shown nor run."""
        if action in EDIT_ACTIONS and self.plan is None:
            return False
        return super().check_action(action, parameters)

    def footer_hides(self, action: str) -> bool:
        """The editing keys leave the footer once the run has started (see TekFooter),
        as do the run keys with nothing to act on (:meth:`RunControlScreen.footer_hides`)."""
        state = self.state
        started = self._started or (state is not None and state.status is not RunStatus.PENDING)
        return (action in EDIT_ACTIONS and started) or super().footer_hides(action)

    def _editable(self) -> Plan | None:
        """The plan, when it may be edited now; else say why not and return None."""
        state = self.state
        if self.plan is None or state is None:
            return None
        if self._started or state.status is not RunStatus.PENDING:
            self.notify("the plan is running", title="refused", severity="error")
            return None
        return self.plan

    async def _apply(self, plan: Plan | None, select: str | None = None,
                     renamed: Mapping[str, str] | None = None) -> None:
        """Show an edited plan (the form's answer; None = cancelled).

        ``renamed`` maps a task id the edit changed to its new id: the
        controls kept from before ``s`` follow it.
        """
        if plan is None or self.plan is None or same_tasks(plan, self.plan):
            return
        if self._editable() is None:
            return  # `s` was pressed while the form was open: the run has the plan now
        from core.engine import RunOptions, create_run

        options = getattr(self.app, "options", None) or RunOptions()
        try:
            # Never started and not journaled: its snapshot is shown, and it
            # takes the controls given before `s`.
            preview = create_run(plan, options).client()
        except TekError as exc:
            self.notify(str(exc), title="cannot run this plan", severity="error")
            return
        self.plan = plan
        self.modified = True
        self._preview = preview
        if renamed:
            self._before_start = [_renamed(c, renamed) for c in self._before_start]
        await self._replay(preview)
        self._show_state(RunState(preview.snapshot()), select)

    def _before_start_control(self, command: Control) -> bool:
        """True for a control given before ``s`` that an edit must not undo.

        Not for an attached console: the run and its plan are another
        process's (and its snapshot is from the attach).
        """
        state = self.state
        return (not self._started and not self.attached and state is not None
                and state.status is RunStatus.PENDING
                and not isinstance(command, (Start, CancelRun)))

    async def _control(self, command: Control) -> bool:
        """Send one control; before ``s``, to the run on screen, and keep it (see above)."""
        if not self._before_start_control(command):
            return await super()._control(command)
        shown = self._preview or self.client
        try:
            await shown.control(command)
        except ControlError as exc:
            self.notify(str(exc), title="refused", severity="error")
            return False
        self._before_start.append(command)
        # A run that has not started sends no events (the preview's are not
        # even read): show what the control did from a fresh snapshot.
        self._show_state(RunState(shown.snapshot()), self.selected)
        return True

    async def _replay(self, client: RunClient) -> None:
        """Give ``client``'s run the controls kept from before ``s``; drop what no longer applies."""
        kept: list[Control] = []
        dropped: list[str] = []
        for command in self._before_start:
            try:
                await client.control(command)
            except ControlError as exc:
                dropped.append(str(exc))
            else:
                kept.append(command)
        self._before_start = kept
        if dropped:
            self.notify("; ".join(dropped), title="dropped after the edit", severity="warning")

    def _show_state(self, state: RunState, select: str | None) -> None:
        self.selected = None
        self._install(state)  # type: ignore[attr-defined]  # MainScreen's
        target = select if select is not None and select in state.tasks else None
        if target is None and state.order:
            target = state.order[0]
        if target is not None:
            self.table.select(target)  # type: ignore[attr-defined]
            self._select(target)  # type: ignore[attr-defined]
        self._paint_run_bar(state, self.clock())  # type: ignore[attr-defined]

    # ------------------------------------------------------------- actions

    def action_add_task(self) -> None:
        """Add a task after the selected one, through the task form."""
        if (plan := self._editable()) is None:
            return

        async def answered(new: Plan | None) -> None:
            added = next((t.id for t in new if t.id not in plan.by_id), None) if new else None
            await self._apply(new, added)

        self.app.push_screen(TaskForm(plan, after=self.selected), answered)

    def action_edit_task(self) -> None:
        """Edit the selected task in the task form."""
        if (plan := self._editable()) is None or (task_id := self._selected_or_warn()) is None:
            return
        index = [t.id for t in plan].index(task_id)

        async def answered(new: Plan | None) -> None:
            new_id = new.tasks[index].id if new else None
            renamed = {task_id: new_id} if new_id is not None and new_id != task_id else None
            await self._apply(new, new_id, renamed)

        self.app.push_screen(TaskForm(plan, replace=task_id), answered)

    async def action_delete_task(self) -> None:
        """Delete the selected task; ask first when other tasks depend on it."""
        if (plan := self._editable()) is None or (task_id := self._selected_or_warn()) is None:
            return
        ids = [t.id for t in plan]
        k = ids.index(task_id)
        # The cursor stays where it was: on the next task, or the previous at the end.
        after = ids[k + 1] if k + 1 < len(ids) else ids[k - 1] if k else None

        async def delete(yes: bool | None = True) -> None:
            if not yes:
                return
            try:
                new = delete_task(plan, task_id)
            except TekError as exc:
                self.notify(str(exc), title="refused", severity="error")
                return
            await self._apply(new, after)
            self.notify(f"deleted {task_id}", timeout=3)

        users = dependants(plan, task_id)
        if not users:
            await delete()
            return
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        self.app.push_screen(
            ConfirmModal(f"{shown} depend{'s' if len(users) == 1 else ''} on {task_id}. "
                         f"Delete {task_id} and remove it from their deps?",
                         yes="Delete", no="Keep"),
            delete,
        )

    async def action_save_plan(self) -> None:
        """Write the plan to its file atomically (``w``)."""
        if (plan := self._editable()) is None:
            return
        if plan.path is None:
            self.notify("this plan has no file", title="refused", severity="error")
            return
        if not self.modified:
            # Nothing to write: leave the user's file (its layout, quoting) as it is.
            self.notify(f"no changes to save ({plan.path.name})", timeout=3)
            return
        try:
            await anyio.to_thread.run_sync(write_plan, plan, plan.path)
        except TekError as exc:
            self.notify(str(exc), title="not saved", severity="error")
            return
        self.modified = self.plan is not plan  # an edit that came in meanwhile is unsaved
        if self.state is not None:
            self._paint_run_bar(self.state, self.clock())  # type: ignore[attr-defined]
        self.notify(f"saved {len(plan)} tasks to {plan.path}", timeout=4)

    async def action_start(self) -> None:
        """Start the run; an edited plan first replaces the loaded run (saved plans only)."""
        plan = self.plan
        if self._replacing:
            return  # `s` twice: the edited plan's run is on its way and starts itself
        if self._refuse_empty():
            return
        if plan is not None and self.modified:
            self.notify("the plan has unsaved changes: w saves it, then s starts it",
                        title="refused", severity="error")
            return
        running = self.state is not None and self.state.status is not RunStatus.PENDING
        if plan is None or self._run_plan is None or same_tasks(plan, self._run_plan) or running:
            # A started run: the engine refuses, as usual.
            self._started |= await self._control(Start())
            return
        self._replacing = self._started = True
        self._replace_run(plan)

    @work(exclusive=True, group="replace-run", description="run the edited plan",
          exit_on_error=False)
    async def _replace_run(self, plan: Plan) -> None:
        """Swap the loaded, never started run for a run of ``plan``, and start it.

        A worker, so keys and painting go on while the loaded run winds down.
        """
        try:
            await self._swap_run(plan)
        finally:
            self._replacing = False

    async def _swap_run(self, plan: Plan) -> None:
        finished = self._finished
        try:
            await self.client.control(CancelRun())
        except ControlError:
            pass  # it has ended already
        with anyio.move_on_after(REPLACE_GRACE_S):
            await finished.wait()
        try:
            client, self._times = await self.app.replace_run(plan)  # type: ignore[attr-defined]
        except TekError as exc:
            self.notify(str(exc), title="cannot run this plan", severity="error")
            return
        self.client = client
        self._run_plan = plan
        self._preview = None
        await self._replay(client)  # before the new reader sends Start
        self._finished = asyncio.Event()
        self._start = True  # the new reader sends Start once its snapshot is shown
        self._read_events()  # type: ignore[attr-defined]  # exclusive: the old reader ends

    # ------------------------------------------------------------------ quit

    def action_quit_console(self, _label: str = "") -> None:
        """Quit; with unsaved plan changes, ask first: save and quit, quit, or stay."""
        if not self.modified:
            super().action_quit_console()
            return

        async def answered(choice: str | None) -> None:
            if choice == "save":
                await self.action_save_plan()
                if self.modified:
                    return  # not saved (it says why): stay
            elif choice != "discard":
                return
            self.modified = False
            super(PlanEditScreen, self).action_quit_console()

        name = self.plan.path.name if self.plan and self.plan.path else "the plan"
        self.app.push_screen(SaveFirstModal(f"{name} has unsaved changes."), answered)

    def title_mark(self) -> str:
        """Added to the run bar's plan name: `` · modified`` while there are unsaved changes."""
        return " · modified" if self.modified else ""


def _renamed(command: Control, renamed: Mapping[str, str]) -> Control:
    """``command`` with its task id renamed as ``renamed`` says (other controls as they are)."""
    if isinstance(command, CancelTask | RetryTask | SkipTask) and command.task_id in renamed:
        return type(command)(renamed[command.task_id])
    return command
