"""What an agent gets for one attempt: :func:`build_context`.

Fills every field of :class:`~core.agents.base.AttemptContext`: the
environment (``os.environ`` as it was when the run was built, the task's
``env`` column, ``TEK_RUN_ID``, ``TEK_TASK_ID``, ``TEK_ATTEMPT`` and, for a
task holding GPUs, ``CUDA_VISIBLE_DEVICES`` with its devices, taken from
tek's own ``CUDA_VISIBLE_DEVICES`` when that is set: :func:`gpu_ids`), the
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


def gpu_ids(inherited: str | None, indices: tuple[int, ...]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a task holding GPU ``indices``.

    When tek itself was started with ``CUDA_VISIBLE_DEVICES`` (a batch
    scheduler such as SLURM gives a job its GPUs that way), index ``i`` is
    the ``i``-th device of that list, not physical device ``i``, which may
    belong to another job. An index past the list's end is passed as is.

    Args:
        inherited: tek's own ``CUDA_VISIBLE_DEVICES``, if set.
        indices: the task's device indices, from 0.

    Returns:
        The comma-separated device list for the task.
    """
    if inherited is None:
        return ",".join(map(str, indices))
    visible = [v.strip() for v in inherited.split(",")]
    return ",".join(visible[i] if i < len(visible) and visible[i] else str(i) for i in indices)


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
        env["CUDA_VISIBLE_DEVICES"] = gpu_ids(run.base_env.get("CUDA_VISIBLE_DEVICES"), rec.gpus)

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
