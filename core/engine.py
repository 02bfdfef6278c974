"""The run: executes a plan inside one anyio task group.

:func:`create_run` checks a plan and builds a :class:`Run`; ``await
run.run()`` executes it and returns a :class:`RunSummary`. Front ends use
``run.client()`` (the run protocol) and nothing else.

How it goes fast and stays correct:

- One scheduler loop owns every state change. A turn dispatches what it can,
  then flushes the turn's events as one batch: ``recorder.record(batch)`` is
  awaited first (durable before announced), then the batch is published to
  subscribers, which never block (:mod:`core.broadcast`).
- Attempts that wait on something (a process, a sleep) run as one anyio task
  each in the run's task group. A noop with no delay finishes inline in the
  loop (:meth:`NoopAgent.run_inline`), so plain dispatch costs a few
  microseconds a task. At most ``INLINE_BUDGET`` inline tasks run per turn, so
  events flow and controls apply even in a 1M-task run.
- Timeouts and cancellation are anyio cancel scopes around ``agent.run``;
  agents stop their process groups on cancellation (:mod:`core.process`).

Decisions beyond DESIGN.md: a task cancelled by a user makes the run end
``failed`` (exit 1), like a failed task; retry delays are ``retry_backoff_s *
2**(n-1)`` times a jitter factor in [0.8, 1.2], capped at ``MAX_BACKOFF_S``;
``RunOptions.stay_open`` (added, default False) keeps a finished run open for
Retry controls until ``CancelRun`` (the console's use).
"""

from __future__ import annotations

import gc
import os
import random
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from core.agents.base import Agent, AttemptContext, Outcome
from core.agents.registry import get_agent, known_agents
from core.broadcast import Broadcaster, InProcessClient
from core.errors import PlanError
from core.events import (
    AdmissionChanged,
    Control,
    Event,
    OutputDropped,
    OutputLines,
    PoolChanged,
    PoolInfo,
    Progress,
    RunFinished,
    RunSnapshot,
    RunStarted,
    RunStatus,
    TaskChanged,
    TaskInfo,
    TaskState,
)
from core.logsink import AttemptLog
from core.paths import run_log_path
from core.process import GRACE_S
from core.scheduler import Pool, Resources, TaskRec, link

if TYPE_CHECKING:
    from core.client import RunClient
    from core.plan import Plan
    from core.recorder import Recorder

#: Inline (no-wait) tasks finished per scheduler turn before events are flushed.
INLINE_BUDGET = 4096
#: Tasks skipped over per pool and turn when the best ones do not fit resources.
SKIP_AHEAD = 32
#: Seconds between pool/memory samples (PoolChanged is sent at most this often).
TICK_S = 0.25
MAX_BACKOFF_S = 600.0
_NO_METRICS: Mapping[str, float] = MappingProxyType({})
_MIB = 1 << 20

_S = TaskState
_RUNNING, _READY, _PENDING, _RETRYING = _S.RUNNING, _S.READY, _S.PENDING, _S.RETRYING


