"""The run controls: what each protocol control does to a :class:`~core.engine.Run`.

Every control applies at once, synchronously, inside the event loop (the
engine's state is only ever touched there), and raises
:class:`~core.errors.ControlError` with one readable line when it names an
unknown task or pool or does not apply to the task's state. The scheduler is
poked afterwards by ``Run.control``.

- ``CancelTask``: a running task's attempt is cancelled (its process group
  stopped) and ends ``cancelled``; a waiting one ends ``cancelled`` now. Its
  downstream is skipped.
- ``RetryTask``: a ``failed`` or ``cancelled`` task gets a fresh retry budget
  and runs again once its deps are done; downstream tasks skipped because of
  it come back to ``pending`` (in topological order, so a task with two
  re-enabled parents comes back too).
- ``SkipTask``: a task that has not run ends ``skipped``; its downstream runs
  as if it had succeeded, once the skipped task's own upstream is done (so
  skipping a middle step never lets a later one start before the earlier
  ones; if that upstream fails, the downstream is skipped as it would be).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

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
    TaskChanged,
    TaskState,
)
from core.resume import SKIPPED_BY_USER

if TYPE_CHECKING:
    from core.engine import Run
    from core.scheduler import TaskRec

_BLOCKING = (TaskState.FAILED, TaskState.CANCELLED)


def apply_control(run: Run, command: Control) -> None:
    """Apply ``command`` to ``run``.

    Raises:
        ControlError: unknown task or pool, or the control does not apply now.
    """
    if run.status.is_finished:
        raise ControlError(f"run {run.run_id} has finished ({run.status.value})")
    if isinstance(command, Start):
        if run.status is not RunStatus.PENDING:
            raise ControlError(f"run {run.run_id} has already started")
        run.request_start()
    elif isinstance(command, Pause | Resume):
        if run.status is RunStatus.CANCELLING:
            raise ControlError(f"run {run.run_id} is being cancelled")
        run.set_user_paused(isinstance(command, Pause))
    elif isinstance(command, CancelRun):
        if run.open_tasks == 0 and run.options.stay_open and run.status is not RunStatus.PENDING:
            run.request_close()  # every task ended already: the run just closes
        else:
            run.mark_cancelled()
            run.stop("run cancelled")
    elif isinstance(command, ResizePool):
        pool = run.pools.get(command.pool)
        if pool is None:
            raise ControlError(
                f"unknown pool {command.pool!r} (pools: {', '.join(run.pools)})"
            )
        if command.size < 0:
            raise ControlError(f"pool size must be 0 or more, not {command.size}")
        pool.size = command.size
        pool.dirty = True
        run.mark_pools_due()
    elif isinstance(command, CancelTask | RetryTask | SkipTask):
        nested = run.nested_for(command.task_id)
        if nested is not None:  # `sp/build`: a task of the sub-plan task `sp`
            child, task_id = nested
            apply_control(child, dataclasses.replace(command, task_id=task_id))
            child.poke()
        elif isinstance(command, CancelTask):
            _cancel(run, _rec(run, command.task_id))
        elif isinstance(command, RetryTask):
            _retry(run, _rec(run, command.task_id))
        else:
            _skip(run, _rec(run, command.task_id))
    else:
        raise ControlError(f"unknown control {type(command).__name__}")


def _rec(run: Run, task_id: str) -> TaskRec:
    rec = run.task_rec(task_id)
    if rec is None:
        raise ControlError(f"unknown task {task_id!r}")
    return rec


def _cancel(run: Run, rec: TaskRec) -> None:
    if rec.state.is_terminal:
        raise ControlError(f"task {rec.task.id} {_where(rec.state)} already")
    if rec.state is TaskState.RUNNING:
        rec.cancel_reason = "cancelled by user"
        if rec.scope is not None:
            rec.scope.cancel()
        return
    run.end_now(rec, TaskState.CANCELLED, "cancelled by user")
    run.skip_downstream(rec, f"upstream {rec.task.id} cancelled")


def _skip(run: Run, rec: TaskRec) -> None:
    if rec.state is TaskState.RUNNING:
        raise ControlError(f"task {rec.task.id} is running; cancel it instead")
    if rec.state.is_terminal:
        raise ControlError(f"task {rec.task.id} {_where(rec.state)} already")
    held = rec.state is TaskState.PENDING and rec.waiting > 0
    run.end_now(rec, TaskState.SKIPPED, SKIPPED_BY_USER)
    if held:  # its downstream still waits for its upstream (RunState.release)
        rec.held = True
    else:
        run.release(rec)


_WHERE = {
    TaskState.PENDING: "is waiting for its upstream", TaskState.READY: "is ready to start",
    TaskState.RUNNING: "is running", TaskState.RETRYING: "is waiting to retry",
    TaskState.SUCCEEDED: "has succeeded", TaskState.FAILED: "has failed",
    TaskState.CANCELLED: "was cancelled", TaskState.SKIPPED: "was skipped",
}


def _where(state: TaskState) -> str:
    """Where a task is, in words: ``"has succeeded"``, ``"is running"``."""
    return _WHERE[state]


def _satisfied(rec: TaskRec) -> bool:
    return rec.state is TaskState.SUCCEEDED or (
        rec.state is TaskState.SKIPPED and not rec.upstream_skip and not rec.held
    )


def _blocked(rec: TaskRec) -> bool:
    if rec.state in _BLOCKING or (rec.state is TaskState.SKIPPED and rec.upstream_skip):
        return True
    # a skip still waiting on its upstream passes on what blocks that upstream
    return rec.held and any(_blocked(p) for p in rec.deps)


def _retry(run: Run, rec: TaskRec) -> None:
    if rec.state not in _BLOCKING:
        raise ControlError(
            f"task {rec.task.id} {_where(rec.state)}; only a failed or cancelled task is retried"
        )
    if run.stopping:
        raise ControlError(f"run {run.run_id} is stopping; nothing is retried")
    # Collect the skipped-because-upstream closure first, then revive it in
    # topological order so each task sees its parents' new states.
    closure: dict[int, TaskRec] = {}
    stack = list(rec.dependents)
    while stack:
        d = stack.pop()
        if d.state is TaskState.SKIPPED and d.upstream_skip and id(d) not in closure:
            closure[id(d)] = d
            stack.extend(d.dependents)
        elif d.held:  # a skip that still waits on this retry: its downstream may revive
            stack.extend(d.dependents)
    _revive(run, rec)
    rec.attempts_in_run = 0
    for d in sorted(closure.values(), key=_topo):
        if not any(_blocked(p) for p in d.deps):
            _revive(run, d)


def _topo(rec: TaskRec) -> int:
    return rec.topo


def _revive(run: Run, rec: TaskRec) -> None:
    rec.upstream_skip = False
    rec.reason = ""
    rec.exit_code = None  # the last attempt's: a skip before the next one must not show it
    rec.finished_ts = None
    rec.waiting = sum(1 for p in rec.deps if not _satisfied(p))
    run.reopen(rec)
    # PENDING first, even for a task ready at once: the journal leaves READY
    # out, and would go on showing the task as failed or cancelled.
    rec.state = TaskState.PENDING
    run.emit(TaskChanged(rec.task.id, TaskState.PENDING, rec.attempt, run.now()))
    if rec.waiting == 0:
        run.make_ready(rec)
