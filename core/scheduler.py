"""Scheduling state of a run: task records, ready order, pools and resources.

Everything here is plain, synchronous bookkeeping that :mod:`core.engine`
drives from its single scheduler loop; nothing awaits. Keeping it free of
anyio makes each state transition a few attribute writes, which is what lets
the engine push tens of thousands of tasks a second.

Ordering (DESIGN.md, "Scheduling"): ready tasks sit in one heap per pool keyed
by ``(-priority, -longest remaining path, plan order)``. Departure from
DESIGN.md: the "bounded stream" between scheduler and a pool is a slot count,
not a buffer. A pool of size N accepts a task only while fewer than N of its
tasks are running, so nothing ever waits in a hand-off queue (``queued`` in
:class:`~core.events.PoolInfo` counts the pool's *ready* tasks, still owned by
the scheduler). That is the same backpressure with no buffer to drain on
resize or cancel.

Resources: a task's ``cpus`` above the whole capacity is clamped to it (a
``cpus=4`` task still runs under ``-j 2``, alone, like ``make -j``); a task
needing more GPUs or memory than the machine has can never start and fails
with a reason saying so.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from core.errors import CycleError, PlanError
from core.events import TaskState

if TYPE_CHECKING:
    from core.plan import Plan, Task

_EPS = 1e-9


class Cancellable(Protocol):
    """What stops a running attempt or a retry's backoff."""

    def cancel(self) -> None:
        """Stop it."""


class TaskRec:
    """Mutable run-time record of one task (the engine's, never a client's)."""

    __slots__ = (
        "index",
        "task",
        "key",
        "state",
        "waiting",
        "dependents",
        "deps",
        "attempt",
        "attempts_in_run",
        "started_ts",
        "finished_ts",
        "duration_s",
        "exit_code",
        "reason",
        "pid",
        "gpus",
        "cpus",
        "progress",
        "fraction",
        "metrics",
        "scope",
        "cancel_reason",
        "upstream_skip",
        "held",
        "in_heap",
        "pool",
        "topo",
    )

    def __init__(self, index: int, task: Task, rpl: int, pool: Pool) -> None:
        self.index = index
        self.task = task
        self.key = (-task.priority, -rpl, index)
        self.state = TaskState.PENDING
        self.waiting = 0
        self.dependents: list[TaskRec] = []
        self.deps: list[TaskRec] = []
        self.attempt = 0
        self.attempts_in_run = 0
        self.started_ts: float | None = None
        self.finished_ts: float | None = None
        self.duration_s: float | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.pid: int | None = None
        self.gpus: tuple[int, ...] = ()
        self.cpus = 0.0
        self.progress: dict[str, float | int | str] = {}
        self.fraction: float | None = None
        self.metrics: dict[str, float] = {}
        #: what cancels the current attempt or backoff: an anyio cancel scope or a
        #: :class:`core.launched.LaunchedAttempt`
        self.scope: Cancellable | None = None
        self.cancel_reason = ""
        #: True when skipped because an upstream task failed (RetryTask undoes it).
        self.upstream_skip = False
        #: True for a task skipped by the user before its upstream finished:
        #: its downstream waits for that upstream (``waiting`` still counts it).
        self.held = False
        self.in_heap = False
        self.pool = pool
        #: Position in a topological order of the plan.
        self.topo = 0


class Pool:
    """A named set of worker slots whose size may change during the run."""

    __slots__ = ("name", "size", "busy", "queued", "finished", "heap", "dirty", "waiting_for")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.busy = 0
        #: Ready tasks of this pool waiting for a slot (valid heap entries).
        self.queued = 0
        self.finished = 0
        self.heap: list[tuple[tuple[int, int, int], TaskRec]] = []
        #: True when size/busy/queued changed since the last PoolChanged.
        self.dirty = True
        #: The resource its queued tasks wait for while it has free slots ("" when none).
        self.waiting_for = ""

    def push(self, rec: TaskRec) -> None:
        """Queue a READY task."""
        if not rec.in_heap:
            rec.in_heap = True
            heapq.heappush(self.heap, (rec.key, rec))
        self.queued += 1
        self.dirty = True

    def pop(self) -> TaskRec | None:
        """Take the best READY task, dropping stale entries; None when empty."""
        heap = self.heap
        while heap:
            rec = heapq.heappop(heap)[1]
            rec.in_heap = False
            if rec.state is TaskState.READY:
                self.queued -= 1
                return rec
        self.queued = 0
        return None

    def peek(self) -> TaskRec | None:
        """The best READY task, left queued (stale entries are dropped)."""
        heap = self.heap
        while heap:
            rec = heap[0][1]
            if rec.state is TaskState.READY:
                return rec
            heapq.heappop(heap)
            rec.in_heap = False
        self.queued = 0
        return None

    def forget(self, rec: TaskRec) -> None:
        """A READY task left the queue without starting (cancelled, skipped)."""
        self.queued -= 1
        self.dirty = True


