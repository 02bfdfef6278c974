"""The SQLite :class:`~core.recorder.Recorder`: a run's events into the journal.

The engine awaits :meth:`JournalRecorder.record` with each ordered batch of
events before it publishes them. Each batch becomes exactly one write
transaction, done in a worker thread (``anyio.to_thread.run_sync`` behind a
one-slot limiter, so batches are written one at a time, in the order they
came, and the event loop never waits on disk). When ``record`` returns, the
batch is committed: a state change is durable before any client sees it.

Only what history and resume need is stored: task state changes, attempts
(start, end, exit code, reason, log path, resources, metrics) and the run's
start and end. Output lines, progress and pool samples are not (the log
files keep the output); a batch holding nothing else costs no thread hop.

The hot path only turns events into plain tuples (``core.store_batch``);
a big batch is committed packed and applied to the tables later, in order
(``core.store``, "Pending batches"), so a 10k-task turn costs the run a few
milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from core.errors import StoreError
from core.events import Event, RunFinished, RunStarted
from core.paths import run_dir
from core.store_batch import RawChange, compact
from core.store_runs import refuse_if_live

if TYPE_CHECKING:
    from core.plan import Plan
    from core.resume import ResumeDecision
    from core.store import Store
    from core.store_records import RunRecord

@dataclass(slots=True)
class JournalStats:
    """What the recorder has written so far."""

    batches: int = 0
    #: batches committed to ``pending`` (applied later) rather than at once
    queued: int = 0
    events: int = 0
    #: seconds spent in ``record`` (conversion, thread hop, SQL, commit)
    write_s: float = 0.0


class JournalRecorder:
    """Writes one run's events to a :class:`~core.store.Store`.

    Args:
        store: the open journal (its run row was made by ``begin_run`` or
            ``reopen_run``).
        run_id: the run.
        inline_max: batches with more rows are queued (default :attr:`INLINE_MAX`).
    """

    #: A batch with more rows than this is queued (see ``core.store``).
    INLINE_MAX = 256

    def __init__(self, store: Store, run_id: str, inline_max: int | None = None) -> None:
        self.store = store
        self.inline_max = self.INLINE_MAX if inline_max is None else inline_max
        self.run_id = run_id
        self.stats = JournalStats()
        self._log_prefix = str(run_dir(run_id)) + os.sep
        # One slot: batches never overlap, so they commit in arrival order.
        self._limiter = anyio.CapacityLimiter(1)
        self._holding = False
        self._held: list[Event] = []

    def hold_until_start(self) -> None:
        """Journal nothing until the run starts (its ``RunStarted``).

        For a resumed run shown in the console before ``s``, whose journal
        is reopened only at the start (``Run.before_start``): left (or
        replaced by an edit) before that, it leaves the journal exactly as
        it was; controls given before the start are written with it.
        """
        self._holding = True

    async def record(self, events: Sequence[Event]) -> None:
        """Commit the batch's state changes; returns once they are durable."""
        if self._holding:
            if not any(type(e) is RunStarted for e in events):
                if not any(type(e) is RunFinished for e in events):
                    self._held.extend(events)  # controls given before the start
                return  # (a run that ends before its start leaves nothing)
            self._holding = False
            events, self._held = [*self._held, *events], []
        # Turning events into tuples is cheap CPU work done here; the SQL and
        # the commit run in the worker thread.
        t0 = time.perf_counter()
        raw, run_updates = compact(self.run_id, events)
        if raw or run_updates:
            await anyio.to_thread.run_sync(self._write, raw, run_updates, limiter=self._limiter)
        self.stats.events += len(events)
        self.stats.write_s += time.perf_counter() - t0

    def record_sync(self, events: Sequence[Event]) -> None:
        """Write one batch in one transaction, from the calling thread."""
        t0 = time.perf_counter()
        raw, run_updates = compact(self.run_id, events)
        if raw or run_updates:
            self._write(raw, run_updates)
        self.stats.events += len(events)
        self.stats.write_s += time.perf_counter() - t0

    def _write(self, raw: list[RawChange], run_updates: list[tuple[str, tuple[Any, ...]]]) -> None:
        if not self.store.write_batch(self.run_id, self._log_prefix, raw, run_updates, self.inline_max):
            self.stats.queued += 1
        self.stats.batches += 1


