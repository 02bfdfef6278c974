"""The task table: one row per task, diffed by row key, fast with 10k rows.

Columns: state (symbol and colour), id, duration, progress (or, once a task
failed, timed out, was cancelled or skipped, why: :func:`reason_text`), attempt,
agent and name (most telling first, for narrow terminals); text too long for
its column ends in "…". Column widths follow the table's width and the
longest id, agent and name (:func:`~tek_tui.widgets.task_columns.fit_widths`),
again whenever either changes. :meth:`TaskTable.update_tasks` touches only the cells whose text
changed (``update_cell`` by row key), adds rows that start matching the filter
and removes rows that stop; it rebuilds the table only when most rows are
stale, because ``DataTable.remove_row`` re-indexes every row. Sorting happens
only when a sort key of a changed row moved.

The filter language (``/``) is :func:`~tek_tui.widgets.task_cells.parse_filter`.

Rows that come later (a ``plan`` task's sub-tasks, ``build/compile``, once
its sub-plan starts; a task added by ``a``) are added like any changed task;
in plan order a sub-task sits right after its plan task (and its earlier
sub-tasks), not at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from core.events import TaskInfo, TaskState
from tek_tui.widgets.row_table import RowTable
from tek_tui.widgets.states import format_duration, state_text
from tek_tui.widgets.task_cells import (
    SORT_LABELS,
    SORT_MARKS,
    SORTS,
    STATE_RANK,
    parse_filter,
    progress_text,
    reason_text,
)
from tek_tui.widgets.task_columns import fit_widths, widest_texts

__all__ = ["SORTS", "SORT_LABELS", "SORT_MARKS", "TaskTable", "progress_text"]

Cells = tuple[Any, ...]


def _cut(text: str) -> Text:
    """Cell text that ends in "…" when its column is too narrow (and is never markup)."""
    return Text(text, no_wrap=True, overflow="ellipsis", end="")


class TaskTable(RowTable):
    """The run's tasks; posts :class:`TaskTable.TaskSelected` as the cursor moves."""

    BINDINGS = [
        Binding("o", "cycle_sort", "Sort", id="sort-tasks", tooltip="Cycle the sort order"),
        Binding("j", "cursor_down", "Down", id="task-down", show=False),
        Binding("k", "cursor_up", "Up", id="task-up", show=False),
    ]

    class TaskSelected(Message):
        """The cursor moved onto a task (or off every task: ``task_id`` None)."""

        def __init__(self, table: TaskTable, task_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.task_id = task_id

        @property
        def control(self) -> TaskTable:
            return self.table

    def __init__(self, *, clock: Callable[[], float], **kwargs: Any) -> None:
        super().__init__(zebra_stripes=False, **kwargs)
        self._clock = clock
        self._tasks: dict[str, TaskInfo] = {}
        self._order: dict[str, tuple[int, ...]] = {}
        """Plan-order key of each task: ``(n,)``, or its plan task's key + ``(n,)``."""
        self._placed = 0
        self._cells: dict[str, Cells] = {}
        self._painted: dict[str, Cells] = {}
        self._stale: set[str] = set()
        self._predicate: Callable[[TaskInfo], bool] | None = None
        self.sort_mode = "plan"
        """Current sort order, one of :data:`SORTS`."""
        self.filter_text = ""
        """Current filter text (empty: every task)."""
        self._layout_version = 0
        self._offsets: list[tuple[Any, int]] = []
        self._offsets_key: tuple[int, int] | None = None

    # ---------------------------------------------------------------- cells

    def _cells_for(self, task: TaskInfo, now: float) -> Cells:
        if task.started_ts is None:
            duration = None
        else:
            duration = (task.finished_ts or now) - task.started_ts
        return (
            task.state,
            task.id,
            format_duration(duration, tenths=True),
            reason_text(task) or progress_text(task),
            str(task.attempt) if task.attempt else "",
            task.agent,
            task.name,
        )

    def _render_cells(self, cells: Cells) -> list[Any]:
        state, task_id, duration, progress, attempt, agent, name = cells
        return [state_text(self.app.theme_variables, state), _cut(task_id), duration,
                _cut(progress), attempt, _cut(agent), _cut(name)]

    # --------------------------------------------------------------- public

    def set_tasks(self, tasks: Iterable[TaskInfo]) -> None:
        """Load the plan's tasks (once per run), keeping plan order."""
        self._tasks = {t.id: t for t in tasks}
        self._order = {}
        for task_id in self._tasks:
            self._place(task_id)
        if not self.columns:
            # Most telling columns first, so an 80-column terminal shows them.
            for label, key in (("state", "state"), ("id", "id"), ("time", "duration"),
                               ("progress/why", "progress"), ("#", "attempt"),
                               ("agent", "agent"), ("name", "name")):
                self.add_column(label, key=key, width=len(label))
        self._fit_columns()
        self._rebuild()

    def _fit_columns(self) -> None:
        """Size the columns for the table's width and the longest texts (see task_columns)."""
        if not self.columns:
            return
        # The vertical scroll bar's cell is always kept: rows come and go.
        available = self.outer_size.width - self.styles.gutter.width - 1
        if available <= 0:
            return  # not laid out yet: on_resize fits them
        widths = fit_widths(available, widest_texts(self._tasks.values()))
        changed = False
        for key, column in self.columns.items():
            width = widths.get(key.value or "", column.width)
            if column.width != width:
                column.width = width
                changed = True
        if changed:
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()

    def update_tasks(self, tasks: Iterable[TaskInfo]) -> None:
        """Apply changed tasks: update changed cells, add or drop rows for the filter."""
        now = self._clock()
        before = self.selected_task_id
        removals: list[str] = []
        resort = added = False
        for task in tasks:
            old = self._tasks.get(task.id)
            self._tasks[task.id] = task
            if old is None:
                self._place(task.id)
                added = True
            visible = task.id in self._cells
            wanted = self._predicate is None or self._predicate(task)
            if visible and not wanted:
                removals.append(task.id)
            elif wanted and not visible:
                self._add(task, now)
                resort = True
            elif visible:
                resort |= self._update_row(task, now)
        if added:
            self._fit_columns()  # a longer id or name may have come
        if len(removals) > 200 or len(removals) * 2 > len(self._cells):
            self._rebuild()  # cheaper than many O(n) remove_row calls
            return
        for task_id in removals:
            self._remove(task_id)
        if resort:
            self._sort()
        # Removing or adding rows under a cursor that stays on the same index
        # posts no RowHighlighted: without this the screen would keep (and
        # send controls to) a task the table no longer shows.
        if self.selected_task_id != before:
            self._post_selection()

    def tick(self) -> None:
        """Refresh the duration of running tasks (called about once a second)."""
        now = self._clock()
        resort = False
        for task_id, cells in self._cells.items():
            if cells[0] is TaskState.RUNNING:
                resort |= self._update_row(self._tasks[task_id], now)
        if resort and self.sort_mode == "duration":
            self._sort()

    def restyle(self) -> None:
        """Repaint state cells in the current theme's colours."""
        for task_id, cells in self._painted.items():
            self.update_cell(task_id, "state", state_text(self.app.theme_variables, cells[0]))

    def set_filter(self, text: str) -> None:
        """Show only tasks matching ``text`` (see the module docstring)."""
        self.filter_text = text
        self._predicate = parse_filter(text)
        self._rebuild()

    def select(self, task_id: str | None) -> None:
        """Move the cursor to ``task_id`` when it is shown."""
        if task_id is None or task_id not in self._cells:
            return
        index = self.get_row_index(task_id)
        if index != self.cursor_row:
            self.move_cursor(row=index)

    @property
    def selected_task_id(self) -> str | None:
        """Task under the cursor, if any."""
        if not self._cells or self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # cursor outside the rows (empty filter result)
            return None
        return key.value

    @property
    def shown_ids(self) -> list[str]:
        """Ids of the rows shown, top to bottom."""
        return [row.key.value or "" for row in self.ordered_rows]  # keys are task ids

    def action_cycle_sort(self) -> None:
        """Sort by the next order in :data:`SORTS`; the cursor goes to the top (kept on
        its task, the view followed it down: under ``time ▼`` it hid the longest)."""
        self.sort_mode = SORTS[(SORTS.index(self.sort_mode) + 1) % len(SORTS)]
        self._sort()
        self._mark_sort_column()
        if self.row_count:
            self.move_cursor(row=0, animate=False)
        self.scroll_home(animate=False, immediate=True)
        self.notify(f"sorted by {SORT_LABELS[self.sort_mode]}", timeout=2)

    def _mark_sort_column(self) -> None:
        """``time ▼``: the header says what the rows are sorted by, and which way
        (:data:`SORT_MARKS`; plan order: no mark)."""
        for key, label in (("state", "state"), ("duration", "time"), ("id", "id")):
            mark = SORT_MARKS[key] if key == self.sort_mode else ""
            self.columns[key].label = Text(label + mark)  # type: ignore[index]
        self._clear_caches()  # the header row is cached like any other
        self.refresh()

    # -------------------------------------------------------------- private

    def _place(self, task_id: str) -> None:
        """Give a new task its plan-order key: after every task known so far, or,
        for a sub-task (``build/compile``), after its plan task's rows so far."""
        self._placed += 1
        prefix, slash, _ = task_id.rpartition("/")
        parent = self._order.get(prefix) if slash else None
        self._order[task_id] = (self._placed,) if parent is None else (*parent, self._placed)

    @property
    def _y_offsets(self) -> list[tuple[Any, int]]:
        # DataTable rebuilds this per-line list of every row whenever any cell
        # changes (its cache key is the update count): 10k rows at every 10 Hz
        # flush. Rows here are all one line high, so the list only changes
        # when rows are added, removed or reordered (``_layout_version``).
        key = (self._layout_version, len(self.rows))
        if self._offsets_key != key:
            self._offsets = [(row.key, 0) for row in self.ordered_rows]
            self._offsets_key = key
        return self._offsets

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        # DataTable measures every cell of every new row to size auto-width
        # columns (70k measures, ~1.5 s, for 10k rows). Every column here has a
        # fixed width and every row is one line, so only the virtual size changes.
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width,
                                 self._total_row_height + header)

    def _add(self, task: TaskInfo, now: float) -> None:
        cells = self._cells_for(task, now)
        self._cells[task.id] = cells
        self._painted[task.id] = cells
        self._layout_version += 1
        self.add_row(*self._render_cells(cells), key=task.id)

    def _remove(self, task_id: str) -> None:
        self._cells.pop(task_id, None)
        self._painted.pop(task_id, None)
        self._stale.discard(task_id)
        self._layout_version += 1
        try:
            self.remove_row(task_id)
        except RowDoesNotExist:
            pass

    def _update_row(self, task: TaskInfo, now: float) -> bool:
        """Record a row's new cells, painting them if on screen; True when a sort key changed."""
        old = self._cells[task.id]
        new = self._cells_for(task, now)
        if new == old:
            return False
        self._cells[task.id] = new
        if self._on_screen(task.id):
            self._paint(task.id)
        else:
            self._stale.add(task.id)
        return (old[0] != new[0] and self.sort_mode == "state") or (
            old[2] != new[2] and self.sort_mode == "duration"
        )

    def _paint(self, task_id: str) -> None:
        """Write a row's changed cells into the DataTable."""
        self._stale.discard(task_id)
        painted = self._painted[task_id]
        new = self._cells[task_id]
        if painted == new:
            return
        self._painted[task_id] = new
        rendered = self._render_cells(new)
        for index, column in enumerate(self.columns):
            if painted[index] != new[index]:
                self.update_cell(task_id, column, rendered[index])

    def _on_screen(self, task_id: str) -> bool:
        # Any update_cell invalidates DataTable's whole render cache, so rows
        # out of view are left stale (``_stale``) and painted when scrolled
        # to: a 10k-row table then repaints only when what shows changes.
        top = int(self.scroll_y)
        try:
            index = self.get_row_index(task_id)
        except RowDoesNotExist:
            return False
        return top - 1 <= index <= top + self.size.height + 1

    def _paint_visible(self) -> None:
        if self._stale:
            for task_id in [t for t in self._stale if self._on_screen(t)]:
                self._paint(task_id)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._paint_visible()

    def on_resize(self) -> None:
        """More rows may show now; fewer must still show the cursor's.

        After the terminal shrinks (or a zoomed pane goes back) the cursor
        row could sit below the view: no highlighted row visible, and the
        next ``c``/``x`` would act on a task nobody sees.
        """
        self._fit_columns()
        self._paint_visible()
        self.call_after_refresh(self._scroll_cursor_into_view)

    def cell_values(self, task_id: str) -> dict[str, Any]:
        """The row's current values by column key (painted or not yet scrolled to)."""
        return dict(zip((c.value or "" for c in self.columns), self._cells[task_id], strict=True))

    def _rebuild(self) -> None:
        keep = self.selected_task_id
        self._layout_version += 1
        # Forget rows first: clear() resets the scroll, which paints stale rows.
        self._cells.clear()
        self._painted.clear()
        self._stale.clear()
        self.clear()
        now = self._clock()
        for task in self._sorted(self._tasks.values()):
            if self._predicate is None or self._predicate(task):
                self._add(task, now)
        self.select(keep)
        self._post_selection()

    def _sorted(self, tasks: Iterable[TaskInfo]) -> list[TaskInfo]:
        return sorted(tasks, key=lambda t: self._sort_key(t.id))

    def _sort_key(self, task_id: str) -> Any:
        task = self._tasks[task_id]
        order = self._order[task_id]
        if self.sort_mode == "state":
            return (STATE_RANK[task.state], order)
        if self.sort_mode == "duration":
            cells = self._cells.get(task_id)
            seconds = self._seconds(task)
            return (-seconds if cells is not None else 0.0, order)
        if self.sort_mode == "id":
            return (task.id, order)
        return order

    def _seconds(self, task: TaskInfo) -> float:
        if task.started_ts is None:
            return 0.0
        return (task.finished_ts or self._clock()) - task.started_ts

    def _sort(self) -> None:
        keep = self.selected_task_id
        self._layout_version += 1
        self.sort("id", key=lambda task_id: self._sort_key(str(task_id)))
        self.select(keep)
        self._paint_visible()

    def _post_selection(self) -> None:
        self.post_message(self.TaskSelected(self, self.selected_task_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Turn the table's cursor moves into :class:`TaskSelected`."""
        event.stop()
        self.post_message(self.TaskSelected(self, event.row_key.value))

    @property
    def tasks(self) -> Mapping[str, TaskInfo]:
        """Every task by id, shown or filtered out."""
        return self._tasks