def available_memory_mb() -> int:
    """Available system memory in MiB (tests monkeypatch this)."""
    import psutil

    return int(psutil.virtual_memory().available // _MIB)


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan (the ``tek run`` flags).

    Attributes:
        jobs: default size of every pool, and the CPU capacity when ``cpus`` is None.
        pool_sizes: size of named pools (``--pool NAME=SIZE``).
        cpus: CPU capacity; None = ``jobs`` or the machine's logical CPUs.
        gpus: GPU capacity; None = NVML's count when a task needs a GPU, else 0.
        memory_mb: memory capacity in MiB; None = the machine's total memory.
        fail_fast: after the first failure cancel the rest instead of going on.
        memory_floor_mb: admission pauses while available memory is below this.
        wait_for_start: stay PENDING until a ``Start`` control (the console).
        grace_s: seconds between SIGTERM and SIGKILL of a stopped task's group.
        stay_open: keep the run open when every task has ended, so a Retry can
            still come, until ``CancelRun`` (added field; the console's use).
    """

    jobs: int | None = None
    pool_sizes: Mapping[str, int] = field(default_factory=dict)
    cpus: float | None = None
    gpus: int | None = None
    memory_mb: int | None = None
    fail_fast: bool = False
    memory_floor_mb: int = 256
    wait_for_start: bool = False
    grace_s: float = 5.0
    stay_open: bool = False


@dataclass(frozen=True)
class TaskResult:
    """How one task ended."""

    state: TaskState
    attempts: int
    exit_code: int | None
    duration_s: float | None
    reason: str


@dataclass(frozen=True)
class RunSummary:
    """What ``Run.run`` returns (and ``tek run --json`` prints)."""

    run_id: str
    status: RunStatus
    counts: dict[str, int]
    wall_s: float
    tasks: dict[str, TaskResult]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "counts": self.counts,
            "wall_s": round(self.wall_s, 6),
            "tasks": {
                tid: {
                    "state": r.state.value,
                    "attempts": r.attempts,
                    "exit_code": r.exit_code,
                    "duration_s": None if r.duration_s is None else round(r.duration_s, 6),
                    "reason": r.reason,
                }
                for tid, r in self.tasks.items()
            },
        }


def new_run_id() -> str:
    """A sortable run id: UTC time plus 4 random hex digits (``20261124-123045-ab12``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def create_run(
    plan: Plan,
    options: RunOptions | None = None,
    *,
    run_id: str | None = None,
    recorder: Recorder | None = None,
    completed: Collection[str] = (),
    attempts_so_far: Mapping[str, int] | None = None,
) -> Run:
    """Check a plan against the agents and options, and build its run.

    Args:
        plan: the validated plan.
        options: capacities, pool sizes and policies.
        run_id: the run's id; default :func:`new_run_id`.
        recorder: awaited with every batch of events before it is published.
        completed: ids already succeeded (resume): not run, start SUCCEEDED.
        attempts_so_far: attempt numbering continues after these (resume).

    Returns:
        The run, not started.

    Raises:
        PlanError: unknown agent, dependency or completed id, a cycle, or a
            ``pool_sizes`` entry naming no pool or giving a negative size.
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
    if problems:
        raise PlanError(problems)
    # Building 100k records with the collector on costs 3x: it rescans them
    # all, repeatedly, while they are being made (none are garbage).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return Run(plan, options, agents, run_id or new_run_id(), recorder, completed,
                   attempts_so_far or {})
    finally:
        if enabled:
            gc.enable()


class Run:
    """One execution of a plan. Build with :func:`create_run`."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        agents: Mapping[str, Agent],
        run_id: str,
        recorder: Recorder | None,
        completed: Collection[str],
        attempts_so_far: Mapping[str, int],
    ) -> None:
        self.plan = plan
        self.options = options
        self.run_id = run_id
        self.recorder = recorder
        self.broadcaster = Broadcaster()
        self._agents = dict(agents)
        self._inline = {n: getattr(a, "run_inline", None) for n, a in agents.items()}
        done = set(completed)
        dependents, rpl, order = link(plan.tasks, done)
        jobs = options.jobs or os.cpu_count() or 1
        self.pools: dict[str, Pool] = {}
        for name in dict.fromkeys(t.pool_name for t in plan.tasks):
            self.pools[name] = Pool(name, options.pool_sizes.get(name, jobs))
        self.resources = Resources(*self._capacities(plan, options))
        pools = self.pools
        recs = [TaskRec(i, t, rpl[i], pools[t.pool or t.agent]) for i, t in enumerate(plan.tasks)]
        self.recs = recs
        self._by_id: dict[str, TaskRec] = {r.task.id: r for r in recs}
        for n, i in enumerate(order):
            recs[i].topo = n
        by_id = self._by_id
        for rec, deps_of in zip(recs, dependents, strict=True):
            rec.dependents = [recs[j] for j in deps_of]
            if rec.task.deps:
                rec.deps = [by_id[d] for d in rec.task.deps]
                rec.waiting = len(rec.deps)
        for tid in done:
            rec = by_id[tid]
            rec.state = TaskState.SUCCEEDED
            for d in rec.dependents:
                d.waiting -= 1
        for tid, n in attempts_so_far.items():
            if tid in by_id:
                by_id[tid].attempt = n
        self._open = sum(1 for r in self.recs if not r.state.is_terminal)
        self._live = 0  # attempt and backoff tasks in flight
        self._batch: list[Event] = []
        self._readied: list[TaskRec] = []
        self._logs: dict[AttemptLog, tuple[str, int]] = {}
        self._wake = anyio.Event()
        self._start_evt = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self.status = RunStatus.PENDING
        self._user_paused = False
        self._memory_low = ""
        self._admission: tuple[bool, str] = (False, "")
        self._stopping = False  # no new attempts: CancelRun, fail-fast or interrupt
        self._cancelled = False
        self._close = False
        self._pools_due = False
        self._started_ts: float | None = None
        self._finished_ts: float | None = None
        self._ran = False
        self._record_error: Exception | None = None
        self._base_env = dict(os.environ)
        self._base_dir = plan.base_dir.resolve()
        self.dropped_lines = 0

    @staticmethod
    def _capacities(plan: Plan, options: RunOptions) -> tuple[float, int, int]:
        cpus = options.cpus
        if cpus is None:
            cpus = float(options.jobs or os.cpu_count() or 1)
        gpus = options.gpus
        if gpus is None:
            gpus = 0
            if any(t.gpus for t in plan.tasks):
                from core.gpu import gpu_count

                gpus = gpu_count()
        memory = options.memory_mb
        if memory is None:
            import psutil

            memory = int(psutil.virtual_memory().total // _MIB)
        return cpus, gpus, memory

    # ------------------------------------------------------------ protocol

    def client(self) -> RunClient:
        """The in-process run protocol client."""
        return InProcessClient(self)

    def snapshot(self) -> RunSnapshot:
        """The whole state of the run now."""
        tasks = tuple(
            TaskInfo(
                r.task.id, r.task.label, r.task.agent, r.task.pool_name, r.task.deps,
                r.task.tags, r.task.command, r.state, r.attempt, r.started_ts,
                r.finished_ts, r.exit_code, r.reason, r.pid, dict(r.progress), r.fraction,
            )
            for r in self.recs
        )
        pools = tuple(PoolInfo(p.name, p.size, p.busy, p.queued, p.finished)
                      for p in self.pools.values())
        paused, reason = self._admission
        return RunSnapshot(
            self.run_id, str(self.plan.path or ""), self.status, tasks, pools,
            self._started_ts, self._finished_ts, paused, reason, self.dropped_lines,
        )

    async def control(self, command: Control) -> None:
        """Apply one control (see :mod:`core.controls`).

        Raises:
            ControlError: unknown task or pool, or the control does not apply now.
        """
        from core.controls import apply_control

        apply_control(self, command)
        self._poke()

    # ------------------------------------------------------------ running

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
                self._begin()
                tg.start_soon(self._tick)
                await self._loop()
                tg.cancel_scope.cancel()  # the ticker; every attempt has ended
        except BaseException:
            self._cancelled = True
            raise
        finally:
            summary = self._finish()
            gc.unfreeze()
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self._flush()
        if self._record_error is not None:
            raise self._record_error
        return summary

    def _begin(self) -> None:
        now = time.time()
        self._started_ts = now
        if self.status is RunStatus.PENDING:
            self.status = RunStatus.PAUSED if self._user_paused else RunStatus.RUNNING
        self._batch.append(RunStarted(self.run_id, str(self.plan.path or ""), len(self.recs), now))
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
            await self._flush()
            if self._open == 0 and self._live == 0 and (self._close or not self.options.stay_open):
                return
            if more:
                await anyio.lowlevel.checkpoint()
                continue
            await self._wake.wait()
            self._wake = anyio.Event()

    def _poke(self) -> None:
        self._wake.set()

    def _admitting(self) -> bool:
        return not (self._stopping or self._user_paused or self._memory_low)

    def _dispatch(self) -> bool:
        """Start what fits; True when the inline budget ran out (more to do)."""
        if not self._admitting():
            return False
        budget = INLINE_BUDGET
        resources = self.resources
        progressed = True
        while progressed:
            progressed = False
            for pool in self.pools.values():
                if not pool.queued or pool.busy >= pool.size:
                    continue
                stash: list[TaskRec] = []
                while pool.busy < pool.size and budget > 0:
                    rec = pool.pop()
                    if rec is None:
                        break
                    task = rec.task
                    if not resources.fits(task):
                        why = resources.impossible(task)
                        if why:  # would wait forever: fail it, with no retry
                            rec.attempt += 1
                            rec.attempts_in_run = task.retries + 1
                            rec.started_ts = time.time()
                            self.end_attempt(rec, Outcome(ok=False, reason=why))
                            continue
                        stash.append(rec)
                        if len(stash) >= SKIP_AHEAD:
                            break
                        continue
                    budget -= self._start(rec)
                    progressed = True
                for rec in stash:
                    pool.push(rec)
            if budget <= 0:
                return True
        return False

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
        assert self._tg is not None
        self._tg.start_soon(self._attempt, rec, self._agents[task.agent], name=f"tek:{task.id}")
        return 0

    async def _attempt(self, rec: TaskRec, agent: Agent) -> None:
        GRACE_S.set(self.options.grace_s)
        ctx = self._context(rec)
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
            self._live -= 1
            log.close()
            self._take_output(log)
            self._logs.pop(log, None)
        code = outcome.exit_code if outcome is not None else None
        if rec.cancel_reason:
            outcome = Outcome(ok=False, exit_code=code, reason=rec.cancel_reason)
        elif timed_out:
            outcome = Outcome(ok=False, exit_code=code, reason=f"timed out after {timeout:g}s")
        elif outcome is None:
            outcome = Outcome(ok=False, reason="cancelled")
        self.resources.release(rec)
        rec.pool.busy -= 1
        rec.pool.finished += 1
        rec.pool.dirty = True
        self.end_attempt(rec, outcome, cancelled=bool(rec.cancel_reason))
        self._poke()

    def _context(self, rec: TaskRec) -> AttemptContext:
        task = rec.task
        attempt = rec.attempt
        env = self._base_env.copy()
        env.update(task.env)
        env["TEK_RUN_ID"] = self.run_id
        env["TEK_TASK_ID"] = task.id
        env["TEK_ATTEMPT"] = str(attempt)
        if rec.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, rec.gpus))
        path = run_log_path(self.run_id, task.id, attempt)
        log = AttemptLog(path, on_output=self._on_output)
        self._logs[log] = (task.id, attempt)

        def report_progress(fraction: float | None = None, **values: float | int | str) -> None:
            if rec.attempt != attempt or rec.state is not _RUNNING:
                return
            rec.progress.update(values)
            if fraction is not None:
                rec.fraction = fraction
            self._batch.append(Progress(task.id, attempt, time.time(), dict(values), fraction))
            self._poke()

        def set_pid(pid: int) -> None:
            if rec.attempt != attempt or rec.state is not _RUNNING:
                return
            rec.pid = pid
            self._batch.append(TaskChanged(task.id, _RUNNING, attempt, time.time(), None, "",
                                           pid, rec.gpus))
            self._poke()

        return AttemptContext(
            task=task, attempt=attempt, run_id=self.run_id, cpus=rec.cpus, gpus=rec.gpus,
            memory_mb=task.memory_mb, env=env,
            cwd=(self._base_dir / task.cwd) if task.cwd else self._base_dir,
            log_path=path, log=log, report_progress=report_progress, set_pid=set_pid,
            plan_dir=self._base_dir,
        )

    def _on_output(self) -> None:
        self._poke()

    def _take_output(self, log: AttemptLog) -> None:
        key = self._logs.get(log)
        if key is None:
            return
        lines, dropped = log.take()
        if lines:
            self._batch.append(OutputLines(key[0], key[1], tuple(lines)))
        if dropped:
            self.dropped_lines += dropped
            self._batch.append(OutputDropped(key[0], key[1], dropped))

    # ------------------------------------------------------- transitions

    def make_ready(self, rec: TaskRec) -> None:
        """PENDING/RETRYING -> READY, queued in its pool.

        The READY event is deferred to the flush and left out when the task
        already started in the same turn: a third fewer events in a fast run,
        and subscribers coalesce it away anyway.
        """
        rec.state = _READY
        self._readied.append(rec)
        rec.pool.push(rec)

    def end_attempt(self, rec: TaskRec, outcome: Outcome, now: float | None = None,
                    cancelled: bool = False) -> None:
        """Record how an attempt ended and move the task and its downstream on."""
        now = now or time.time()
        task = rec.task
        rec.finished_ts = now
        rec.duration_s = now - rec.started_ts if rec.started_ts is not None else None
        rec.exit_code = outcome.exit_code
        rec.reason = outcome.reason
        rec.pid = None
        metrics = outcome.metrics or _NO_METRICS
        if outcome.metrics:
            rec.metrics = dict(outcome.metrics)
        if outcome.ok:
            rec.state = TaskState.SUCCEEDED
            self._open -= 1
            self._batch.append(TaskChanged(task.id, TaskState.SUCCEEDED, rec.attempt, now,
                                           outcome.exit_code, "", None, (), metrics))
            for d in rec.dependents:
                if d.state is _PENDING:
                    d.waiting -= 1
                    if d.waiting == 0:
                        self.make_ready(d)
            return
        if not cancelled and not self._stopping and rec.attempts_in_run <= task.retries:
            rec.state = _RETRYING
            self._batch.append(TaskChanged(task.id, _RETRYING, rec.attempt, now,
                                           outcome.exit_code, outcome.reason, None, (), metrics))
            delay = task.retry_backoff_s * 2 ** (rec.attempts_in_run - 1)
            delay = min(MAX_BACKOFF_S, delay * random.uniform(0.8, 1.2))
            self._live += 1
            assert self._tg is not None
            self._tg.start_soon(self._backoff, rec, delay)
            return
        state = TaskState.CANCELLED if cancelled else TaskState.FAILED
        rec.state = state
        self._open -= 1
        self._batch.append(TaskChanged(task.id, state, rec.attempt, now, outcome.exit_code,
                                       outcome.reason, None, (), metrics))
        if state is TaskState.FAILED and self.options.fail_fast and not self._stopping:
            self.stop(f"cancelled: --fail-fast after {task.id} failed")
        else:
            self.skip_downstream(rec, f"upstream {task.id} {state.value}")

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
        self._poke()

    def end_now(self, rec: TaskRec, state: TaskState, reason: str, upstream: bool = False) -> None:
        """End a task that is not running (PENDING, READY or RETRYING) right away."""
        if rec.state is _READY:
            rec.pool.forget(rec)
        elif rec.state is _RETRYING and rec.scope is not None:
            rec.scope.cancel()
        rec.state = state
        rec.reason = reason
        rec.upstream_skip = upstream
        rec.finished_ts = time.time()
        self._open -= 1
        self._batch.append(TaskChanged(rec.task.id, state, rec.attempt, rec.finished_ts,
                                       rec.exit_code, reason))

    def skip_downstream(self, rec: TaskRec, reason: str) -> None:
        """Skip every not-yet-run task downstream of ``rec``."""
        stack = list(rec.dependents)
        while stack:
            d = stack.pop()
            if d.state is _PENDING:
                self.end_now(d, TaskState.SKIPPED, reason, upstream=True)
                stack.extend(d.dependents)

    def stop(self, reason: str) -> None:
        """Stop dispatching, end waiting tasks as cancelled, cancel running ones."""
        self._stopping = True
        for rec in self.recs:
            state = rec.state
            if state is _RUNNING:
                if not rec.cancel_reason:
                    rec.cancel_reason = reason
                if rec.scope is not None:
                    rec.scope.cancel()
            elif not state.is_terminal:
                self.end_now(rec, TaskState.CANCELLED, reason)
        self._update_admission()
        self._poke()

    def task_rec(self, task_id: str) -> TaskRec | None:
        """The record of a task, or None."""
        return self._by_id.get(task_id)

    # --------------------------------------------------- ticks and flush

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(TICK_S)
            self._check_memory()
            if any(p.dirty for p in self.pools.values()):
                self._pools_due = True
                self._poke()

    def _check_memory(self) -> None:
        floor = self.options.memory_floor_mb
        if floor <= 0:
            return
        avail = available_memory_mb()
        low = f"available memory {avail} MiB below floor {floor} MiB" if avail < floor else ""
        if low != self._memory_low:
            self._memory_low = low
            self._update_admission()
            self._poke()

    def _update_admission(self) -> None:
        if self._stopping:
            state = (True, "run stopping")
        elif self._user_paused:
            state = (True, "paused by user")
        elif self._memory_low:
            state = (True, self._memory_low)
        else:
            state = (False, "")
        if state != self._admission:
            self._admission = state
            if self._started_ts is not None:
                self._batch.append(AdmissionChanged(state[0], state[1], time.time()))

    def set_user_paused(self, paused: bool) -> None:
        """Pause or resume dispatch for the user (the Pause/Resume controls)."""
        self._user_paused = paused
        if self.status in (RunStatus.RUNNING, RunStatus.PAUSED):
            self.status = RunStatus.PAUSED if paused else RunStatus.RUNNING
        self._update_admission()

    def request_start(self) -> None:
        """Let a ``wait_for_start`` run begin."""
        self._start_evt.set()

    def request_close(self) -> None:
        """End a ``stay_open`` run whose tasks have all ended."""
        self._close = True

    def mark_cancelled(self) -> None:
        """Note that the run as a whole was cancelled (status CANCELLED at the end)."""
        self._cancelled = True
        self._close = True
        if not self.status.is_finished:
            self.status = RunStatus.CANCELLING
        self._start_evt.set()

    @property
    def stopping(self) -> bool:
        """True once no new attempt may start (CancelRun, fail-fast, interrupt)."""
        return self._stopping

    def reopen(self, rec: TaskRec) -> None:
        """Count a terminal task as open again (RetryTask)."""
        self._open += 1

    def emit(self, event: Event) -> None:
        """Add an event to this turn's batch."""
        self._batch.append(event)

    @staticmethod
    def now() -> float:
        """Event time stamps: Unix seconds."""
        return time.time()

    @property
    def open_tasks(self) -> int:
        """Tasks not yet in a terminal state."""
        return self._open

    def mark_pools_due(self) -> None:
        """Send PoolChanged for changed pools at the next flush."""
        self._pools_due = True

    async def _flush(self) -> None:
        if self._readied:
            now = time.time()
            append = self._batch.append
            for rec in self._readied:
                if rec.state is _READY:
                    append(TaskChanged(rec.task.id, _READY, rec.attempt, now))
            self._readied = []
        for log in list(self._logs):
            self._take_output(log)
        if self._pools_due:
            self._pools_due = False
            now = time.time()
            for p in self.pools.values():
                if p.dirty:
                    p.dirty = False
                    self._batch.append(PoolChanged(p.name, p.size, p.busy, p.queued,
                                                   p.finished, now))
        batch = self._batch
        if not batch:
            return
        self._batch = []
        if self.recorder is not None and self._record_error is None:
            try:
                await self.recorder.record(batch)
            except Exception as exc:
                # Nothing may run unrecorded: stop everything, then raise it
                # from run() once every process is gone.
                self._record_error = exc
                self.stop(f"journal write failed: {exc}")
        self.broadcaster.publish(batch)

    def _finish(self) -> RunSummary:
        now = time.time()
        self._finished_ts = now
        for rec in self.recs:
            if not rec.state.is_terminal:
                if rec.state is _RUNNING:
                    rec.state = _PENDING  # so end_now does not touch pool queues
                self.end_now(rec, TaskState.CANCELLED, rec.cancel_reason or "run interrupted")
        counts = {s.value: 0 for s in TaskState}
        ok = True
        for rec in self.recs:
            counts[rec.state.value] += 1
            if rec.state is not TaskState.SUCCEEDED and (
                rec.state is not TaskState.SKIPPED or rec.upstream_skip
            ):
                ok = False
        if self._cancelled:
            self.status = RunStatus.CANCELLED
        else:
            self.status = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
        started = self._started_ts or now
        for p in self.pools.values():
            self._batch.append(PoolChanged(p.name, p.size, p.busy, p.queued, p.finished, now))
        self._batch.append(RunFinished(self.run_id, self.status, counts, now - started, now))
        tasks = {
            r.task.id: TaskResult(r.state, r.attempt, r.exit_code, r.duration_s, r.reason)
            for r in self.recs
        }
        return RunSummary(self.run_id, self.status, counts, now - started, tasks)

