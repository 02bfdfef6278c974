"""The ``ml`` agent: PyTorch training, evaluation, inference and conversion.

Commands are ``OP key=value ...`` lines (``core.ml.ops`` documents every op
and key); they are checked at plan import by :meth:`MlAgent.validate`
without importing torch. An attempt runs in a warm worker process
(``core.ml.pool``): torch never runs in the engine's process. Worker log
lines go to the attempt's log, progress messages (epoch, step, loss,
validation metrics, samples/s) to ``ctx.report_progress``, and the op's
final metrics to ``Outcome.metrics`` (the journal keeps them).

Failure modes: an op error (bad data file, unknown model, ``device=cuda``
without CUDA) fails the attempt with the op's message and keeps the worker;
a worker that dies fails the attempt with how it died and is replaced by the
next task; cancellation and timeout kill the worker's process group, then
re-raise. The pool default of ``ml`` tasks is ``ml`` (the agent's name).

The agent adds ``TEK_RUN_DIR`` (``$TEK_HOME/runs/<run id>``) to the
environment that ``$VAR`` in op paths expands from, so plans can write
artifacts next to the run's logs instead of into the source tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.agents.base import Agent, AttemptContext, Outcome
from core.ml.ops import CommandError, parse_command, validate_command
from core.ml.pool import WorkerDiedError, WorkerPool
from core.paths import run_dir

if TYPE_CHECKING:
    from core.plan import Task


class MlAgent(Agent):
    """Runs ``ml`` op lines in warm worker processes."""

    name = "ml"

    def __init__(self, pool: WorkerPool | None = None) -> None:
        self._pool = pool

    @property
    def pool(self) -> WorkerPool:
        """The worker pool (created on first use, so import stays cheap)."""
        if self._pool is None:
            self._pool = WorkerPool()
        return self._pool

    def validate(self, task: Task, plan_dir: Path) -> list[str]:
        """Check the op line: op, keys, values, required keys (no torch)."""
        return validate_command(task.command)

    async def run(self, ctx: AttemptContext) -> Outcome:
        """Run the op in a worker; on cancellation kill the worker and re-raise."""
        try:
            command = parse_command(ctx.task.command)
        except CommandError as exc:
            return Outcome(ok=False, reason="; ".join(exc.problems))
        env = dict(ctx.env)
        env.setdefault("TEK_RUN_DIR", str(run_dir(ctx.run_id)))
        request = {
            "op": command.op,
            "args": command.args,
            "run_id": ctx.run_id,
            "task_id": ctx.task.id,
            "cpus": ctx.cpus,
            "gpus": list(ctx.gpus),
            "cwd": str(ctx.cwd),
            "env": env,
        }
        try:
            worker = self.pool.acquire()
        except OSError as exc:
            return Outcome(ok=False, reason=f"could not start an ML worker: {exc}")
        ctx.set_pid(worker.pid)
        if not worker.ready:
            ctx.log.write_line(f"starting ML worker (pid {worker.pid})")

        def on_message(message: dict[str, Any]) -> None:
            kind = message.get("type")
            if kind == "log":
                ctx.log.write_line(str(message.get("line", "")))
            elif kind == "progress":
                ctx.report_progress(**message.get("values", {}), fraction=message.get("fraction"))

        healthy = False
        try:
            done = await worker.request(request, on_message)
            healthy = True
        except WorkerDiedError as exc:
            self.pool.stats.died += 1
            ctx.log.write_lines([*exc.details, str(exc)])
            return Outcome(ok=False, exit_code=exc.exit_code, reason=str(exc))
        finally:
            # Cancelled, timed out or died: the worker is killed, never reused.
            if not healthy:
                self.pool.stats.killed += 1
            self.pool.release(worker, healthy)
        metrics = {k: float(v) for k, v in (done.get("metrics") or {}).items() if _number(v)}
        if done.get("ok"):
            return Outcome(ok=True, exit_code=0, metrics=metrics)
        reason = str(done.get("reason") or "ML op failed")
        ctx.log.write_line(f"error: {reason}")
        return Outcome(ok=False, exit_code=1, reason=reason)

    async def aclose(self) -> None:
        """Kill the warm workers."""
        if self._pool is not None:
            self._pool.close()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
