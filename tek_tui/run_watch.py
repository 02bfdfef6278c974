"""What ``tek run``'s live view knows of a run, and how it draws it.

:class:`RunWatch` folds the run protocol's events into a small model (state
per task, running tasks with their last output lines and progress values,
recent failures, sub-plans' tasks); :func:`render` draws it with rich (a
progress bar with counts by state, running tasks, recent failures). The
plain lines and the view's timing are :mod:`tek_tui.live_view`'s.

Nothing here imports textual, and rich only when drawing: ``tek run`` must
start fast.
"""

from __future__ import annotations

import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from core.events import (
    AdmissionChanged,
    Event,
    OutputDropped,
    OutputLines,
    Progress,
    RunFinished,
    TaskChanged,
    TasksAdded,
    TaskState,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from core.client import RunClient

#: Last output lines kept per task.
TAIL = 5
#: States that end an attempt that was started (skipped tasks never started one).
ENDS_AN_ATTEMPT = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.RETRYING, TaskState.CANCELLED})
_FAILURES = 5
_STATE_STYLE = {
    "succeeded": "green", "failed": "red", "running": "cyan", "retrying": "yellow",
    "cancelled": "magenta", "skipped": "dim", "ready": "blue", "pending": "dim",
}  # fmt: skip


#: Terminal control sequences and control characters (tab aside) in task output.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?|[\x00-\x08\x0a-\x1f\x7f-\x9f]"
)


def printable(line: str) -> str:
    """A task's output line without colour codes, cursor moves or other controls.

    Task output is shown as text: a task that colours its output (or prints
    ``\\x1b[2J``) must not move the view's cursor or colour tek's own lines,
    and a plain ``tek run > ci.log`` must carry no escape codes. The log file
    keeps the bytes as the task wrote them.
    """
    return _CONTROL.sub("", line) if not line.isprintable() else line


class RunWatch:
    """The part of a run's state ``tek run`` shows, kept from events."""

    def __init__(self, client: RunClient) -> None:
        snap = client.snapshot()
        self.run_id = snap.run_id
        self.plan_path: str = getattr(snap, "plan_path", "")
        self.states: dict[str, TaskState] = {t.id: t.state for t in snap.tasks}
        #: ``plan`` tasks (their sub-tasks' lines come before their end line)
        self.plans: set[str] = {t.id for t in snap.tasks if getattr(t, "agent", "") == "plan"}
        #: per plan task whose sub-plan started: (its attempt, its sub-tasks)
        self.subs: dict[str, tuple[int, tuple[str, ...]]] = {}
        #: per plan task in ``subs``: how many of its sub-tasks have not ended
        self.subs_open: dict[str, int] = {}
        # Kept as events come (a 100k-task run must not be recounted per frame).
        self._counts: dict[TaskState, int] = {}
        for state in self.states.values():
            self._counts[state] = self._counts.get(state, 0) + 1
        self.started: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.tails: dict[str, deque[str]] = {}
        self.progress: dict[str, dict[str, Any]] = {}
        self.failures: deque[tuple[str, str, str]] = deque(maxlen=_FAILURES)
        self.admission = ""
        self.finished: RunFinished | None = None
        self.t0 = time.monotonic()

    def apply(self, ev: Event) -> TaskChanged | None:
        """Fold one event in; returns it when it is a state change worth a line."""
        if isinstance(ev, TaskChanged):
            prev = self.states.get(ev.task_id)
            self.states[ev.task_id] = ev.state
            if prev is not None:
                self._counts[prev] -= 1
            self._counts[ev.state] = self._counts.get(ev.state, 0) + 1
            if "/" in ev.task_id:
                self._sub_changed(ev.task_id, prev, ev.state)
            new_attempt = ev.attempt and self.attempts.get(ev.task_id) != ev.attempt
            if new_attempt:  # its RUNNING may have been folded into its end
                self.attempts[ev.task_id] = ev.attempt
                self.tails[ev.task_id] = deque(maxlen=TAIL)
            if ev.state is TaskState.RUNNING:
                if prev is TaskState.RUNNING and not new_attempt:
                    return None  # the same attempt again, now with its pid
                self.started[ev.task_id] = time.monotonic()
                self.progress.pop(ev.task_id, None)
                return ev
            self.started.pop(ev.task_id, None)
            if ev.state in (TaskState.FAILED, TaskState.RETRYING):
                tail = self.tails.get(ev.task_id)
                self.failures.append((ev.task_id, ev.reason, tail[-1] if tail else ""))
            if ev.state.is_terminal:
                self.progress.pop(ev.task_id, None)
            return ev if ev.state is not TaskState.READY else None
        if isinstance(ev, OutputLines):
            self.tails.setdefault(ev.task_id, deque(maxlen=TAIL)).extend(ev.lines)
        elif isinstance(ev, OutputDropped):
            self.tails.setdefault(ev.task_id, deque(maxlen=TAIL)).append(
                f"[{ev.count:,} lines not shown; see the log]")
        elif isinstance(ev, Progress):
            values = self.progress.setdefault(ev.task_id, {})
            values.update(ev.values)
            if ev.fraction is not None:
                values["%"] = f"{ev.fraction * 100:.0f}"
        elif isinstance(ev, TasksAdded):
            self._tasks_added(ev)
        elif isinstance(ev, AdmissionChanged):
            self.admission = ev.reason if ev.paused else ""
        elif isinstance(ev, RunFinished):
            self.finished = ev
        return None

    def _sub_changed(self, task_id: str, prev: TaskState | None, state: TaskState) -> None:
        plan = task_id.rpartition("/")[0]
        if plan in self.subs_open and prev is not None and prev.is_terminal != state.is_terminal:
            self.subs_open[plan] += -1 if state.is_terminal else 1

    def _tasks_added(self, ev: TasksAdded) -> None:
        for info in ev.tasks:
            prev = self.states.get(info.id)
            if prev is not None:
                self._counts[prev] -= 1
            self.states[info.id] = info.state
            self._counts[info.state] = self._counts.get(info.state, 0) + 1
            if info.agent == "plan":
                self.plans.add(info.id)
        self.subs[ev.task_id] = (ev.attempt, tuple(t.id for t in ev.tasks))
        self.subs_open[ev.task_id] = sum(1 for t in ev.tasks if not t.state.is_terminal)

    def sub_plan_ended(self, task_id: str, attempt: int) -> bool:
        """True once attempt ``attempt`` of plan task ``task_id`` named its
        sub-tasks (TasksAdded) and every one of them has ended."""
        subs = self.subs.get(task_id)
        return subs is not None and subs[0] >= attempt and self.subs_open[task_id] == 0

    def counts(self) -> dict[str, int]:
        """Tasks per state (only states that occur)."""
        return {s.value: n for s, n in self._counts.items() if n}

    @property
    def total(self) -> int:
        """Tasks known: the plan's, plus those of the sub-plans started so far (``task/sub``)."""
        return len(self.states)

    def done(self) -> int:
        """Tasks in a terminal state."""
        return sum(n for s, n in self._counts.items() if s.is_terminal)


