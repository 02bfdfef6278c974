"""A run's state and its synchronous transitions: :class:`RunState`.

:class:`core.engine.Run` derives from it and adds everything that awaits
(the scheduler loop, attempts, flushing). Everything here runs inside the
event loop without awaiting, so each transition is atomic with respect to
the scheduler, the attempts and the controls (:mod:`core.controls`).

Events produced by a transition are appended to ``_batch``; the engine
records and publishes the batch at the end of the scheduler turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Agent, Outcome
from core.broadcast import Broadcaster
from core.errors import PlanError
from core.events import (
    AdmissionChanged,
    Event,
    PoolChanged,
    PoolInfo,
    RunFinished,
    RunSnapshot,
    RunStatus,
    TaskChanged,
    TaskInfo,
    TaskState,
)
from core.logsink import AttemptLog
from core.run_options import RunOptions, RunSummary, TaskResult
from core.run_setup import capacities, impossible, linked_records, pools_for
from core.scheduler import Pool, Resources, TaskRec

if TYPE_CHECKING:
    from core.engine import Run
    from core.launched import LaunchedAttempt
    from core.plan import Plan
    from core.recorder import Recorder

#: The run whose attempt is executing (set by the engine in each attempt's
#: task), so the ``plan`` agent can attach its nested run to it.
CURRENT_RUN: ContextVar[RunState | None] = ContextVar("tek_current_run", default=None)

#: Longest delay between two attempts of a task.
MAX_BACKOFF_S = 600.0
_NO_METRICS: Mapping[str, float] = MappingProxyType({})
_MIB = 1 << 20

_S = TaskState
_RUNNING, _READY, _PENDING, _RETRYING = _S.RUNNING, _S.READY, _S.PENDING, _S.RETRYING


def backoff_s(first_s: float, failed: int) -> float:
    """Delay before the retry after ``failed`` failed attempts: ``first_s`` doubling
    per failure, times a jitter in [0.8, 1.2], at most ``MAX_BACKOFF_S``."""
    doubled = first_s * 2.0 ** min(failed - 1, 64)  # 2 ** 1024 would overflow a float
    return min(MAX_BACKOFF_S, doubled * random.uniform(0.8, 1.2))


class RunState:
    """Tasks, pools, resources and status of one run, and how they change."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        agents: Mapping[str, Agent],
        run_id: str,
        recorder: Recorder | None,
        completed: Collection[str],
        attempts_so_far: Mapping[str, int],
        skipped: Collection[str] = (),
    ) -> None:
        self.plan = plan
        self.options = options
        self.run_id = run_id
        self.recorder = recorder
        self.broadcaster = Broadcaster()
        self._agents = dict(agents)
        self._inline = {n: getattr(a, "run_inline", None) for n, a in agents.items()}
        done = set(completed)
        kept = set(skipped)  # skipped by the user in the run this one resumes
        self.pools: dict[str, Pool] = pools_for(plan, options)
        self.resources = Resources(*capacities(plan, options))
        if cant := impossible(plan, self.resources, done | kept):
            raise PlanError(cant)
        self.recs = linked_records(plan, self.pools, done, kept, attempts_so_far)
        self._by_id: dict[str, TaskRec] = {r.task.id: r for r in self.recs}
        self._open = sum(1 for r in self.recs if not r.state.is_terminal)
        self._live = 0  # attempt and backoff tasks in flight
        #: attempts running as loop callbacks (core.launched), and the event
        #: set when the last one ends during teardown
        self.launched: set[LaunchedAttempt] = set()
        self.launched_idle: anyio.Event | None = None
        self._batch: list[Event] = []
        self._foreign: list[Event] = []  # from nested runs: published, not recorded
        #: awaited once the run may start, before anything is dispatched (a
        #: console's resume reopens the run in the journal there)
        self.before_start: Callable[[], Awaitable[object]] | None = None
        #: nested runs' events waiting for the first N unwritten events to be published
        self._foreign_after: list[tuple[int, list[Event]]] = []
        self._nested: dict[str, Run] = {}
        self._readied: list[TaskRec] = []
        self._logs: dict[AttemptLog, tuple[str, int]] = {}
        self._output_logs: set[AttemptLog] = set()  # logs with lines not yet taken
        # asyncio's Event can be cleared and reused: an anyio.Event per turn
        # cost more than the turn's own work for short shell tasks
        self._wake = asyncio.Event()
        self._start_evt = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self.status = RunStatus.PENDING
        self._user_paused = False
        self._memory_low = ""
        self._stalled = ""  # why nothing can start (see Run._note_stall)
        self._admission: tuple[bool, str] = (False, "")
        self._stopping = False  # no new attempts: CancelRun, fail-fast or interrupt
        self._cancelled = False
        self._close = False
        self._pools_due = False
        #: attempts that got a pid since the last tick: (record, attempt number)
        self._pid_news: list[tuple[TaskRec, int]] = []
        self._started_ts: float | None = None
        self._finished_ts: float | None = None
        self._ran = False
        self._record_error: Exception | None = None
        #: flushed events the writer task has yet to record (core.run_events)
        self._unwritten: list[Event] = []
        self._unwritten_evt = asyncio.Event()
        self._writing = False
        self._written_evt = asyncio.Event()
        #: Environment every attempt starts from (os.environ when the run was built).
        self.base_env = dict(os.environ)
        #: The plan's folder: attempts' default cwd and base of relative paths.
        self.base_dir = plan.base_dir.resolve()
        self.dropped_lines = 0

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
        for prefix, child in self._nested.items():
            tasks += tuple(
                dataclasses.replace(t, id=f"{prefix}/{t.id}",
                                    deps=tuple(f"{prefix}/{d}" for d in t.deps))
                for t in child.snapshot().tasks
            )
        pools = tuple(PoolInfo(p.name, p.size, p.busy, p.queued, p.finished, p.waiting_for)
                      for p in self.pools.values())
        paused, reason = self._admission
        return RunSnapshot(
            self.run_id, str(self.plan.path or ""), self.status, tasks, pools,
            self._started_ts, self._finished_ts, paused, reason, self.dropped_lines,
        )

    def poke(self) -> None:
        """Wake the scheduler loop (new events, output or a state change)."""
        self._wake.set()

    def note_pid(self, rec: TaskRec) -> None:
        """``rec``'s running attempt has a process: announce it at the next tick.

        The event (``TaskChanged`` with the pid) goes out with the first batch
        after the next tick (``TICK_S``), and only if the attempt is still
        running then: a task shorter than a tick costs no event, no scheduler
        turn and no journal write for its pid.
        """
        self._pid_news.append((rec, rec.attempt))

    # ----------------------------------------------------- nested runs

    def adopt(self, prefix: str, child: Run) -> None:
        """Show a nested run's tasks in this run's snapshot as ``prefix/<id>``.

        The nested run follows this one's pause, and takes task controls
        for ``prefix/<id>`` (:meth:`nested_for`).
        """
        self._nested[prefix] = child
        if self._user_paused:
            child.set_user_paused(True)

    def nested_for(self, task_id: str) -> tuple[Run, str] | None:
        """The live nested run that owns ``task_id`` (``prefix/<id>``), and its own id for it."""
        if self.task_rec(task_id) is not None or "/" not in task_id:
            return None
        prefix, _, rest = task_id.partition("/")
        child = self._nested.get(prefix)
        if child is None or child.status.is_finished:
            return None
        return child, rest

    def forward(self, event: Event) -> None:
        """Publish a nested run's event (already re-keyed) with the next batch.

        Forwarded events go to subscribers only, not to this run's recorder:
        the journal holds the parent task, whose own events are recorded.
        """
        self._foreign.append(event)
        self.poke()

    def _admitting(self) -> bool:
        return not (self._stopping or self._user_paused or self._memory_low)

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
                                           outcome.exit_code, "", None, (), metrics,
                                           rec.started_ts))
            self.release(rec)
            return
        if not cancelled and not self._stopping and rec.attempts_in_run <= task.retries:
            rec.state = _RETRYING
            self._batch.append(TaskChanged(task.id, _RETRYING, rec.attempt, now,
                                           outcome.exit_code, outcome.reason, None, (), metrics,
                                           rec.started_ts))
            self._schedule_retry(rec, backoff_s(task.retry_backoff_s, rec.attempts_in_run))
            return
        state = TaskState.CANCELLED if cancelled else TaskState.FAILED
        rec.state = state
        self._open -= 1
        self._batch.append(TaskChanged(task.id, state, rec.attempt, now, outcome.exit_code,
                                       outcome.reason, None, (), metrics, rec.started_ts))
        if state is TaskState.FAILED and self.options.fail_fast and not self._stopping:
            self.stop(f"cancelled: --fail-fast after {task.id} failed")
        else:
            self.skip_downstream(rec, f"upstream {task.id} {state.value}")

    def release(self, rec: TaskRec) -> None:
        """``rec`` is done as far as its downstream is concerned (it succeeded, or was skipped).

        A dependant skipped by the user while it still waited (``held``) is
        passed through: its own downstream is released once its last
        upstream task is done, never before.
        """
        for d in rec.dependents:
            if d.state is _PENDING:
                d.waiting -= 1
                if d.waiting == 0 and not self._stopping:
                    self.make_ready(d)
            elif d.held:
                d.waiting -= 1
                if d.waiting == 0:
                    d.held = False
                    self.release(d)

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
            elif d.held:  # skipped by the user, but what it waited for will never come
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
        self.poke()

    def task_rec(self, task_id: str) -> TaskRec | None:
        """The record of a task, or None."""
        return self._by_id.get(task_id)

    def _update_admission(self) -> None:
        if self._stopping:
            state = (True, "run stopping")
        elif self._user_paused:
            state = (True, "paused by user")
        elif self._memory_low:
            state = (True, self._memory_low)
        elif self._stalled:
            state = (True, self._stalled)
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
        for child in self._nested.values():  # sub-plans pause and resume with it
            if not child.status.is_finished:
                child.set_user_paused(paused)
                child.poke()

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
        end = now
        if self.options.stay_open:  # it waited for retries: it ended with its last task
            end = max([r.finished_ts for r in self.recs if r.finished_ts is not None] or [now])
            end = max(end, started)  # cancelled before its start: no negative wall time
        for p in self.pools.values():
            self._batch.append(PoolChanged(p.name, p.size, p.busy, p.queued, p.finished, now))
        self._batch.append(RunFinished(self.run_id, self.status, counts, end - started, end))
        tasks = {
            r.task.id: TaskResult(r.state, r.attempt, r.exit_code, r.duration_s, r.reason)
            for r in self.recs
        }
        return RunSummary(self.run_id, self.status, counts, end - started, tasks)

    def _schedule_retry(self, rec: TaskRec, delay: float) -> None:
        """Make ``rec`` READY again after ``delay`` seconds (the engine's job)."""
        raise NotImplementedError
