"""The DAG pane: a layered drawing of the plan that follows the selected task.

Generations are columns, left to right; each node shows a state symbol and
its name in the state's colour (never colour alone), edges are box characters
(layout in :mod:`tek_tui.widgets.dag_layout`, computed once per plan in
:meth:`DagView.set_tasks`). :meth:`DagView.update_states` only records states
and repaints the visible lines (Line API), so 10k-task plans stay cheap.

A plan with more than :data:`MAX_DRAWN` tasks, or whose drawing is taller than
:data:`MAX_HEIGHT` rows, is shown as an overview instead: one stacked bar per
generation (grouped when there are many) with counts by state, then the
upstream/downstream neighbourhood of the selected task (two steps each way)
drawn as a small layered graph, re-laid out when the selection moves.

A ``plan`` task's sub-tasks (``build/compile``) are drawn after it: those
of its sub-plan's tasks that wait for no other sub-task hang from the plan
task, the others from their own deps, labelled with their own names. They
join when the screen lays out the tasks again (:meth:`DagView.set_tasks`,
as when the sub-plan starts); until then their states are ignored.

Keys move between nodes: up/down (k/j) within a column, left/right (h/l) to
the nearest dependency or dependant. A move by the user posts
:class:`DagView.TaskSelected`; :meth:`DagView.select` (the screen following
another pane) does not, so panes never echo each other.

Colours come from component classes bound to tek theme variables
(``$tek-pending``, ``$tek-ready``, ``$tek-running``, ``$tek-retrying``,
``$tek-succeeded``, ``$tek-failed``, ``$tek-cancelled``, ``$tek-skipped``) and
``$text-muted`` for edges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.events import TaskInfo, TaskState
from tek_tui.widgets.dag_layout import (
    DagIndex,
    Drawing,
    GenerationCounts,
    build_index,
    layout,
    neighbourhood,
)
from tek_tui.widgets.states import STATE_SYMBOLS

MAX_DRAWN = 150
"""Plans with more tasks than this get the overview."""
MAX_HEIGHT = 80
"""Drawings taller than this (rows) get the overview too."""
OVERVIEW_ROWS = 30
"""At most this many generation bars (a third of the pane's height when smaller);
more generations are grouped, so the neighbourhood graph stays in view."""

SYMBOLS = STATE_SYMBOLS
"""One symbol per state (shared with the task table), so a state reads without colour."""

# Order of segments in the overview bars: finished work first, waiting work last.
_BAR_ORDER = (
    TaskState.SUCCEEDED,
    TaskState.FAILED,
    TaskState.CANCELLED,
    TaskState.SKIPPED,
    TaskState.RUNNING,
    TaskState.RETRYING,
    TaskState.READY,
    TaskState.PENDING,
)


class DagView(ScrollView, can_focus=True):
    """Layered DAG of a plan's tasks, coloured by state."""

    COMPONENT_CLASSES = {
        "dag-view--edge",
        "dag-view--selected",
        "dag-view--header",
        *(f"dag-view--{state.value}" for state in TaskState),
    }

    DEFAULT_CSS = """
    DagView { height: 1fr; min-height: 4; }
    DagView > .dag-view--edge { color: $text-muted; }
    DagView > .dag-view--selected { text-style: reverse bold; }
    DagView > .dag-view--header { text-style: bold; }
    DagView > .dag-view--pending { color: $tek-pending; }
    DagView > .dag-view--ready { color: $tek-ready; }
    DagView > .dag-view--running { color: $tek-running; }
    DagView > .dag-view--retrying { color: $tek-retrying; }
    DagView > .dag-view--succeeded { color: $tek-succeeded; }
    DagView > .dag-view--failed { color: $tek-failed; }
    DagView > .dag-view--cancelled { color: $tek-cancelled; }
    DagView > .dag-view--skipped { color: $tek-skipped; }
    """

    BINDINGS = [
        Binding("up,k", "move('up')", "Up", show=False, id="dag-up"),
        Binding("down,j", "move('down')", "Down", show=False, id="dag-down"),
        Binding("left,h", "move('left')", "Upstream", id="dag-upstream"),
        Binding("right,l", "move('right')", "Downstream", id="dag-downstream"),
    ]

    class TaskSelected(Message):
        """The user moved the DAG's selection to ``task_id``."""

        def __init__(self, dag_view: DagView, task_id: str) -> None:
            super().__init__()
            self.dag_view = dag_view
            self.task_id = task_id

        @property
        def control(self) -> DagView:
            return self.dag_view

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._index: DagIndex = build_index(())
        self._labels: list[str] = []
        self._counts = GenerationCounts(self._index)
        self._full: Drawing | None = None
        self._hood: Drawing | None = None
        self._hood_of: int | None = None
        self._selected: int | None = None
        self._compact = False
        self._version = 0
        self._bucket_cache: tuple[tuple[int, int], list[tuple[int, int, Counter[TaskState]]]] | None = None

    # ------------------------------------------------------------------ API

    @property
    def overview(self) -> bool:
        """True when the plan is too big to draw whole."""
        return self._full is None and bool(self._index.ids)

    @property
    def selected(self) -> str | None:
        """Id of the selected task."""
        return None if self._selected is None else self._index.ids[self._selected]

    @property
    def drawing(self) -> Drawing | None:
        """What is drawn as a graph: the whole plan, or the selection's neighbourhood."""
        return self._full if self._full is not None else self._hood

    def set_tasks(self, tasks: Sequence[TaskInfo]) -> None:
        """Show a new plan: index it, lay it out once, take each task's state.

        Args:
            tasks: every task of the plan, in plan order.
        """
        keep = self.selected  # by id: the new plan numbers its tasks afresh
        self._index = build_index((t.id, _drawn_deps(t)) for t in tasks)
        self._labels = [t.name or t.id for t in tasks]
        self._counts = GenerationCounts(self._index)
        for task in tasks:
            self._counts.set(self._index.position[task.id], task.state)
        self._version += 1
        self._selected = self._index.position.get(keep) if keep is not None else None
        self._relayout()

    def update_states(self, states: Mapping[str, TaskState]) -> None:
        """Record new states (all tasks or just the changed ones) and repaint.

        Never re-lays out: O(len(states)).
        """
        position = self._index.position
        changed = False
        for task_id, state in states.items():
            node = position.get(task_id)
            if node is not None and self._counts.set(node, state):
                changed = True
        if changed:
            self._version += 1
            self.refresh()

    def select(self, task_id: str | None) -> None:
        """Follow a task selected elsewhere (posts nothing); ``None`` clears."""
        node = None if task_id is None else self._index.position.get(task_id)
        if node != self._selected:
            self._selected = node
            self._after_move()

    # -------------------------------------------------------------- layout

    def _node_width(self) -> int:
        longest = max((len(label) for label in self._labels), default=4)
        return max(6, min(longest + 3, 13 if self._compact else 23))

    def _relayout(self) -> None:
        self._full = None
        self._hood = None
        self._hood_of = None
        if len(self._index.ids) <= MAX_DRAWN:
            full = layout(self._index, node_width=self._node_width())
            if full.height <= MAX_HEIGHT:
                self._full = full
        self._after_move()

    def _after_move(self) -> None:
        if self._full is None and self._selected != self._hood_of:
            self._hood_of = self._selected
            self._hood = (
                None
                if self._selected is None
                else layout(
                    self._index,
                    neighbourhood(self._index, self._selected),
                    node_width=self._node_width(),
                )
            )
        self._update_virtual_size()
        self.refresh()
        self._scroll_to_selected()

    def _overview_rows(self) -> int:
        if self._full is not None:
            return 0
        return 2 + len(self._buckets()) + 1  # title, bars, blank, hood title

    def _buckets(self) -> list[tuple[int, int, Counter[TaskState]]]:
        # Cached per (counts version, row budget): every overview line of a paint reads it.
        rows = max(3, min(OVERVIEW_ROWS, self.size.height // 3))
        key = (self._version, rows)
        if self._bucket_cache is None or self._bucket_cache[0] != key:
            self._bucket_cache = (key, self._counts.buckets(rows))
        return self._bucket_cache[1]

    def _update_virtual_size(self) -> None:
        drawing = self.drawing
        width = drawing.width if drawing else 0
        height = (drawing.height if drawing else 0) + self._overview_rows()
        self.virtual_size = Size(max(width, 40 if self.overview else 0), height)

    def _scroll_to_selected(self) -> None:
        drawing = self.drawing
        if self._selected is None or drawing is None or self._selected not in drawing.at:
            return
        x, y = drawing.at[self._selected]
        region = Region(x, y + self._overview_rows(), drawing.node_width, 1)
        self.scroll_to_region(region, animate=False, force=True)

    def on_resize(self) -> None:
        compact = self.size.width < 60
        if compact != self._compact:
            self._compact = compact
            self._relayout()
        else:
            self._update_virtual_size()  # the overview's bar count follows the height

    # ---------------------------------------------------------------- keys

    def action_move(self, direction: str) -> None:
        """Move the selection between nodes and tell the screen."""
        drawing = self.drawing
        index = self._index
        if not index.ids:
            return
        if self._selected is None or drawing is None or self._selected not in drawing.at:
            target: int | None = 0 if self._selected is None else self._selected
        else:
            sel = self._selected
            _, y = drawing.at[sel]
            if direction in ("up", "down"):
                column = drawing.columns[drawing.column_of[sel]]
                k = column.index(sel) + (1 if direction == "down" else -1)
                target = column[k] if 0 <= k < len(column) else None
            else:
                links = index.parents[sel] if direction == "left" else index.children[sel]
                shown = [v for v in links if v in drawing.at]
                pool = shown or list(links)
                target = min(pool, key=lambda v: abs(drawing.at[v][1] - y) if v in drawing.at else 0) if pool else None
        if target is None or target == self._selected:
            return
        self._selected = target
        self._after_move()
        self.post_message(self.TaskSelected(self, index.ids[target]))

    # ------------------------------------------------------------- painting

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"dag-view--{name}")

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        top = self._overview_rows()
        if row < top:
            strip = self._overview_line(row)
            return strip.crop_extend(0, self.size.width, self.rich_style)
        drawing = self.drawing
        if drawing is None or row - top >= drawing.height:
            return Strip.blank(self.size.width, self.rich_style)
        strip = self._graph_line(drawing, row - top)
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, self.rich_style)

    def _graph_line(self, drawing: Drawing, y: int) -> Strip:
        line = drawing.lines[y]
        edge = self._style("edge")
        segments: list[Segment] = []
        x = 0
        w = drawing.node_width
        for node in drawing.rows[y]:
            nx, _ = drawing.at[node]
            if nx > x:
                segments.append(Segment(line[x:nx], edge))
            state = self._counts.state(node)
            style = self._style(state.value)
            if node == self._selected:
                style += self._style("selected")
            label = set_cell_size(f"{SYMBOLS[state]} {self._labels[node]}", w - 1)
            if len(self._labels[node]) + 2 > w - 1:
                label = label[:-1] + "…"
            segments.append(Segment(label, style))
            segments.append(Segment(" ", self.rich_style))
            x = nx + w
        if x < len(line):
            segments.append(Segment(line[x:], edge))
        return Strip(segments)

    def _overview_line(self, row: int) -> Strip:
        buckets = self._buckets()
        header = self._style("header")
        if row == 0:
            text = f"{len(self._index.ids)} tasks, {len(self._index.generations)} generations"
            return Strip([Segment(text if self._compact else f"Overview: {text}", header)])
        if row == len(buckets) + 1:
            return Strip.blank(0)
        if row == len(buckets) + 2:
            if self._selected is None:
                return Strip([Segment("select a task to see its neighbourhood", self._style("edge"))])
            return Strip([Segment(f"Around {self._labels[self._selected]}", header)])
        first, last, counts = buckets[row - 1]
        label = _range_label(first, last)
        label_width = max(7, len(_range_label(*buckets[-1][:2])))  # the widest: the last
        biggest = max(sum(c.values()) for _, _, c in buckets) or 1
        bar_width = max(6, min(40, self.size.width - 30))
        total = sum(counts.values())
        segments = [Segment(f"{label:>{label_width}} ", self._style("edge"))]
        cells = round(bar_width * total / biggest)
        done = 0
        seen = 0
        for state in _BAR_ORDER:
            seen += counts[state]
            end = round(cells * seen / total) if total else 0
            if end > done:
                segments.append(Segment("█" * (end - done), self._style(state.value)))
                done = end
        segments.append(Segment(" " * (bar_width - done + 1), self.rich_style))
        for state in _BAR_ORDER:
            if counts[state]:
                segments.append(Segment(f"{SYMBOLS[state]}{counts[state]} ", self._style(state.value)))
        return Strip(segments)


def _drawn_deps(task: TaskInfo) -> Sequence[str]:
    """A task's deps as drawn: a sub-task that waits for no other sub-task
    (``build/compile``) is drawn downstream of its plan task (``build``)."""
    prefix, slash, _ = task.id.rpartition("/")
    if slash and not task.deps:
        return (prefix,)
    return task.deps


def _range_label(first: int, last: int) -> str:
    """Generations ``first..last`` (0-based) as the overview shows them, 1-based."""
    return f"{first + 1}" if first == last else f"{first + 1}-{last + 1}"
