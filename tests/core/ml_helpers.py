"""Helpers for the ML tests: a hand-made AttemptContext and a module-wide agent.

The agent's warm workers outlive one test (and its event loop), which is what
they are built for; each request carries the test's own ``$TEK_HOME``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from core.agents.base import AttemptContext, LogSink, Outcome
from core.agents.ml import MlAgent
from core.plan import Task


class ListSink(LogSink):
    """Keeps every line written."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


@dataclass
class Attempt:
    """What one attempt reported besides its outcome."""

    ctx: AttemptContext
    progress: list[dict[str, Any]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        sink = self.ctx.log
        assert isinstance(sink, ListSink)
        return sink.lines


def make_attempt(
    command: str,
    cwd: Path,
    task_id: str = "t1",
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    gpus: tuple[int, ...] = (),
    run_id: str = "run-test",
    attempt: int = 1,
) -> Attempt:
    """An attempt context for an ``ml`` task, recording progress and pids.

    Its environment carries ``TEK_RUN_ID``/``TEK_TASK_ID``/``TEK_ATTEMPT``
    as the engine's does.
    """
    holder: list[Attempt] = []

    def report(**values: Any) -> None:
        holder[0].progress.append(values)
        if on_progress is not None:
            on_progress(values)

    ctx = AttemptContext(
        task=Task(id=task_id, agent="ml", command=command),
        attempt=attempt,
        run_id=run_id,
        cpus=1.0,
        gpus=gpus,
        memory_mb=0,
        env={
            **os.environ,
            "TEK_RUN_ID": run_id,
            "TEK_TASK_ID": task_id,
            "TEK_ATTEMPT": str(attempt),
        },
        cwd=cwd,
        log_path=cwd / f"{task_id}.log",
        log=ListSink(),
        report_progress=report,
        set_pid=lambda pid: holder[0].pids.append(pid),
        plan_dir=cwd,
    )
    holder.append(Attempt(ctx))
    return holder[0]


async def run_op(
    agent: MlAgent, command: str, cwd: Path, limit_s: float = 60, **kw: Any
) -> tuple[Outcome, Attempt]:
    """Run one ``ml`` command to its end, bounded by ``limit_s`` seconds."""
    attempt = make_attempt(command, cwd, **kw)
    with anyio.fail_after(limit_s):
        outcome = await agent.run(attempt.ctx)
    return outcome, attempt


def pid_gone(pid: int) -> bool:
    """True when no process has this id (it was killed and reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def process_dead(pid: int) -> bool:
    """True when ``pid`` is gone or a zombie (dead, but not yet reaped by its new parent).

    A process whose parent died is reaped by init or a subreaper, whenever
    that gets to it; until then it is a zombie that no longer runs.
    """
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
