"""The console's picture of one run, built from the run protocol.

:class:`RunState` starts from a :class:`~core.events.RunSnapshot` and applies
events as they arrive. Applying is cheap (dict updates) and marks what changed;
the screen's ~10 Hz flush takes the dirty marks and paints only those, so a
burst of thousands of events costs one repaint (STYLE.md, "Coalesce, then
paint"). Not a widget: plain data, tested without an app.

A ``plan`` task's sub-tasks join the run when its sub-plan starts
(:class:`~core.events.TasksAdded`; a snapshot taken later has them already):
they become tasks like the others, named ``<task>/<sub-task>``, placed in
:attr:`RunState.order` right after their plan task. A sub-task's ``pool`` is
its sub-run's own, so it is shown as ``<task>/<pool>`` (``build/shell``):
the parent's pool of the same name is another one (resizing it would not
touch the sub-plan). A retried plan task's new sub-run starts its rows afresh.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from core.events import (
    AdmissionChanged,
    Event,
    OutputDropped,
    OutputLines,
    PoolChanged,
    PoolInfo,
    Progress,
    RunFinished,
    RunSnapshot,
    RunStarted,
    RunStatus,
    TaskChanged,
    TaskInfo,
    TasksAdded,
    TaskState,
)

#: Points of loss history kept per ML task for the loss curve.
LOSS_POINTS = 400
#: Live output lines kept between two flushes for the watched task.
PENDING_LINES = 5000


class ChangedIds(set[str]):
    """A set of task ids that iterates in the order they were first added.

    The screen hands the changed tasks to the table in this order, so the
    rows of a sub-plan that just started are added in its plan order.
    """

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._order: dict[str, None] = dict.fromkeys(ids)
        super().__init__(self._order)

    def add(self, task_id: str) -> None:
        """Add ``task_id`` (once: its place is where it was first added)."""
        super().add(task_id)
        self._order[task_id] = None

    def discard(self, task_id: str) -> None:
        """Remove ``task_id`` if present."""
        super().discard(task_id)
        self._order.pop(task_id, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)


@dataclass
class Dirty:
    """What changed since the last :meth:`RunState.take_dirty`."""

    tasks: set[str] = field(default_factory=ChangedIds)
    """Ids of changed tasks; iterated in the order they changed (a ``ChangedIds``)."""
    pools: bool = False
    run: bool = False
    added: bool = False
    """Tasks joined the run (a sub-plan started): what lays out every task
    (the DAG) takes them all again, in :attr:`RunState.order`."""


class RunState:
    """Tasks, pools and run status as the console shows them."""

    def __init__(self, snapshot: RunSnapshot,
                 times: Mapping[str, tuple[float, float | None]] | None = None) -> None:
        """Start from ``snapshot``.

        Args:
            snapshot: the run as its client gives it.
            times: ``(started, finished)`` of tasks the snapshot has no times
                for (a resumed run's tasks that succeeded before, read from
                the journal).
        """
        self.run_id = snapshot.run_id
        self.plan_path = snapshot.plan_path
        self.status = snapshot.status
        self.started_ts = snapshot.started_ts
        self.finished_ts = snapshot.finished_ts
        self.admission_paused = snapshot.admission_paused
        self.admission_reason = snapshot.admission_reason
        self.dropped_lines = snapshot.dropped_lines
        self.tasks: dict[str, TaskInfo] = {t.id: sub_task_pool(t) for t in snapshot.tasks}
        for task_id, (started, finished) in (times or {}).items():
            task = self.tasks.get(task_id)
            if task is not None and task.started_ts is None:
                self.tasks[task_id] = dataclasses.replace(
                    task, started_ts=started, finished_ts=task.finished_ts or finished)
        self.order: list[str] = _plan_order([t.id for t in snapshot.tasks])
        """Task ids in plan order, each sub-task after its plan task."""
        self.pools: dict[str, PoolInfo] = {p.name: p for p in snapshot.pools}
        self.counts: Counter[TaskState] = Counter(t.state for t in snapshot.tasks)
        self.loss: dict[str, deque[float]] = {}
        self.watched: str | None = None
        """Task whose live output is kept for the log pane."""
        self.pending_lines: deque[tuple[int, str]] = deque(maxlen=PENDING_LINES)
        """(attempt, line) of the watched task since the last flush."""
        self.finished = snapshot.status.is_finished
        self.last_end_ts: float | None = max(
            (t.finished_ts for t in snapshot.tasks if t.finished_ts is not None), default=None)
        """When the last task ended: a run kept open after its tasks took until then."""
        self._dirty = Dirty(tasks=ChangedIds(self.order), pools=True, run=True)
        self._dependants: dict[str, list[str]] | None = None

    # ----------------------------------------------------------------- apply

    def apply(self, event: Event) -> None:
        """Fold one event into the state and mark what it changed."""
        if isinstance(event, TaskChanged):
            self._task_changed(event)
        elif isinstance(event, TasksAdded):
            self._tasks_added(event)
        elif isinstance(event, OutputLines):
            if event.task_id == self.watched:
                self.pending_lines.extend((event.attempt, line) for line in event.lines)
        elif isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, PoolChanged):
            self.pools[event.pool] = PoolInfo(
                event.pool, event.size, event.busy, event.queued, event.finished,
                event.waiting_for,
            )
            self._dirty.pools = True
        elif isinstance(event, AdmissionChanged):
            self.admission_paused = event.paused
            self.admission_reason = event.reason
            if self.status in (RunStatus.RUNNING, RunStatus.PAUSED):
                paused_by_user = event.paused and "user" in event.reason
                self.status = RunStatus.PAUSED if paused_by_user else RunStatus.RUNNING
            self._dirty.pools = self._dirty.run = True
        elif isinstance(event, OutputDropped):
            self.dropped_lines += event.count
            self._dirty.run = True
        elif isinstance(event, RunStarted):
            self.run_id = event.run_id
            self.status = RunStatus.RUNNING
            self.started_ts = event.ts
            self._dirty.run = True
        elif isinstance(event, RunFinished):
            self.status = event.status
            self.finished_ts = event.ts
            self.finished = True
            # An ended run dispatches nothing: a last "run stopping" pause
            # is no longer news (the engine sends no AdmissionChanged after).
            self.admission_paused, self.admission_reason = False, ""
            self._dirty.run = self._dirty.pools = True

    def _task_changed(self, event: TaskChanged) -> None:
        old = self.tasks.get(event.task_id)
        if old is None:
            return  # not in the snapshot's plan: nothing to show it in
        started = old.started_ts
        finished = old.finished_ts
        progress, fraction = old.progress, old.fraction
        if event.state is TaskState.RUNNING and (
            old.state is not TaskState.RUNNING or event.attempt != old.attempt
        ):
            started, finished = event.ts, None
            if event.attempt != old.attempt:  # a new attempt: the last one's progress is not its
                progress, fraction = {}, None
        elif event.state.is_terminal or event.state is TaskState.RETRYING:
            if event.started_ts is not None:
                # The attempt's own start: a slow console's stream may have
                # folded its RUNNING into this end.
                started = event.started_ts
            elif event.attempt != old.attempt:
                started = None  # an earlier attempt's start is not this one's
            if event.state.is_terminal:
                finished = event.ts
                self.last_end_ts = max(self.last_end_ts or event.ts, event.ts)
        elif event.state in (TaskState.PENDING, TaskState.READY):
            started = finished = None
        self.tasks[event.task_id] = dataclasses.replace(
            old,
            state=event.state,
            attempt=event.attempt,
            started_ts=started,
            finished_ts=finished,
            exit_code=event.exit_code,
            reason=event.reason,
            pid=event.pid if event.state is TaskState.RUNNING else None,
            progress=progress,
            fraction=fraction,
        )
        if old.state is not event.state:
            self.counts[old.state] -= 1
            self.counts[event.state] += 1
            self._dirty.run = True
        self._dirty.tasks.add(event.task_id)

    def _tasks_added(self, event: TasksAdded) -> None:
        """A sub-plan started: its tasks join (or, for a retried plan task, start afresh)."""
        new: list[str] = []
        for info in event.tasks:
            info = sub_task_pool(info)
            old = self.tasks.get(info.id)
            if old is None:
                new.append(info.id)
            else:
                self.counts[old.state] -= 1
                self.loss.pop(info.id, None)
            self.tasks[info.id] = info
            self.counts[info.state] += 1
            self._dirty.tasks.add(info.id)
        if new:
            # After the plan task and whatever of its own is shown already.
            inside = event.task_id + "/"
            at = len(self.order)
            for i in range(len(self.order) - 1, -1, -1):
                task_id = self.order[i]
                if task_id == event.task_id or task_id.startswith(inside):
                    at = i + 1
                    break
            self.order[at:at] = new
            self._dirty.added = True
        if event.tasks:
            self._dependants = None  # new deps
            self._dirty.run = True  # the counts changed

    def _progress(self, event: Progress) -> None:
        old = self.tasks.get(event.task_id)
        if old is None or event.attempt < old.attempt:
            return  # unknown, or an earlier attempt's (it ended)
        self.tasks[event.task_id] = dataclasses.replace(
            old, progress=dict(event.values), fraction=event.fraction
        )
        loss = event.values.get("loss")
        if isinstance(loss, int | float):
            self.loss.setdefault(event.task_id, deque(maxlen=LOSS_POINTS)).append(float(loss))
        self._dirty.tasks.add(event.task_id)

    # ------------------------------------------------------------------ read

    def take_dirty(self) -> Dirty:
        """Return what changed since the last call and start afresh."""
        dirty, self._dirty = self._dirty, Dirty()
        return dirty

    def take_lines(self) -> list[tuple[int, str]]:
        """Live lines of the watched task since the last call."""
        lines = list(self.pending_lines)
        self.pending_lines.clear()
        return lines

    def watch(self, task_id: str | None) -> None:
        """Keep live output of ``task_id`` (dropping any other's)."""
        self.watched = task_id
        self.pending_lines.clear()

    def downstream(self, task_id: str) -> list[str]:
        """Tasks downstream of ``task_id`` that have not ended, in plan order.

        These are the tasks that cancelling or skipping ``task_id`` skips
        (the engine skips every task waiting on it, transitively).
        """
        if self._dependants is None:  # built again only when a sub-plan's tasks join
            self._dependants = {}
            for task in self.tasks.values():
                for dep in task.deps:
                    self._dependants.setdefault(dep, []).append(task.id)
        found: set[str] = set()
        stack = list(self._dependants.get(task_id, ()))
        while stack:
            dependant = stack.pop()
            info = self.tasks.get(dependant)
            if dependant in found or info is None or info.state.is_terminal:
                continue
            found.add(dependant)
            stack.extend(self._dependants.get(dependant, ()))
        return [t for t in self.order if t in found]

    def running_pids(self) -> dict[str, int]:
        """Process of each running task that has one."""
        return {
            t.id: t.pid
            for t in self.tasks.values()
            if t.pid is not None and t.state is TaskState.RUNNING
        }

    @property
    def active(self) -> bool:
        """True while the run has started, not finished, and has tasks left to end.

        A console run stays open after its last task (for retries); quitting
        it then needs no confirmation.
        """
        if self.status not in (RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.CANCELLING):
            return False
        return any(n > 0 for state, n in self.counts.items() if not state.is_terminal)


def sub_task_pool(task: TaskInfo) -> TaskInfo:
    """A sub-task (``build/compile``) with its pool named as its sub-run's (``build/shell``).

    Other tasks are returned as they are.
    """
    prefix, slash, _ = task.id.rpartition("/")
    if not slash or task.pool.startswith(prefix + "/"):
        return task
    return dataclasses.replace(task, pool=f"{prefix}/{task.pool}")


def _plan_order(ids: list[str]) -> list[str]:
    """``ids`` with each sub-task (``build/x``) moved after its plan task's rows.

    A snapshot lists a run's own tasks first and its sub-plans' tasks after
    them (an attach after a sub-plan started).
    """
    known = set(ids)
    inside: dict[str, list[str]] = {}
    top: list[str] = []
    for task_id in ids:
        prefix, slash, _ = task_id.rpartition("/")
        if slash and prefix in known:
            inside.setdefault(prefix, []).append(task_id)
        else:
            top.append(task_id)
    if not inside:
        return ids
    out: list[str] = []
    stack = list(reversed(top))
    while stack:
        task_id = stack.pop()
        out.append(task_id)
        stack.extend(reversed(inside.get(task_id, ())))
    return out
