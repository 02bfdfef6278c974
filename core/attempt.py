"""What one attempt gets and how it ends: :func:`build_context`, :class:`RunAttempts`.

:class:`RunAttempts` is the engine's half that runs one attempt as an anyio
task (agents that do not launch), ends every attempt (its log, reason,
resources and state; launched ones come through :mod:`core.launched`) and
waits out retry delays. :func:`build_context`
fills every field of :class:`~core.agents.base.AttemptContext`: the
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

import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Agent, AttemptContext, Outcome
from core.events import Progress, TaskState
from core.logsink import AttemptLog
from core.paths import run_dir
from core.process import GRACE_S
from core.run_events import RunEvents
from core.run_state import CURRENT_RUN

if TYPE_CHECKING:
    from core.run_state import RunState
    from core.scheduler import TaskRec

_RUNNING = TaskState.RUNNING
_RETRYING = TaskState.RETRYING


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
        memory_mb=task.memory_mb, env=env, cwd=base / Path(task.cwd).expanduser() if task.cwd else base,
        log_path=log.path, log=log, report_progress=report_progress,
        set_pid=set_pid, plan_dir=base,
    )  # fmt: skip


def stop_reason(rec: TaskRec, exit_code: int | None, timed_out: bool) -> str:
    """Why tek ended the attempt (a cancel, its timeout), or "" when it ended by itself."""
    if rec.cancel_reason:
        return rec.cancel_reason
    if timed_out:
        reason = f"timed out after {rec.task.timeout_s:g}s"
        if exit_code == -signal.SIGKILL:  # the grace ran out: SIGTERM did not stop it
            reason += " (killed: it did not stop on SIGTERM)"
        return reason
    return ""


class RunAttempts(RunEvents):
    """How a run starts an awaited attempt, ends any attempt and waits to retry."""

    async def _attempt(self, rec: TaskRec, agent: Agent, ctx: AttemptContext) -> None:
        GRACE_S.set(self.options.grace_s)
        CURRENT_RUN.set(self)
        log = ctx.log
        assert isinstance(log, AttemptLog)
        outcome: Outcome | None = None
        timed_out = False
        timeout = rec.task.timeout_s
        try:
            with anyio.CancelScope() as scope:
                rec.scope = scope
                if rec.cancel_reason:
                    scope.cancel()
                try:
                    if timeout is None:
                        outcome = await agent.run(ctx)
                    else:
                        with anyio.move_on_after(timeout) as tscope:
                            outcome = await agent.run(ctx)
                        timed_out = tscope.cancelled_caught or (
                            tscope.cancel_called and (outcome is None or not outcome.ok)
                        )
                except Exception as exc:  # an agent bug fails its task, not the run
                    outcome = Outcome(ok=False, reason=f"{agent.name} agent error: {exc!r}")
        finally:
            rec.scope = None
            code = outcome.exit_code if outcome is not None else None
            log_error = self.attempt_stopped(log, stop_reason(rec, code, timed_out))
        self.attempt_ended(rec, outcome, timed_out, log_error)

    def attempt_stopped(self, log: AttemptLog, stopped: str = "") -> str:
        """An attempt's work has stopped: close its log, take its last lines.

        Args:
            log: the attempt's log.
            stopped: why tek stopped it (:func:`stop_reason`), written as the
                log's last line, so the log says why it ends where it does.

        Returns:
            Why its log file could not be written, or "".
        """
        self._live -= 1
        if stopped:
            log.write_line(f"[tek] {stopped}")
        log.close()
        self._take_output(log)
        self._logs.pop(log, None)
        return log.error

    def attempt_ended(self, rec: TaskRec, outcome: Outcome | None, timed_out: bool,
                      log_error: str = "") -> None:
        """The common end of an attempt: its reason, resources, state, next steps.

        An attempt whose log could not be written (``log_error``) fails
        with that reason, even when its command succeeded: its output is lost.
        """
        code = outcome.exit_code if outcome is not None else None
        if stopped := stop_reason(rec, code, timed_out):
            outcome = Outcome(ok=False, exit_code=code, reason=stopped)
        elif outcome is None:
            outcome = Outcome(ok=False, reason="cancelled")
        elif log_error and outcome.ok:
            outcome = Outcome(ok=False, exit_code=code, reason=log_error,
                              metrics=outcome.metrics)
        self.resources.release(rec)
        rec.pool.busy -= 1
        rec.pool.finished += 1
        rec.pool.dirty = True
        self.end_attempt(rec, outcome, cancelled=bool(rec.cancel_reason))
        self.poke()

    def _context(self, rec: TaskRec) -> AttemptContext:
        if self._log_dir is None:  # run_dir makes $TEK_HOME each call: once a run
            self._log_dir = run_dir(self.run_id)
            # Made now, though a log file is only made by output: its folder
            # tells readers the attempts without a file printed nothing.
            with contextlib.suppress(OSError):  # the first write reports it
                self._log_dir.mkdir(parents=True, exist_ok=True)
        # core.paths.run_log_path's layout (a task id holds no "/"), without its
        # tek_home() per call: a nested run's folder is <run>/<plan task>.
        path = self._log_dir / f"{rec.task.id}.{rec.attempt}.log"
        log = AttemptLog(path, on_output=self._on_output)
        self._logs[log] = (rec.task.id, rec.attempt)
        return build_context(self, rec, log)

    _log_dir: Path | None = None

    def _schedule_retry(self, rec: TaskRec, delay: float) -> None:
        self._live += 1
        assert self._tg is not None
        self._tg.start_soon(self._backoff, rec, delay)

    async def _backoff(self, rec: TaskRec, delay: float) -> None:
        try:
            with anyio.CancelScope() as scope:
                rec.scope = scope
                await anyio.sleep(delay)
        finally:
            if rec.scope is scope:
                rec.scope = None
            self._live -= 1
        if rec.state is _RETRYING and not self._stopping:
            self.make_ready(rec)
        self.poke()
