"""What an agent gets for one attempt: :func:`build_context`.

Fills every field of :class:`~core.agents.base.AttemptContext`: the
environment (``os.environ`` as it was when the run was built, the task's
``env`` column, ``TEK_RUN_ID``, ``TEK_TASK_ID``, ``TEK_ATTEMPT`` and, for a
task holding GPUs, ``CUDA_VISIBLE_DEVICES`` with its device indices), the
working directory (``cwd`` relative to the plan's folder), and the two
callbacks. ``report_progress`` and ``set_pid`` must be called from the
event loop's thread; a call from an attempt that has already ended is
ignored, so a late report can never touch the next attempt. The pid event
goes out after the next tick (``TICK_S``), if the attempt is still running
then (:meth:`~core.run_state.RunState.note_pid`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.agents.base import AttemptContext
from core.events import Progress, TaskState

if TYPE_CHECKING:
    from core.logsink import AttemptLog
    from core.run_state import RunState
    from core.scheduler import TaskRec

_RUNNING = TaskState.RUNNING


def build_context(run: RunState, rec: TaskRec, log: AttemptLog) -> AttemptContext:
    """The context of ``rec``'s current attempt in ``run``.

    Args:
        run: the run (its events get the attempt's progress and pid).
        rec: the task's record, already RUNNING with its resources granted.
        log: the attempt's log writer; its path becomes ``log_path``.

    Returns:
        The context to hand to the agent.
    """
    task = rec.task
    attempt = rec.attempt
    env = run.base_env.copy()
    env.update(task.env)
    env["TEK_RUN_ID"] = run.run_id
    env["TEK_TASK_ID"] = task.id
    env["TEK_ATTEMPT"] = str(attempt)
    if rec.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, rec.gpus))

    def report_progress(fraction: float | None = None, **values: float | int | str) -> None:
        if rec.attempt != attempt or rec.state is not _RUNNING:
            return
        rec.progress.update(values)
        if fraction is not None:
            rec.fraction = fraction
        run.emit(Progress(task.id, attempt, time.time(), dict(values), fraction))
        run.poke()

    def set_pid(pid: int) -> None:
        if rec.attempt != attempt or rec.state is not _RUNNING:
            return
        rec.pid = pid
        run.note_pid(rec)

    base = run.base_dir
    return AttemptContext(
        task=task, attempt=attempt, run_id=run.run_id, cpus=rec.cpus, gpus=rec.gpus,
        memory_mb=task.memory_mb, env=env, cwd=(base / task.cwd) if task.cwd else base,
        log_path=log.path, log=log, report_progress=report_progress,
        set_pid=set_pid, plan_dir=base,
    )  # fmt: skip
