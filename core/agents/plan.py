"""The ``plan`` agent: runs another plan file as a nested run.

``command`` is the sub-plan's path, relative to the parent plan's folder. The
attempt builds a :class:`~core.engine.Run` of the sub-plan (run id
``<parent run>/<task>``, so its logs land under the parent run's folder) and
runs it to its end; the task succeeds when every sub-task does.

What the parent shows (DESIGN.md, "Agents"): the sub-run's tasks appear in
the parent's snapshot and event stream as ``<task>/<sub-task>``: first one
:class:`~core.events.TasksAdded` naming them all (so a front end can show
their rows, agents, pools and deps before they change), then their state
changes, output and progress. Their output goes to the task's own log
prefixed with the sub-task id (``[c1] ...``), and each sub-task that does not
succeed adds a line saying how it ended (``[tek] c2 failed: exit code 1``,
``[tek] c3 skipped: upstream c2 failed``), so the plan task's log alone tells
which sub-task failed; its reason names them too (``sub-plan failed: c2
(exit code 1); 1 succeeded, 1 failed, 1 skipped``). Each sub-task also keeps
its own log in the sub-run's folder (``runs/<run>/<task>/<sub-task>.<n>.log``).
The task reports ``done``/``total``/``failed`` progress over its own
sub-tasks (a sub-plan's sub-plans' tasks are not counted twice).
Decisions: the sub-run takes the parent's ``-j``, capacities and
``--fail-fast``, pauses and resumes with it, and takes task controls for
``<task>/<sub-task>``; its capacities are its own (a plan task holds its own
``cpus`` etc. in the parent only);
sub-tasks are not journaled one by one (the plan task is), so a resumed
parent reruns a failed sub-plan whole. Validation reads the sub-plan (every
problem is reported at import time) and refuses a plan that includes itself.
"""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Agent, AttemptContext, Outcome
from core.errors import PlanError
from core.events import (
    Event,
    OutputDropped,
    OutputLines,
    Progress,
    TaskChanged,
    TaskInfo,
    TasksAdded,
    TaskState,
)

if TYPE_CHECKING:
    from core.plan import Plan, Task
    from core.run_options import RunSummary

_FORWARDED = (TasksAdded, TaskChanged, OutputLines, OutputDropped, Progress)
#: Sub-tasks named in a failed sub-plan's reason (then "and N more").
_NAMED = 3
#: Sub-plan files being validated on this path of nesting (cycle guard).
_VALIDATING: ContextVar[frozenset[Path]] = ContextVar("tek_plan_stack", default=frozenset())


def _sub_plan_path(task: Task, plan_dir: Path) -> Path:
    return (plan_dir / task.command.strip()).resolve()


