"""Run controls for the main screen: every control key, turned into ``client.control()``.

:class:`RunControlScreen` holds the run's client and the console's picture of
it (``state``, ``selected``) and sends :mod:`core.events` controls; a refused
control (``ControlError``) becomes an error notification. Cancelling the run
and quitting during a run ask first; quitting then cancels the run and waits
(up to :data:`QUIT_GRACE_S`) for it to finish, so its processes are stopped
cleanly before the console exits. :class:`~tek_tui.screens.main.MainScreen`
adds the panes on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual import work
from textual.binding import Binding
from textual.screen import Screen

from core.client import RunClient
from core.errors import ControlError
from core.events import (
    CancelRun,
    CancelTask,
    Control,
    Pause,
    ResizePool,
    Resume,
    RetryTask,
    RunStatus,
    SkipTask,
    Start,
)
from tek_tui.screens.confirm import ConfirmModal
from tek_tui.screens.resize import ResizeModal
from tek_tui.screens.run_state import RunState

#: Actions that steer a run under way (hidden from the footer once there is nothing to steer).
RUN_KEYS = frozenset({"pause_resume", "cancel_task", "retry_task", "skip_task", "cancel_run"})
#: Actions that resize a pool: the screen's (selected task's pool) and the pools pane's.
RESIZE_KEYS = frozenset({"resize", "resize_to", "ask_size"})
#: How long ``q`` waits for a cancelled run to finish before leaving anyway.
QUIT_GRACE_S = 15.0


class RunControlScreen(Screen[None]):
    """A screen that controls one run through its client.

    Its subclass binds ``q`` to :meth:`action_quit_console`, last in the footer.
    """

    BINDINGS = [
        Binding("s", "start", "Start", id="run-start", tooltip="Start the run"),
        # One key, two labels: check_action shows "Pause" while running and
        # "Resume" while paused (both toggle).
        Binding("p", "pause_resume", "Pause", id="run-pause-resume",
                tooltip="Pause dispatching new tasks"),
        Binding("p", "pause_resume('resume')", "Resume", id="run-resume",
                tooltip="Resume dispatching new tasks"),
        Binding("c", "cancel_task", "Cancel", id="task-cancel", tooltip="Cancel the selected task"),
        Binding("r", "retry_task", "Retry", id="task-retry", tooltip="Retry the selected task"),
        Binding("x", "skip_task", "Skip", id="task-skip", tooltip="Skip the selected task"),
        Binding("C", "cancel_run", "Cancel run", id="run-cancel",
                tooltip="Cancel the whole run (asks first)"),
        Binding("plus", "resize(1)", "Pool+", id="pool-grow",
                tooltip="Grow the selected task's pool by one", show=False),
        Binding("minus", "resize(-1)", "Pool-", id="pool-shrink",
                tooltip="Shrink the selected task's pool by one", show=False),
        Binding("equals_sign", "resize_to", "Pool size", id="pool-resize",
                tooltip="Type a new size for the selected task's pool", show=False),
    ]

    def __init__(self, client: RunClient) -> None:
        super().__init__()
        self.client = client
        self.state: RunState | None = None
        """The run as last read; None until the snapshot arrives."""
        self.selected: str | None = None
        """Task selected in the table (and DAG)."""
        self._finished = asyncio.Event()
        self._stopping = False
        self.attached = False
        """The run belongs to another process (``tek tui --attach``): quitting detaches."""

    async def _control(self, command: Control) -> bool:
        """Send one control; a refusal becomes an error notification."""
        try:
            await self.client.control(command)
        except ControlError as exc:
            self.notify(str(exc), title="refused", severity="error")
            return False
        return True

    def _selected_or_warn(self) -> str | None:
        if self.selected is None:
            self.notify("no task selected", severity="warning")
        return self.selected

    # -------------------------------------------------------------- controls

    async def action_start(self) -> None:
        """Start a run that waits for it."""
        if not self._refuse_empty():
            await self._control(Start())

    def _refuse_empty(self) -> bool:
        """Refuse to start a plan without tasks (say so, and return True), as ``tek run`` does.

        The engine would run it in no time and journal a succeeded run of
        nothing; a header-only file is a mistake (a truncated export) or a
        plan still to be filled in (``a``).
        """
        if self.state is None or self.state.tasks:
            return False
        self.notify("the plan has no tasks: a adds one, w saves it, then s starts it",
                    title="refused", severity="error")
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer ``Pause`` while running and ``Resume`` while paused."""
        if action == "pause_resume":
            paused = self.state is not None and self.state.status is RunStatus.PAUSED
            return paused == bool(parameters)
        return True

    def footer_hides(self, action: str) -> bool:
        """Keep run keys out of the footer while they have nothing to act on (see TekFooter).

        ``s`` shows only before the start; once every task has ended (the run
        stays open for retries) only ``r`` and ``q`` have work left, as the run
        bar says: the pool keys (``+ - =``) leave the footer too, though they
        still resize a pool for the retries to come; once the run has
        finished, none of the run keys has work left.
        """
        name = action.partition("(")[0]
        state = self.state
        if state is None:
            return False
        if name == "start":
            return state.status is not RunStatus.PENDING
        if state.finished:
            return name in RUN_KEYS | RESIZE_KEYS
        if state.status is not RunStatus.PENDING and not state.active:
            return name in (RUN_KEYS - {"retry_task"}) | RESIZE_KEYS
        return False

    async def action_pause_resume(self, _label: str = "") -> None:
        """Pause dispatching, or resume it (``_label`` only tells the bindings apart)."""
        paused = self.state is not None and self.state.status is RunStatus.PAUSED
        await self._control(Resume() if paused else Pause())

    async def action_cancel_task(self) -> None:
        """Cancel the selected task (asking first when tasks downstream would be skipped)."""
        await self._task_control(CancelTask, "Cancel")

    async def action_retry_task(self) -> None:
        """Retry the selected task."""
        if (task_id := self._selected_or_warn()) is not None:
            await self._control(RetryTask(task_id))

    async def action_skip_task(self) -> None:
        """Skip the selected task (asking first when it has tasks downstream)."""
        await self._task_control(SkipTask, "Skip")

    async def _task_control(self, make: Callable[[str], Control], verb: str) -> None:
        """Send ``make(task)`` for the selected task; ask first when it affects others.

        One key that skips a whole subtree must not land on whatever row a
        filter just moved under the cursor: the question names the task and
        what it takes with it, and the answer acts on the task named, even if
        the table changed meanwhile. A task with nothing left downstream is
        acted on at once.
        """
        if (task_id := self._selected_or_warn()) is None:
            return
        state = self.state
        task = state.tasks.get(task_id) if state is not None else None
        affected = state.downstream(task_id) if state is not None and task is not None else []
        if task is None or task.state.is_terminal or not affected:
            await self._control(make(task_id))  # refused, or touches no other task
            return
        n = len(affected)
        names = ", ".join(affected[:3]) + (", …" if n > 3 else "")
        tasks = f"{n} downstream task{'s' if n != 1 else ''}"
        if make is SkipTask:  # its downstream runs as if it had succeeded
            outcome = f"it will not run, and {tasks} will run without it: {names}"
        else:
            outcome = f"{tasks} will be skipped: {names}"
        question = f"{verb} task {task_id}?\n{outcome}"

        async def answered(yes: bool | None) -> None:
            if yes:
                await self._control(make(task_id))

        self.app.push_screen(
            ConfirmModal(question, yes=f"{verb} task", no="Keep it"), answered)

    def action_cancel_run(self) -> None:
        """Cancel the whole run, after asking."""

        async def answered(yes: bool | None) -> None:
            if yes:
                await self._control(CancelRun())

        self.app.push_screen(
            ConfirmModal("Cancel the run? Running tasks are stopped.", yes="Cancel run",
                         no="Keep running"),
            answered,
        )

    def _selected_pool(self) -> tuple[str, int] | None:
        if self.state is None or (task_id := self._selected_or_warn()) is None:
            return None
        pool = self.state.tasks[task_id].pool
        info = self.state.pools.get(pool)
        return pool, info.size if info else 0

    async def action_resize(self, delta: int) -> None:
        """Grow or shrink the selected task's pool."""
        if (found := self._selected_pool()) is not None:
            pool, size = found
            await self._control(ResizePool(pool, max(0, size + delta)))

    def action_resize_to(self) -> None:
        """Ask for a new size of the selected task's pool."""
        if (found := self._selected_pool()) is None:
            return

        async def answered(size: int | None) -> None:
            if size is not None:
                await self._control(ResizePool(found[0], size))

        self.app.push_screen(ResizeModal(*found), answered)

    def on_pools_pane_size_asked(self, event: Any) -> None:
        """The pools pane's ``=``: ask for a size of the pool selected there."""
        pool = event.pool

        async def answered(size: int | None) -> None:
            if size is not None:
                await self._control(ResizePool(pool, size))

        self.app.push_screen(ResizeModal(pool, event.size), answered)

    async def on_pools_pane_resize_requested(self, event: Any) -> None:
        """The pools pane asked for a new size (its own ``+``/``-``); a refusal
        drops the size it shows as pending."""
        if not await self._control(ResizePool(event.pool, event.size)):
            event.pools_pane.drop_request(event.pool)

    # ------------------------------------------------------------------ quit

    def action_quit_console(self, _label: str = "") -> None:
        """Quit; during a run, ask first, then cancel it and wait for it to end.

        An attached console detaches at once: the run is not its to stop
        (``_label`` only tells the Quit and Detach bindings apart).
        """
        if self.attached:
            self.app.exit(0)
            return
        if self.state is None or not self.state.active:
            self.stop_and_exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.stop_and_exit()

        self.app.push_screen(
            ConfirmModal("A run is in progress. Cancel it and quit?", yes="Stop and quit",
                         no="Stay"),
            answered,
        )

    @work(group="quit", description="stop the run and exit")
    async def stop_and_exit(self, code: int = 0) -> None:
        """Cancel the run if it has not finished, wait for it to end, exit with ``code``.

        A run that started and did not succeed (a task failed, or it was
        cancelled, by this quit too) turns an exit code of 0 into 1, as for
        ``tek run``; an attached console's is 0 (the run is not its own).
        """
        if self._stopping:
            return
        self._stopping = True
        state = self.state
        if state is not None and not state.finished and not self.attached:
            self.notify("stopping the run…", timeout=QUIT_GRACE_S)
            try:
                await self.client.control(CancelRun())
            except ControlError:
                pass  # already finished between the check and now
            else:
                try:
                    await asyncio.wait_for(self._finished.wait(), QUIT_GRACE_S)
                except TimeoutError:
                    pass  # leave anyway; the app's exit cancels the run's task group
        if code == 0 and state is not None and state.started_ts is not None and not self.attached:
            # as `tek run`: 1 when a task failed or the run was cancelled (a script's `--start`)
            code = 0 if state.finished and state.status is RunStatus.SUCCEEDED else 1
        self.app.exit(code)