class Resources:
    """CPU, GPU and memory capacities and what is free of each."""

    def __init__(self, cpus: float, gpus: int, memory_mb: int) -> None:
        self.cpus_total = float(cpus)
        self.cpus_free = float(cpus)
        self.gpus_total = gpus
        self.gpus_free: list[int] = list(range(gpus))
        self.memory_total = memory_mb
        self.memory_free = memory_mb

    def impossible(self, task: Task) -> tuple[str, str] | None:
        """``(column, why)`` when the task needs more than the whole capacity, else None."""
        if task.gpus > self.gpus_total:
            plural = "" if task.gpus == 1 else "s"
            return "gpus", f"needs {task.gpus} GPU{plural}; capacity is {self.gpus_total} (--gpus)"
        if task.memory_mb > self.memory_total:
            return "memory_mb", (f"needs {task.memory_mb} MiB memory; capacity is "
                                 f"{self.memory_total} MiB (--memory-mb)")
        return None

    def short_of(self, task: Task) -> str:
        """Which resource keeps ``task`` from starting now, with its use (e.g. ``cpus (2 of 2 in use)``)."""
        if self.cpus_for(task) > self.cpus_free + _EPS:
            used = self.cpus_total - self.cpus_free
            return f"cpus ({used:g} of {self.cpus_total:g} in use)"
        if task.gpus > len(self.gpus_free):
            used_gpus = self.gpus_total - len(self.gpus_free)
            return f"GPUs ({used_gpus} of {self.gpus_total} in use)"
        return (f"memory ({self.memory_total - self.memory_free} of {self.memory_total} MiB "
                "reserved)")

    def cpus_for(self, task: Task) -> float:
        """CPUs the task holds: its request, clamped to the whole capacity."""
        return min(task.cpus, self.cpus_total)

    def fits(self, task: Task) -> bool:
        """True when the task's resources are free now."""
        return (
            self.cpus_for(task) <= self.cpus_free + _EPS
            and task.gpus <= len(self.gpus_free)
            and task.memory_mb <= self.memory_free
        )

    def acquire(self, rec: TaskRec) -> None:
        """Take the task's resources; GPU indices are the lowest free ones."""
        task = rec.task
        rec.cpus = self.cpus_for(task)
        self.cpus_free -= rec.cpus
        if task.gpus:
            self.gpus_free.sort()
            rec.gpus = tuple(self.gpus_free[: task.gpus])
            del self.gpus_free[: task.gpus]
        self.memory_free -= task.memory_mb

    def release(self, rec: TaskRec) -> None:
        """Give back what :meth:`acquire` took."""
        self.cpus_free = min(self.cpus_total, self.cpus_free + rec.cpus)
        rec.cpus = 0.0
        self.gpus_free.extend(rec.gpus)
        self.memory_free += rec.task.memory_mb


def link(
    tasks: Sequence[Task], completed: Iterable[str] = ()
) -> tuple[list[list[int]], list[int], list[int]]:
    """Dependents and longest remaining path of every task, in plan order.

    Args:
        tasks: the plan's tasks.
        completed: ids that must exist (resume); checked here.

    Returns:
        ``(dependents, rpl, order)``: indices of the tasks waiting on each
        task, the number of tasks on the longest chain starting at each task,
        and a topological order (indices).

    Raises:
        PlanError: a dependency or completed id names no task.
        CycleError: the dependencies form a cycle.
    """
    index = {t.id: i for i, t in enumerate(tasks)}
    dependents: list[list[int]] = [[] for _ in tasks]
    indeg = [0] * len(tasks)
    problems: list[str] = []
    for i, t in enumerate(tasks):
        for dep in t.deps:
            j = index.get(dep)
            if j is None:
                problems.append(f"task {t.id}: dependency {dep!r} is not a task of the plan")
                continue
            dependents[j].append(i)
            indeg[i] += 1
    problems += [f"completed task {c!r} is not in the plan" for c in completed if c not in index]
    if problems:
        raise PlanError(problems)
    # Kahn's order, then longest path to a sink computed backwards over it.
    order: list[int] = []
    queue = deque(i for i, d in enumerate(indeg) if d == 0)
    left = indeg[:]
    while queue:
        i = queue.popleft()
        order.append(i)
        for j in dependents[i]:
            left[j] -= 1
            if left[j] == 0:
                queue.append(j)
    if len(order) != len(tasks):
        stuck = [tasks[i].id for i, d in enumerate(left) if d > 0]
        raise CycleError(f"dependency cycle among: {', '.join(stuck[:10])}")
    rpl = [1] * len(tasks)
    for i in reversed(order):
        for j in dependents[i]:
            if rpl[j] + 1 > rpl[i]:
                rpl[i] = rpl[j] + 1
    return dependents, rpl, order


def start_order(plan: Plan) -> list[str]:
    """Order tasks would start in with unlimited workers finishing in turn.

    Same key as the engine (priority, then longest remaining path, then plan
    order) over one global ready heap; this is what ``tek run --dry-run``
    prints.

    Raises:
        PlanError: a dependency names no task.
        CycleError: the dependencies form a cycle.
    """
    tasks = plan.tasks
    dependents, rpl, _ = link(tasks)
    left = [len(t.deps) for t in tasks]
    heap = [(-t.priority, -rpl[i], i) for i, t in enumerate(tasks) if left[i] == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        i = heapq.heappop(heap)[2]
        out.append(tasks[i].id)
        for j in dependents[i]:
            left[j] -= 1
            if left[j] == 0:
                heapq.heappush(heap, (-tasks[j].priority, -rpl[j], j))
    return out
