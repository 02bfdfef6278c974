"""Attempts that run as event-loop callbacks: :class:`LaunchedAttempt`.

The engine runs an attempt of an agent with ``launches = True`` (the shell
agent) through :meth:`~core.agents.base.Agent.launch` instead of an anyio
task: no task, coroutine or cancel scope per attempt, which is most of what a
short shell task cost the engine. This module gives such an attempt what the
task path gets from anyio:

- cancellation: ``rec.scope`` is the :class:`LaunchedAttempt`, whose
  ``cancel()`` (a control, ``stop``) cancels the agent's attempt;
- the timeout: a loop timer that cancels it and marks it timed out (an
  attempt that succeeded anyway keeps its success);
- the task group's guarantee that nothing outlives the run: every launched
  attempt is in ``run.launched``, and :func:`stop_launched` (called when the
  run's task group is being torn down) cancels them all and waits until each
  has stopped its processes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Outcome
from core.attempt import stop_reason

if TYPE_CHECKING:
    from core.agents.base import Agent, AttemptContext, Launched
    from core.engine import Run
    from core.logsink import AttemptLog
    from core.scheduler import TaskRec

#: Seconds past the grace period that run teardown waits for stopped attempts.
TEARDOWN_SLACK_S = 10.0


class LaunchedAttempt:
    """One callback-driven attempt, as the engine tracks it."""

    __slots__ = ("run", "rec", "log", "handle", "timer", "timed_out", "ended")

    def __init__(self, run: Run, rec: TaskRec, agent: Agent, ctx: AttemptContext) -> None:
        self.run = run
        self.rec = rec
        self.log: AttemptLog = ctx.log  # type: ignore[assignment]
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        self.ended = False
        self.handle: Launched | None = None
        run.launched.add(self)
        rec.scope = self
        handle = agent.launch(ctx, self.done, run.options.grace_s)
        if handle is None:
            raise RuntimeError(f"agent {agent.name} has launches=True but launch() gave None")
        if self.ended:  # done() came before launch() returned
            return
        self.handle = handle
        if rec.cancel_reason:
            handle.cancel()
        timeout = rec.task.timeout_s
        if timeout is not None:
            self.timer = asyncio.get_running_loop().call_later(timeout, self.time_out)

    def cancel(self) -> None:
        """Cancel the attempt (its ``done`` follows once it has stopped)."""
        if self.handle is not None and not self.ended:
            self.handle.cancel()

    def time_out(self) -> None:
        """The task's ``timeout_s`` passed."""
        self.timer = None
        self.timed_out = True
        self.cancel()

    def done(self, outcome: Outcome) -> None:
        """The agent's end of the attempt: hand it to the engine."""
        if self.ended:
            return
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        run, rec = self.run, self.rec
        run.launched.discard(self)
        if rec.scope is self:
            rec.scope = None
        timed_out = self.timed_out and not outcome.ok
        log_error = run.attempt_stopped(self.log, stop_reason(rec, outcome.exit_code, timed_out))
        run.attempt_ended(rec, outcome, timed_out, log_error)
        if not run.launched and run.launched_idle is not None:
            run.launched_idle.set()


async def stop_launched(run: Run) -> None:
    """Cancel every launched attempt and wait until all have ended (shielded).

    Called while the run's task group is torn down (normally there are none
    left: the run ends only when every attempt has).
    """
    if not run.launched:
        return
    with anyio.CancelScope(shield=True):
        run.launched_idle = anyio.Event()
        for attempt in list(run.launched):
            # Stopped by the run's end, not by what they did: CANCELLED like
            # the awaited attempts (no retry), not FAILED "killed by SIGTERM".
            if not attempt.rec.cancel_reason:
                attempt.rec.cancel_reason = "run interrupted"
            attempt.cancel()
        with anyio.move_on_after(run.options.grace_s + TEARDOWN_SLACK_S):
            await run.launched_idle.wait()
        for attempt in list(run.launched):  # an agent that never called done()
            attempt.done(Outcome(ok=False, reason="did not stop when the run ended"))