@dataclass(frozen=True, slots=True)
class RunJournal:
    """A run's journal, ready to hand to the engine.

    Attributes:
        store: the open journal (close it when the run is over).
        run_id: the run (new, or the resumed one).
        recorder: pass as ``create_run(..., recorder=)``.
        completed: tasks the engine treats as already succeeded.
        skipped: tasks the user skipped in the resumed run, kept skipped.
        attempts_so_far: attempt numbering to continue from.
        decision: for a resume, what reruns and why; None for a new run.
        interrupted: attempts the crash left open, now closed as interrupted.
        stopped: of those, how many still had processes running (stopped).
        reopen: for a resume made with ``defer_reopen``, what
            :meth:`commit_resume` does; None once done (or for a new run).
    """

    store: Store
    run_id: str
    recorder: JournalRecorder
    completed: frozenset[str] = frozenset()
    attempts_so_far: Mapping[str, int] = field(default_factory=dict)
    decision: ResumeDecision | None = None
    skipped: frozenset[str] = frozenset()
    interrupted: int = 0
    stopped: int = 0
    reopen: Callable[[], tuple[int, int]] | None = None

    def ready(self) -> None:
        """Wait until the new run's rows are committed; call before the run starts.

        They are written in the background while the engine is built, after
        a check of the whole file, so a damaged journal stops the run here,
        before any task starts, with the file as it was.

        Raises:
            StoreError: the journal is damaged, or writing the rows failed.
        """
        self.store.settle()

    def commit_resume(self) -> RunJournal:
        """Reopen a deferred resume now: stop orphans, close open attempts, reset reruns.

        Returns:
            The journal with ``interrupted`` and ``stopped`` filled in (itself
            when there was nothing deferred).
        """
        if self.reopen is None:
            return self
        interrupted, stopped = self.reopen()
        return dataclasses.replace(self, interrupted=interrupted, stopped=stopped, reopen=None)

    def discard(self) -> None:
        """Remove a new run that never started (the engine refused its options).

        Without this a ``tek run --pool typo=2`` would leave a run that
        reads as interrupted, with every task pending, in the history. A
        resumed run is kept: it existed before.
        """
        if self.decision is None:
            self.store.delete_run(self.run_id)

    def _started(self) -> bool:
        with self.store.read() as conn:
            row = conn.execute("SELECT started_ts FROM runs WHERE id = ?", (self.run_id,)).fetchone()
        return row is None or row[0] is not None  # no row: nothing to remove

    def close(self) -> None:
        """After the run: apply its queued batches, checkpoint, close the journal.

        A new run that never started (a plan opened in the console and left,
        or replaced by its edited version, before ``s``) is removed instead:
        history lists runs that ran.
        """
        try:
            if self.decision is None and not self._started():
                self.discard()
            else:
                self.store.apply_pending(self.run_id)
            self.store.checkpoint()
        finally:
            self.store.close()


@dataclass(frozen=True, slots=True)
class ResumeTarget:
    """A journaled run that may be resumed with a plan, and what the resume would do.

    Made by :func:`find_resume`, which changes nothing; hand it to
    :func:`create_journal` as ``resume`` to reopen that very run.

    Attributes:
        run: the run as the journal holds it (its recorded ``options`` too).
        decision: what reruns and why.
        left_open: ``(task, attempt)`` of attempts its crash left open.
    """

    run: RunRecord
    decision: ResumeDecision
    left_open: frozenset[tuple[str, int]] = frozenset()


def find_resume(
    plan: Plan, *, store: Store, resume: str, from_tasks: Sequence[str] = ()
) -> ResumeTarget:
    """The run ``resume`` names and what resuming it with ``plan`` reruns; reads only.

    Every refusal of a resume is made here, in this order, so a dry run
    (``tek run --resume --dry-run``) refuses what the real resume refuses,
    with the same line: no such run, a run still running, a run of another
    plan file, an unknown ``--from`` task.

    Args:
        plan: the plan to run (as it is now).
        store: the open journal.
        resume: run id, unique prefix or ``last`` (the newest run of the
            plan's file, by whichever path that run named it).
        from_tasks: tasks to rerun with their downstream.

    Raises:
        StoreError: no such run, its process is still running it, or it ran
            another plan file that still exists.
        PlanError: a ``from_tasks`` id is not in the plan.
    """
    from core.resume import decide_resume

    plan_path = str(plan.path.absolute()) if plan.path is not None and resume == "last" else None
    rid = store.resolve_run(resume, plan_path=plan_path)
    run, tasks, attempts = store.read_run(rid)
    refuse_if_live(run)
    _check_same_plan(run.plan_path, plan, rid)
    decision = decide_resume(plan, tasks, from_tasks)
    left_open = frozenset((a.task_id, a.attempt) for a in attempts if a.ended_ts is None)
    return ResumeTarget(run, decision, left_open)


