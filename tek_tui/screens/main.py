"""The main run screen: task table, DAG, pools, system and log panes (controls: run_controls).

The screen sees the run only through a :class:`~core.client.RunClient`. One
exclusive worker reads ``client.events()`` into a :class:`RunState` (cheap dict
updates); a 10 Hz interval paints what changed inside ``app.batch_update()``.
The screen stays visible behind a modal (help, a question, the command
palette) and goes on painting there, at :data:`BEHIND_MODAL_HZ`: the changes
of several ticks are painted at once, so a 10k-task run costs no more. Hidden
panes (narrow terminal, zoom) get their pending updates when shown again.

Keys that edit the plan before the run starts come from
:class:`~tek_tui.screens.plan_editing.PlanEditScreen` (given ``plan=``).

Layout (grid, narrow, zoom, tabs) comes from
:class:`~tek_tui.screens.pane_layout.PaneLayoutScreen`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.widgets import DataTable, Input
from textual.worker import Worker

from core.client import RunClient
from core.events import RunStatus, Start, TaskState
from core.paths import run_log_path
from core.plan import Plan
from tek_tui.screens.pane_layout import PANES, PaneLayoutScreen
from tek_tui.screens.panes import make_dag_view, make_pools_pane, make_system_pane
from tek_tui.screens.run_state import RunState
from tek_tui.widgets.footer import TekFooter
from tek_tui.widgets.log_view import LogView
from tek_tui.widgets.run_bar import RunBar
from tek_tui.widgets.task_cells import filter_problems, outcome_text
from tek_tui.widgets.task_table import TaskTable

#: Paint rate of the coalesced updates.
FLUSH_HZ = 10
#: Paint rate while a modal covers part of the screen (it is still seen behind it).
BEHIND_MODAL_HZ = 2


class MainScreen(PaneLayoutScreen):
    """Everything about one run: panes, layout and the live event flow."""

    ENTER_HELP = ("enter", "Open the log of the task under the cursor", "", "tasks pane")
    """What ``enter`` does here, for the help screen."""

    BINDINGS = [
        Binding("l", "open_log", "Log", id="open-log", tooltip="Open the selected task's log"),
        # Priority: handled as the key arrives, so the box has the focus
        # before the next keys (fast typing, paste) are delivered.
        Binding("slash", "filter", "Filter", id="task-filter", priority=True,
                tooltip="Filter tasks (text, state:failed, tag:x)"),
        # One key, two labels: in the log pane `/` searches the log.
        Binding("slash", "filter('search')", "Search", id="log-search-open", priority=True,
                tooltip="Search the log"),
        Binding("escape", "back", "Back", id="back", show=False,
                tooltip="Close the filter box, unzoom, or go back to the task table"),
        Binding("q", "quit_console", "Quit", id="quit", tooltip="Quit (asks during a run)"),
        # One key, two labels: an attached console (tek tui --attach) detaches.
        Binding("q", "quit_console('detach')", "Detach", id="detach",
                tooltip="Detach from the run; it goes on in its own process"),
    ]

    def __init__(
        self,
        client: RunClient,
        *,
        clock: Callable[[], float],
        sampler: Any = None,
        start: bool = False,
        title: str = "",
        telemetry_s: float = 1.0,
        pane_clock: Callable[[], float] | None = None,
        plan: Plan | None = None,
        attached: bool = False,
        times: Mapping[str, tuple[float, float | None]] | None = None,
    ) -> None:
        super().__init__(client, plan)
        self.attached = attached
        self._telemetry_s = telemetry_s
        self._pane_clock = pane_clock
        self.clock = clock
        self._sampler = sampler
        self._start = start
        self._title = title
        self._last_tick = 0
        self._keys_for: tuple[object, ...] = ()  # what the footer's keys were chosen for
        self._skipped = 0
        """Flushes skipped in a row behind a modal (see :data:`BEHIND_MODAL_HZ`)."""
        self._dag_pending: dict[str, TaskState] = {}
        self._pools_pending = False
        self._pids: dict[str, int] = {}
        self._times = times

    # ---------------------------------------------------------------- compose

    def compose(self) -> ComposeResult:
        yield RunBar(id="run-bar")
        with Container(id="body"):
            with Vertical(id="pane-tasks", classes="pane"):
                yield TaskTable(clock=self.clock, id="task-table")
                yield Input(placeholder="filter: text  state:failed  tag:x  agent:ml",
                            id="task-filter")
            with Vertical(id="pane-dag", classes="pane"):
                yield make_dag_view(id="dag-view")
            with Vertical(id="pane-pools", classes="pane"):
                yield make_pools_pane(clock=self._pane_clock, id="pools-pane")
            with Vertical(id="pane-log", classes="pane"):
                yield LogView(id="log-view")
            with Vertical(id="pane-system", classes="pane"):
                yield make_system_pane(sampler=self._sampler, interval=self._telemetry_s,
                                       id="system-pane")
        yield TekFooter()

    def on_mount(self) -> None:
        for pane_id, title in PANES:
            self.pane(pane_id).border_title = title
        box = self.query_one("#task-filter", Input)
        box.display = False
        box.border_subtitle = "enter: apply · esc: close"  # the footer has no room for it
        self.table.focus()
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_interval(1 / FLUSH_HZ, self._flush, name="paint")
        self._read_events()
        self._apply_layout()

    # ---------------------------------------------------------------- helpers

    @property
    def table(self) -> TaskTable:
        """The task table."""
        return self.query_one("#task-table", TaskTable)

    @property
    def log_view(self) -> LogView:
        """The log pane's widget."""
        return self.query_one("#log-view", LogView)

    def _pane_widget(self, widget_id: str) -> Any:
        """A pane widget built elsewhere (or its placeholder); typed loosely on purpose."""
        return self.query_one(f"#{widget_id}")

    # ------------------------------------------------------------ events in

    @work(exclusive=True, group="run-events", description="read run events", exit_on_error=False)
    async def _read_events(self) -> None:
        # Subscribe before the snapshot and install it with no await in
        # between, so no event falls between the two; a duplicate is harmless
        # (states are idempotent).
        stream = self.client.events()
        snapshot = self.client.snapshot()
        self._install(RunState(snapshot, self._times))
        if self._start and snapshot.status is RunStatus.PENDING and not self._refuse_empty():
            await self._control(Start())
        async for event in stream:
            assert self.state is not None
            self.state.apply(event)
        self._finished.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failed worker (say, a broken event stream) becomes an error notification."""
        self.app.report_worker(event)  # type: ignore[attr-defined]

    def _install(self, state: RunState) -> None:
        self.state = state
        tasks = [state.tasks[task_id] for task_id in state.order]
        with self.app.batch_update():
            self.table.set_tasks(tasks)
            self._pane_widget("dag-view").set_tasks(tasks)
        self._pools_pending = True
        self._flush()

    def _flush(self) -> None:
        """Paint what changed since the last flush (10 Hz)."""
        state = self.state
        if state is None or not self.is_current:
            return  # not on screen: keep consuming, paint when it shows again
        if not self.is_active and self._skipped + 1 < FLUSH_HZ // BEHIND_MODAL_HZ:
            self._skipped += 1  # behind a modal: paint less often, never stop
            return
        self._skipped = 0
        dirty = state.take_dirty()
        now = self.clock()
        tick = int(now) != self._last_tick
        self._last_tick = int(now)
        with self.app.batch_update():
            if dirty.tasks:
                self.table.update_tasks([state.tasks[i] for i in dirty.tasks])
                self._dag_pending.update({i: state.tasks[i].state for i in dirty.tasks})
                if self.table.filter_text:
                    self._show_filter_count()  # rows come and go with their states
            if tick:
                self.table.tick()
            if dirty.added:  # a sub-plan started: its tasks join the DAG under their plan task
                self._pane_widget("dag-view").set_tasks([state.tasks[i] for i in state.order])
            if self._dag_pending and self.pane_visible("dag"):
                self._pane_widget("dag-view").update_states(self._dag_pending)
                self._dag_pending = {}
            # Fed while hidden too: its rate needs every count as it came (shown
            # again after a gap, it read the gap's finishes as the last 5 s's).
            self._pools_pending |= dirty.pools or dirty.run  # run: it may have ended
            if self._pools_pending:
                reason = state.admission_reason if state.admission_paused else ""
                self._pane_widget("pools-pane").update_pools(
                    list(state.pools.values()), state.admission_paused, reason,
                    ended=state.finished,
                )
                self._pools_pending = False
            if dirty.run:
                # "p Pause" / "p Resume" and the keys with work left follow these.
                # Only when they change: a footer refresh composes its keys
                # again, which at 10 Hz took a third of a busy console's time.
                keys_for = (state.status, state.finished, state.active)
                if keys_for != self._keys_for:
                    self._keys_for = keys_for
                    self.refresh_bindings()
            if dirty.run or tick:
                self._paint_run_bar(state, now)
            if dirty.tasks:
                pids = state.running_pids()
                if pids != self._pids:
                    self._pids = pids
                    self._pane_widget("system-pane").set_task_pids(pids)
            self._paint_log(state, dirty.tasks)

    def _paint_run_bar(self, state: RunState, now: float) -> None:
        done = state.status is RunStatus.RUNNING and not state.active
        elapsed = None
        if state.started_ts is not None:
            # Kept open once every task has ended (for retries): its clock
            # stops at the last task's end, not when the console closes it.
            end = state.finished_ts or (state.last_end_ts if done else None) or now
            elapsed = max(0.0, end - state.started_ts)
        plan = Path(state.plan_path).stem if state.plan_path else state.run_id
        self.query_one(RunBar).show(
            plan=(self._title or plan) + self.title_mark(),
            status=state.status,
            counts=state.counts,
            done=done,
            elapsed=elapsed,
            admission=state.admission_reason if state.admission_paused else "",
            dropped=state.dropped_lines,
            attached=self.attached,
        )

    def _paint_log(self, state: RunState, changed: set[str]) -> None:
        lines = state.take_lines()
        if lines:
            self.log_view.append(lines)
        task_id = self.selected
        if task_id is not None and task_id in changed:
            self.log_view.set_outcome(outcome_text(state.tasks[task_id]))
        if task_id is not None and task_id in changed and task_id in state.loss:
            losses = state.loss[task_id]
            self.log_view.set_loss(list(losses), f"loss {losses[-1]:.4g}")

    # ------------------------------------------------------------- selection

    @on(TaskTable.TaskSelected)
    def _task_selected(self, event: TaskTable.TaskSelected) -> None:
        self._select(event.task_id)

    def on_dag_view_task_selected(self, event: Any) -> None:
        """The DAG view moved its selection: follow it in the table."""
        self.table.select(event.task_id)
        self._select(event.task_id)

    def _select(self, task_id: str | None) -> None:
        if task_id == self.selected or self.state is None:
            return
        self.selected = task_id
        self.state.watch(task_id)
        self._pane_widget("dag-view").select(task_id)
        task = self.state.tasks.get(task_id) if task_id else None
        attempt = task.attempt if task else 0
        path = run_log_path(self.state.run_id, task_id, attempt) if task_id and attempt else None
        self.log_view.show(task_id, attempt, path, outcome_text(task) if task else "")
        if task_id in self.state.loss:
            losses = self.state.loss[task_id]
            self.log_view.set_loss(list(losses), f"loss {losses[-1]:.4g}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """``enter`` on a task opens its log."""
        if event.data_table is self.table:
            event.stop()
            self.action_open_log()

    # ----------------------------------------------------------- panes, keys

    def action_open_log(self) -> None:
        """Show the selected task's log and focus it."""
        self.shown_pane = "log"
        self._focus_pane("log")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """In a text box ``/`` is text: the filter key neither fires nor shows in the footer;
        elsewhere it reads "Search" in the log pane and "Filter" in the others."""
        if action == "filter":
            if isinstance(self.focused, Input):
                return False
            return bool(parameters) == (self.active_pane == "log")
        if action == "quit_console":
            return bool(parameters) == self.attached
        return super().check_action(action, parameters)

    def action_filter(self, _label: str = "") -> None:
        """Open the filter box (or, in the log pane, the log's search box; ``_label``
        only tells the Filter and Search bindings apart)."""
        if self.active_pane == "log":
            self.log_view.action_search()
            return
        box = self.query_one("#task-filter", Input)
        box.display = True
        box.value = self.table.filter_text
        self._focus_pane("tasks", focus=False)
        # Focus now, not on the next idle (Widget.focus): keys typed right
        # after `/` (a fast typist, a paste, tmux send-keys) must reach the box.
        self.set_focus(box)

    def action_back(self) -> None:
        """Back out one step: close the filter box (keeping its filter), clear an
        applied filter (in the task table, as k9s does), unzoom, or return to
        the task table."""
        box = self.query_one("#task-filter", Input)
        if box.display:
            box.display = False
            self.set_focus(self.table)
        elif self.focused is self.table and self.table.filter_text.strip():
            self.table.set_filter("")
            self._show_filter_count()
        elif self.zoomed is not None:
            self.action_zoom()
        elif self.active_pane != "tasks":
            self._focus_pane("tasks")

    @on(Input.Submitted, "#task-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        """Apply the filter; one that cannot match (``state:bogus``) stays in its box, and says why."""
        event.stop()
        problems = filter_problems(event.value, self.table.tasks.values())
        if problems:
            self.notify("\n".join(problems), title="filter not applied", severity="error")
            return
        self.table.set_filter(event.value)
        self._show_filter_count()
        event.input.display = False
        self.set_focus(self.table)

    def pane_title(self, pane_id: str, title: str) -> str:
        """``Tasks · state:failed · 3 of 90`` while a filter is on, or why nothing shows."""
        text = " ".join(self.table.filter_text.split())
        if pane_id != "tasks" or not text:
            return title
        shown, total = self.table.row_count, len(self.table.tasks)
        if not shown:
            return f"{title} · no task matches {text} (/ edits, esc clears)"
        return f"{title} · {text} · {shown} of {total}"

    def _show_filter_count(self) -> None:
        """Keep the task pane's title up to date with the filter (see :meth:`pane_title`)."""
        self.pane("tasks").border_title = self.pane_title("tasks", dict(PANES)["tasks"])

    def _theme_changed(self, _theme: object) -> None:
        self.table.restyle()
        if self.state is not None:
            self._paint_run_bar(self.state, self.clock())