def _fmt_values(values: dict[str, Any]) -> str:
    parts = []
    for k, v in values.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def render(watch: RunWatch, width: int = 100, rows: int = 12) -> RenderableType:
    """The live view: progress bar with counts, running tasks, recent failures."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    done = watch.done()
    counts = Text()
    for state, n in sorted(watch.counts().items()):
        counts.append(f" {state} {n} ", style=_STATE_STYLE.get(state, ""))
    head = Text.assemble(
        (f"run {watch.run_id}  ", "bold"),
        f"{done}/{watch.total}  {time.monotonic() - watch.t0:6.1f}s",
    )
    if watch.admission:
        head.append(f"  dispatch paused: {watch.admission}", style="yellow")
    bar = Table.grid(expand=True)  # a bare ProgressBar ends without a newline
    bar.add_column(ratio=1)
    bar.add_row(ProgressBar(total=max(watch.total, 1), completed=done))
    parts: list[RenderableType] = [head, bar, counts]
    running = sorted(watch.started.items(), key=lambda kv: kv[1])
    if running:
        table = Table(box=None, pad_edge=False, expand=True, show_header=True)
        longest = max(len(tid) for tid, _ in running[:rows])
        table.add_column("running", no_wrap=True, min_width=min(longest, width // 3),
                         max_width=width // 3)
        table.add_column("time", justify="right", no_wrap=True, min_width=6)
        table.add_column("progress / last output", no_wrap=True, overflow="ellipsis")
        now = time.monotonic()
        for tid, t in running[:rows]:
            tail = watch.tails.get(tid)
            progress = watch.progress.get(tid)
            info = _fmt_values(progress) if progress else (tail[-1] if tail else "")
            # Text, not str: rich would read "[/red]" in a task's output as markup.
            table.add_row(tid, f"{now - t:.1f}s", Text(printable(info)))
        if len(running) > rows:
            table.add_row(f"... {len(running) - rows} more", "", "")
        parts.append(table)
    if watch.failures:
        fails = Table(box=None, pad_edge=False, expand=True, show_header=True)
        longest = max(len(tid) for tid, _, _ in watch.failures)
        fails.add_column("recent failures", style="red", no_wrap=True,
                         min_width=min(max(longest, 15), width // 3), max_width=width // 3)
        fails.add_column("why / last output", no_wrap=True, overflow="ellipsis")
        for tid, reason, last in watch.failures:
            fails.add_row(tid, Text(printable(f"{reason}  {last}".strip())))
        parts.append(fails)
    return Group(*parts)
