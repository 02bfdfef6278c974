"""The ``shell`` agent: ``/bin/sh -c command`` in its own process group.

The work is done by :class:`~core.agents.shell_attempt.ShellAttempt`, a
callback state machine on the event loop. The engine starts it through
:meth:`ShellAgent.launch` (no task or cancel scope per attempt: the shell
fast path); :meth:`ShellAgent.run` wraps the same machine in a coroutine for
callers that await an agent. Output handling, draining and stopping are
described in :mod:`core.agents.shell_attempt`.

Departure from a backend-neutral anyio agent: the shell agent needs anyio's
asyncio backend (it uses the loop's reader callbacks), which is what every
tek command runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Agent, AttemptContext, Outcome
from core.agents.lines import MAX_LINE_BYTES
from core.agents.shell_attempt import DRAIN_S, POLL_S, ShellAttempt, describe_exit
from core.process import GRACE_S

if TYPE_CHECKING:
    from core.plan import Task

__all__ = ["DRAIN_S", "MAX_LINE_BYTES", "POLL_S", "ShellAgent", "describe_exit"]


class ShellAgent(Agent):
    """Runs the task's command with ``/bin/sh -c``."""

    name = "shell"
    launches = True

    def validate(self, task: Task, plan_dir: Path) -> list[str]:
        """A shell task needs a non-blank command."""
        return [] if task.command.strip() else ["shell task needs a command"]

    def launch(
        self, ctx: AttemptContext, done: Callable[[Outcome], None], grace_s: float
    ) -> ShellAttempt:
        """Start the attempt on the running loop; ``done`` gets its outcome."""
        return ShellAttempt(ctx, done, grace_s).start()

    async def run(self, ctx: AttemptContext) -> Outcome:
        """Run the command to its end; on cancellation stop the whole group."""
        finished = anyio.Event()
        result: list[Outcome] = []

        def done(outcome: Outcome) -> None:
            result.append(outcome)
            finished.set()

        attempt = self.launch(ctx, done, GRACE_S.get())
        try:
            await finished.wait()
        except BaseException:
            attempt.cancel()
            with anyio.CancelScope(shield=True):
                await finished.wait()
            raise
        return result[0]