def create_journal(
    plan: Plan,
    *,
    store: Store,
    options: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    resume: str | ResumeTarget | None = None,
    from_tasks: Sequence[str] = (),
    defer_reopen: bool = False,
) -> RunJournal:
    """Record a new run of ``plan``, or reopen a journaled one to resume it.

    Args:
        plan: the plan to run (as it is now).
        store: the open journal.
        options: run options, kept as JSON with the run.
        run_id: id for a new run (default: a new one, see ``Store.begin_run``).
        resume: run id, unique prefix or ``last`` (the newest run of this
            plan's file) to resume, or what :func:`find_resume` found (then
            ``from_tasks`` is not looked at again); None starts a new run.
        from_tasks: with ``resume``, tasks to rerun with their downstream.
        defer_reopen: with ``resume``, decide but change nothing yet: the
            caller builds its run first (``create_run`` may refuse the
            options) and then calls :meth:`RunJournal.commit_resume`.

    Returns:
        The journal to hand to the engine.

    Raises:
        StoreError: no such run, or its process is still running it.
        PlanError: a ``from_tasks`` id is not in the plan.
    """
    if resume is None:
        rid = store.begin_run(run_id, plan, options, background=True)
        return RunJournal(store, rid, JournalRecorder(store, rid))
    target = resume if isinstance(resume, ResumeTarget) else find_resume(
        plan, store=store, resume=resume, from_tasks=from_tasks)
    rid, decision, left_open = target.run.id, target.decision, set(target.left_open)
    here = target.run.host == socket.gethostname()

    def reopen() -> tuple[int, int]:
        refuse_if_live(store.get_run(rid))  # another tek took it while this one got ready
        stopped = stop_orphans(rid, left_open) if left_open and here else 0
        return store.reopen_run(rid, plan, decision.rerun, options), stopped

    journal = RunJournal(
        store, rid, JournalRecorder(store, rid), decision.completed,
        decision.attempts_so_far, decision, decision.skipped, reopen=reopen,
    )  # fmt: skip
    return journal if defer_reopen else journal.commit_resume()


def _check_same_plan(recorded: str, plan: Plan, run_id: str) -> None:
    """Refuse to resume a run with another plan file than the one it ran.

    ``tek run b.csv --resume RUN`` where RUN ran ``a.csv`` is a slip (the run
    id of another plan): it would rewrite that run's history with b's tasks.
    A plan file that moved (the recorded one is gone) may resume it.

    Raises:
        StoreError: the recorded file still exists and is another file.
    """
    if plan.path is None or not recorded:
        return
    old = Path(recorded)
    try:
        same = old.samefile(plan.path)
    except OSError:  # the recorded file is gone (moved): the new one may resume
        return
    if not same:
        raise StoreError(f"run {run_id} ran {recorded}, not {plan.path}: resume it with its own "
                         f"plan (or leave PLAN out)")


def stop_orphans(run_id: str, attempts: set[tuple[str, int]], grace_s: float = 5.0) -> int:
    """Stop task processes that outlived a crashed run, before it is resumed.

    When tek is killed, its tasks' process groups live on (they are their own
    sessions). Left alone they would race their own rerun. A process is
    stopped only if its environment names this run and one of the attempts
    the journal holds open (``TEK_RUN_ID``, ``TEK_TASK_ID``, ``TEK_ATTEMPT``),
    or a sub-plan run of one (``TEK_RUN_ID`` ``<run>/<task>...``), so a
    recycled pid is never touched. Its whole group gets SIGTERM, then
    SIGKILL after ``grace_s``.

    Returns:
        How many of those attempts still had processes.
    """
    import psutil

    wanted = {(tid, str(n)) for tid, n in attempts}
    # A sub-plan task's processes run as run `<run>/<task>` (deeper: `<run>/<task>/...`).
    nested = {f"{run_id}/{tid}": (tid, str(n)) for tid, n in attempts}
    found: dict[int, list[psutil.Process]] = {}
    hit: set[tuple[str, str]] = set()
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            rid = env.get("TEK_RUN_ID", "")
            if rid == run_id:
                key: tuple[str, str] | None = (env.get("TEK_TASK_ID", ""), env.get("TEK_ATTEMPT", ""))
                key = key if key in wanted else None
            else:  # `<run>/<task>`, or deeper: the sub-plan of plan task <task>
                key = nested.get("/".join(rid.split("/")[:2]))
            if key is not None:
                found.setdefault(os.getpgid(proc.pid), []).append(proc)
                hit.add(key)
        except (psutil.Error, OSError):
            continue  # gone, or not ours to read
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        procs = [p for group in found.values() for p in group]
        _, alive = psutil.wait_procs(procs, timeout=grace_s if sig == signal.SIGTERM else 5)
        if not alive:
            break
    return len(hit)