class PlanAgent(Agent):
    """Runs the sub-plan named by ``command`` as a nested run."""

    name = "plan"

    def validate(self, task: Task, plan_dir: Path) -> list[str]:
        """The sub-plan must exist, be valid, and not include itself."""
        if not task.command.strip():
            return ["plan task needs the path of a sub-plan"]
        path = _sub_plan_path(task, plan_dir)
        stack = _VALIDATING.get()
        if path in stack:
            return [f"sub-plan {task.command} includes itself"]
        if not path.is_file():
            return [f"sub-plan {task.command} not found ({path})"]
        token = _VALIDATING.set(stack | {path})
        try:
            _read(path)
        except PlanError as exc:
            return [f"sub-plan {task.command}: {p}" for p in exc.problems]
        finally:
            _VALIDATING.reset(token)
        return []

    async def run(self, ctx: AttemptContext) -> Outcome:
        """Run the sub-plan to its end; cancelling this cancels the sub-run."""
        from core.engine import RunOptions, create_run
        from core.process import GRACE_S
        from core.run_state import CURRENT_RUN

        task = ctx.task
        parent = CURRENT_RUN.get()
        # The sub-run follows the parent's -j, --cpus and --fail-fast (its
        # capacities are not shared with the parent's other tasks).
        up = parent.options if parent is not None else RunOptions()
        options = RunOptions(jobs=up.jobs, cpus=up.cpus, gpus=up.gpus, memory_mb=up.memory_mb,
                             fail_fast=up.fail_fast, memory_floor_mb=up.memory_floor_mb,
                             grace_s=GRACE_S.get())
        try:
            plan = _read(_sub_plan_path(task, ctx.plan_dir))
            child = create_run(plan, options, run_id=f"{ctx.run_id}/{task.id}")
        except PlanError as exc:
            ctx.log.write_lines([f"[tek] {p}" for p in exc.problems])
            if parent is not None:  # no sub-task will follow (see TasksAdded)
                parent.forward(TasksAdded(task.id, ctx.attempt))
            return Outcome(ok=False, reason=f"sub-plan {task.command} is invalid")
        # Subscribed before the sub-run starts: none of its events is missed.
        events = child.client().events()
        if parent is not None:
            parent.adopt(task.id, child)
            parent.forward(TasksAdded(task.id, ctx.attempt,
                                      _prefixed(child.snapshot().tasks, task.id)))
        total = len(plan)
        ended: dict[str, bool] = {}

        async def relay() -> None:
            # Shielded: when this task is cancelled, the child run still
            # stops its tasks and publishes their final states; the stream
            # ends when it has, and those states must reach the parent.
            with anyio.CancelScope(shield=True):
                await _relay_all()

        async def _relay_all() -> None:
            async for ev in events:
                if not isinstance(ev, _FORWARDED):
                    continue
                if isinstance(ev, OutputLines):
                    ctx.log.write_lines([f"[{ev.task_id}] {line}" for line in ev.lines])
                elif isinstance(ev, TaskChanged):
                    if ev.state is _RETRYING or (ev.state.is_terminal and ev.state is not _OK):
                        ctx.log.write_line(_end_line(ev))
                    if ev.state.is_terminal and "/" not in ev.task_id:  # its own sub-tasks
                        ended[ev.task_id] = ev.state is _OK
                        ctx.report_progress(done=len(ended), total=total,
                                            failed=sum(1 for ok in ended.values() if not ok),
                                            fraction=len(ended) / max(total, 1))
                if parent is not None:
                    parent.forward(_rekey(ev, task.id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(relay)
            summary = await child.run()
        if summary.status.value == "succeeded":
            return Outcome(ok=True, metrics={"tasks": float(total)})
        return Outcome(ok=False, reason=_failed_reason(summary))


_OK, _RETRYING = TaskState.SUCCEEDED, TaskState.RETRYING


def _end_line(ev: TaskChanged) -> str:
    """The plan task's log line for a sub-task that did not succeed (or will retry)."""
    why = ev.reason or (f"exit code {ev.exit_code}" if ev.exit_code is not None else "")
    state = f"attempt {ev.attempt} failed, retrying" if ev.state is _RETRYING else ev.state.value
    return f"[tek] {ev.task_id} {state}: {why}".rstrip(": ")


def _failed_reason(summary: RunSummary) -> str:
    """``sub-plan failed: c2 (exit code 1); 1 succeeded, 1 failed, 1 skipped``.

    Names the sub-tasks that failed, else those cancelled (skipped ones
    follow from them), at most :data:`_NAMED`.
    """
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n)
    culprits = [(tid, r) for tid, r in summary.tasks.items() if r.state is TaskState.FAILED]
    culprits = culprits or [(tid, r) for tid, r in summary.tasks.items()
                            if r.state is TaskState.CANCELLED]
    names = []
    for tid, r in culprits[:_NAMED]:
        why = r.reason or r.state.value
        if r.state is TaskState.CANCELLED and "cancel" not in why:
            why = f"cancelled: {why}"
        names.append(f"{tid} ({why})")
    if len(culprits) > _NAMED:
        names.append(f"and {len(culprits) - _NAMED} more")
    named = ", ".join(names)
    return f"sub-plan {summary.status.value}: " + (f"{named}; {counts}" if named else counts)


def _prefixed(tasks: tuple[TaskInfo, ...], prefix: str) -> tuple[TaskInfo, ...]:
    """Tasks of a sub-run as the parent names them (``prefix/<id>``, deps too)."""
    return tuple(dataclasses.replace(t, id=f"{prefix}/{t.id}",
                                     deps=tuple(f"{prefix}/{d}" for d in t.deps))
                 for t in tasks)


_Keyed = TasksAdded | TaskChanged | OutputLines | OutputDropped | Progress


def _rekey(ev: _Keyed, prefix: str) -> Event:
    if isinstance(ev, TasksAdded):  # a sub-plan of the sub-plan started
        return TasksAdded(f"{prefix}/{ev.task_id}", ev.attempt, _prefixed(ev.tasks, prefix))
    return dataclasses.replace(ev, task_id=f"{prefix}/{ev.task_id}")


def _read(path: Path) -> Plan:
    from core.plan_io import read_plan

    return read_plan(path)
