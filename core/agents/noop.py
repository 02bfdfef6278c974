"""The ``noop`` agent: does nothing, or sleeps ``command`` seconds.

For tests, demos and benchmarks. A noop task with no delay never leaves the
scheduler loop: :meth:`NoopAgent.run_inline` lets the engine finish it in
place (no anyio task, no log file), which is how the engine reaches tens of
thousands of tasks a second. With a delay it runs as an ordinary attempt.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Agent, AttemptContext, Outcome

if TYPE_CHECKING:
    from core.plan import Task

_OK = Outcome(ok=True)


def _delay(command: str) -> float:
    text = command.strip()
    return float(text) if text else 0.0


class NoopAgent(Agent):
    """Succeeds after ``command`` seconds (0 when empty)."""

    name = "noop"
    needs_command = False

    def validate(self, task: Task, plan_dir: Path) -> list[str]:
        """The command must be empty or a non-negative number of seconds."""
        try:
            delay = _delay(task.command)
        except ValueError:
            return [f"noop takes a number of seconds to sleep ({task.command})"]
        if delay < 0 or delay != delay:
            return [f"noop delay must be a non-negative number ({task.command})"]
        if delay == float("inf"):  # would never end: a hang, not a demo
            return [f"noop delay must be finite ({task.command})"]
        return []

    def run_inline(self, task: Task) -> Outcome | None:
        """The outcome right away when there is nothing to wait for, else None."""
        try:
            return _OK if _delay(task.command) <= 0 else None
        except ValueError:
            return None

    async def run(self, ctx: AttemptContext) -> Outcome:
        """Sleep the task's delay, then succeed."""
        try:
            delay = _delay(ctx.task.command)
        except ValueError:
            return Outcome(ok=False, reason=f"bad noop delay {ctx.task.command!r}")
        if delay > 0:
            await anyio.sleep(delay)
        return _OK
