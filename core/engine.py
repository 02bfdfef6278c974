"""The run: executes a plan inside one anyio task group.

:func:`create_run` checks a plan and builds a :class:`Run`; ``await
run.run()`` executes it and returns a :class:`RunSummary`. Front ends use
``run.client()`` (the run protocol) and nothing else.

How it goes fast and stays correct:

- One scheduler loop owns every state change. A turn dispatches what it can,
  then flushes the turn's events as one batch, recorded (durable) before it
  is published, by a writer pipelined with the scheduler
  (:mod:`core.run_events`); subscribers never block (:mod:`core.broadcast`).
- A noop with no delay finishes inline in the loop
  (:meth:`NoopAgent.run_inline`), so plain dispatch costs a few microseconds
  a task. At most ``INLINE_BUDGET`` inline tasks run per turn, so events flow
  and controls apply even in a 1M-task run.
- A shell attempt runs as event-loop callbacks (:meth:`Agent.launch`,
  :mod:`core.launched`): no task or cancel scope per attempt. Other attempts
  that wait on something run as one anyio task each in the run's task group,
  with their timeout and cancellation as anyio cancel scopes around
  ``agent.run`` (:class:`core.attempt.RunAttempts`, which also ends every
  attempt and waits out retry delays). Either way, agents stop their process groups when cancelled,
  and nothing outlives the task group.

Decisions beyond DESIGN.md: a task cancelled by a user makes the run end
``failed`` (exit 1), like a failed task; retry delays are ``retry_backoff_s *
2**(n-1)`` times a jitter factor in [0.8, 1.2], capped at ``MAX_BACKOFF_S``;
``RunOptions.stay_open`` (added, default False) keeps a finished run open for
Retry controls until ``CancelRun`` (the console's use).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from core.agents.base import Agent
from core.agents.registry import get_agent, known_agents
from core.attempt import RunAttempts
from core.broadcast import InProcessClient
from core.errors import PlanError
from core.events import (
    Control,
    RunStarted,
    RunStatus,
    TaskChanged,
    TaskState,
)
from core.launched import LaunchedAttempt, stop_launched
from core.run_options import RunOptions, RunSummary, TaskResult, new_run_id, unused_run_id
from core.scheduler import Pool, TaskRec
from core.sysmem import available_mb, total_mb

if TYPE_CHECKING:
    from core.client import RunClient
    from core.plan import Plan
    from core.recorder import Recorder

__all__ = ["Run", "RunOptions", "RunSummary", "TaskResult", "create_run", "new_run_id"]

#: Inline (no-wait) tasks finished per scheduler turn before events are flushed.
INLINE_BUDGET = 4096
#: Tasks skipped over per pool and turn when the best ones do not fit resources.
SKIP_AHEAD = 32
#: Seconds between pool/memory samples (PoolChanged is sent at most this often).
TICK_S = 0.25
_MIB = 1 << 20
_RUNNING, _READY, _PENDING, _RETRYING = (
    TaskState.RUNNING, TaskState.READY, TaskState.PENDING, TaskState.RETRYING)


def available_memory_mb() -> int:
    """Available system memory in MiB (tests monkeypatch this)."""
    return available_mb()


def total_memory_mb() -> int:
    """Total system memory in MiB (tests monkeypatch this)."""
    return total_mb()


def create_run(
    plan: Plan,
    options: RunOptions | None = None,
    *,
    run_id: str | None = None,
    recorder: Recorder | None = None,
    completed: Collection[str] = (),
    attempts_so_far: Mapping[str, int] | None = None,
    skipped: Collection[str] = (),
) -> Run:
    """Check a plan against the agents and options, and build its run.

    Args:
        plan: the validated plan.
        options: capacities, pool sizes and policies.
        run_id: the run's id; default a new one with no log folder yet (:func:`unused_run_id`).
        recorder: awaited with every batch of events before it is published.
        completed: ids already succeeded (resume): not run, start SUCCEEDED.
        attempts_so_far: attempt numbering continues after these (resume).
        skipped: ids the user skipped before (resume): not run, start SKIPPED,
            their downstream runs as if they had succeeded.

    Returns:
        The run, not started.

    Raises:
        PlanError: unknown agent, dependency or completed id, a cycle, a
            ``pool_sizes`` entry naming no pool or giving a negative size, or
            a memory floor no less than the machine's total memory.
    """
    options = options or RunOptions()
    agents: dict[str, Agent] = {}
    problems: list[str] = []
    for name in dict.fromkeys(t.agent for t in plan.tasks):
        agent = get_agent(name)
        if agent is None:
            problems.append(f"unknown agent {name!r} (known: {', '.join(known_agents())})")
        else:
            agents[name] = agent
    pools = dict.fromkeys(t.pool_name for t in plan.tasks)
    for name, size in options.pool_sizes.items():
        if name not in pools:
            problems.append(f"--pool {name}: no task uses this pool (pools: {', '.join(pools)})")
        elif size < 0:
            problems.append(f"--pool {name}={size}: size must be 0 or more")
    floor = options.memory_floor_mb
    if floor > 0 and floor >= (total := total_memory_mb()):
        problems.append(f"--memory-floor-mb {floor}: not below this machine's total memory "
                        f"({total} MiB), so no task could ever start")
    if problems:
        raise PlanError(problems)
    # Building 100k records with the collector on costs 3x: it rescans them
    # all, repeatedly, while they are being made (none are garbage).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return Run(plan, options, agents, run_id or unused_run_id(), recorder, completed,
                   attempts_so_far or {}, skipped)
    finally:
        if enabled:
            gc.enable()


#: Sorts after every real task key (see :func:`_head_key`).
_NO_KEY = (1 << 62, 0, 0)


def _head_key(pool: Pool) -> tuple[int, int, int]:
    """The key of the best ready task waiting in ``pool``."""
    rec = pool.peek()
    return _NO_KEY if rec is None else rec.key


class Run(RunAttempts):
    """One execution of a plan. Build with :func:`create_run`."""

    #: True while some pool's ``waiting_for`` is set (see :meth:`_note_waiting`).
    _pools_waiting = False

    def client(self) -> RunClient:
        """The in-process run protocol client."""
        return InProcessClient(self)

    async def control(self, command: Control) -> None:
        """Apply one control (see :mod:`core.controls`).

        Raises:
            ControlError: unknown task or pool, or the control does not apply now.
        """
        from core.controls import apply_control

        apply_control(self, command)
        self.poke()

    async def run(self) -> RunSummary:
        """Run to the end and return the summary.

        Cancelling the caller cancels every attempt; their process groups are
        killed before this returns (or re-raises).

        Raises:
            Exception: what the recorder raised (e.g. StoreError), after the
                run was stopped and every task ended.
        """
        if self._ran:
            raise RuntimeError("a Run runs once")
        self._ran = True
        summary: RunSummary | None = None
        # A big run's records live as long as the run: take them out of the
        # collector's scans (full collections over 100k records cost more
        # than the dispatch itself); given back when the run ends.
        gc.freeze()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self.options.wait_for_start and not self._start_evt.is_set():
                    await self._start_evt.wait()
                if self.before_start is not None and not self._cancelled:
                    await self.before_start()  # its error ends the run before any task
                # Cancelled before its start (a plan left in the console
                # before `s`): its tasks end cancelled, but it never started.
                self._begin(started=not self._cancelled)
                tg.start_soon(self._tick)
                if self.recorder is not None:
                    tg.start_soon(self._write_loop)
                await self._loop()
                await self._written()
                tg.cancel_scope.cancel()  # the ticker and writer; every attempt has ended
        except BaseException:
            self._cancelled = True
            raise
        finally:
            summary = self._finish()
            gc.unfreeze()
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self._flush(final=True)
        if self._record_error is not None:
            raise self._record_error
        return summary

    def _begin(self, started: bool = True) -> None:
        if started:
            now = time.time()
            self._started_ts = now
            self._batch.append(RunStarted(self.run_id, str(self.plan.path or ""), len(self.recs), now))
        if self.status is RunStatus.PENDING:
            self.status = RunStatus.PAUSED if self._user_paused else RunStatus.RUNNING
        self._admission = (False, "")  # announce a pause set before Start
        self._check_memory()  # before the first dispatch: memory may be short already
        self._update_admission()
        for rec in self.recs:
            if rec.state is _PENDING and rec.waiting == 0:
                self.make_ready(rec)
        self._pools_due = True

    async def _loop(self) -> None:
        while True:
            more = self._dispatch()
            if not more and (self._stalled or (self._live == 0 and self._open)):
                self._note_stall()
            await self._flush()
            if self._open == 0 and self._live == 0 and (self._close or not self.options.stay_open):
                return
            if more:
                await anyio.lowlevel.checkpoint()
                continue
            await self._wake.wait()
            self._wake.clear()

    def _dispatch(self) -> bool:
        """Start what fits, best task first across pools; True when the inline budget ran out.

        Each start takes the best ready task among the pools with a free
        slot (so a pool listed first never starves a higher-priority task of
        another when CPUs, GPUs or memory are the limit). A task whose
        resources are not free is passed over, up to ``SKIP_AHEAD`` per pool
        and pass, so smaller tasks behind it can use what is free.
        """
        if not self._admitting():
            self._note_waiting([])  # nothing is dispatched: no pool waits for a resource
            return False
        budget = INLINE_BUDGET
        resources = self.resources
        progressed = True
        while progressed:
            progressed = False
            pools = [p for p in self.pools.values() if p.queued and p.busy < p.size]
            passed: list[TaskRec] = []
            passed_in: dict[str, int] = {}
            while pools and budget > 0:
                pool = pools[0] if len(pools) == 1 else min(pools, key=_head_key)
                rec = pool.pop()
                if rec is None:
                    pools.remove(pool)
                    continue
                task = rec.task
                if not resources.fits(task):  # never impossible: see core.run_setup.impossible
                    passed.append(rec)
                    n = passed_in[pool.name] = passed_in.get(pool.name, 0) + 1
                    if n >= SKIP_AHEAD:
                        pools.remove(pool)
                    continue
                budget -= self._start(rec)
                progressed = True
                if pool.busy >= pool.size:
                    pools.remove(pool)
            for rec in passed:
                rec.pool.push(rec)
            self._note_waiting(passed)
            if budget <= 0:
                return True
        return False

    def _note_waiting(self, passed: list[TaskRec]) -> None:
        """Name the resource each pool's tasks wait for while it has free slots."""
        if not passed and not self._pools_waiting:
            return  # the common pass: nothing waits, nothing did (no walk over the pools)
        why: dict[str, str] = {}
        for rec in passed:
            if rec.pool.name not in why and rec.pool.busy < rec.pool.size:
                why[rec.pool.name] = self.resources.short_of(rec.task)
        for pool in self.pools.values():
            reason = why.get(pool.name, "") if pool.queued else ""
            if reason != pool.waiting_for:
                pool.waiting_for = reason
                pool.dirty = True
        self._pools_waiting = bool(why)

    def _note_stall(self) -> None:
        """Say so when the run can go no further without a control.

        Nothing running or waiting to retry, dispatch not paused, and tasks
        still open: they sit in pools resized to 0 (``--pool`` allows 0 in
        the API and ResizePool while running). The run stays open for a
        resize, but announces why it waits (an AdmissionChanged) instead of
        hanging silently; the note is withdrawn once something runs again.
        """
        reason = ""
        if self._live == 0 and self._open and self._admitting():
            held = [f"pool {p.name} has size 0 ({p.queued} queued)"
                    for p in self.pools.values() if p.queued and p.size <= 0]
            reason = "waiting: " + ("; ".join(held) or "no task can start")
        if reason != self._stalled:
            self._stalled = reason
            self._update_admission()

    def _start(self, rec: TaskRec) -> int:
        """Start one attempt; returns 1 when it finished inline, else 0."""
        task = rec.task
        rec.attempt += 1
        rec.attempts_in_run += 1
        now = time.time()
        rec.started_ts = now
        rec.finished_ts = rec.duration_s = rec.exit_code = rec.pid = None
        rec.reason = rec.cancel_reason = ""
        rec.progress = {}
        rec.fraction = None
        rec.state = _RUNNING
        pool = rec.pool
        inline = self._inline[task.agent]
        if inline is not None:
            outcome = inline(task)
            if outcome is not None:
                self._batch.append(TaskChanged(task.id, _RUNNING, rec.attempt, now))
                pool.finished += 1
                pool.dirty = True
                self.end_attempt(rec, outcome, now)
                return 1
        self.resources.acquire(rec)
        pool.busy += 1
        pool.dirty = True
        self._batch.append(TaskChanged(task.id, _RUNNING, rec.attempt, now, None, "", None, rec.gpus))
        self._live += 1
        agent = self._agents[task.agent]
        ctx = self._context(rec)
        if agent.launches:
            LaunchedAttempt(self, rec, agent, ctx)
        else:
            assert self._tg is not None
            self._tg.start_soon(self._attempt, rec, agent, ctx, name=f"tek:{task.id}")
        return 0

    async def _tick(self) -> None:
        try:
            while True:
                await anyio.sleep(TICK_S)
                self._check_memory()
                if any(p.dirty for p in self.pools.values()):
                    self._pools_due = True
                    self.poke()
                if self._pid_news:
                    self._announce_pids()
                    self.poke()
        finally:  # the run's task group is ending: launched attempts go with it
            await stop_launched(self)

    def _check_memory(self) -> None:
        floor = self.options.memory_floor_mb
        if floor <= 0:
            return
        avail = available_memory_mb()
        # Announced when it turns low or back, not each time the figure moves
        # (that was an AdmissionChanged, and a journal row, every tick).
        if (avail < floor) == bool(self._memory_low):
            return
        low = f"available memory {avail} MiB below floor {floor} MiB" if avail < floor else ""
        if low != self._memory_low:
            self._memory_low = low
            self._update_admission()
            self.poke()
