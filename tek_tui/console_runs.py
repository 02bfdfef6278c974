"""The console's runs and the journal: a new journaled run of a plan, or a resumed one.

The console builds its runs waiting for ``s`` and kept open after their last
task (for retries). A new run is journaled when the journal can be opened
(else it runs without one, and the console says why); a resumed run is the
journaled run reopened as ``tek run --resume`` reopens it, so its errors
(no journal, no such run, a run still live) are the caller's to show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from core.errors import TekError

if TYPE_CHECKING:  # the engine is imported when a run is built, not with the app
    from core.engine import Run, RunOptions
    from core.journal import RunJournal
    from core.plan import Plan


@dataclass(frozen=True, slots=True)
class ConsoleRun:
    """A run for the console to show, with its journal (close it when done).

    Attributes:
        run: the engine's run, waiting for ``Start``.
        journal: its journal, or None when it runs without one.
        notice: what to tell the user (a journal problem, what a resume reruns).
        times: for a resume, ``(started, ended)`` of the last attempt of each
            task that succeeded before (the engine's snapshot has no times
            for them; the console shows their durations).
    """

    run: Run
    journal: RunJournal | None
    notice: str = ""
    times: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)


def console_options(options: RunOptions) -> RunOptions:
    """``options`` as every console run has them: waits for ``s``, stays open for retries."""
    return dataclasses.replace(options, wait_for_start=True, stay_open=True)


def recorded(options: RunOptions) -> dict[str, Any]:
    """What the journal keeps of a console run's options (a later resume reuses them)."""
    from core.run_options import RECORDED

    return {**{k: v for k, v in dataclasses.asdict(options).items() if k in RECORDED},
            "console": True}


async def new_run(plan: Plan, options: RunOptions) -> ConsoleRun:
    """A new run of ``plan``, journaled unless the journal cannot be opened.

    The journal's work (opening it, checking every page, the run's rows) is
    done in a thread: the console keeps drawing meanwhile.

    Raises:
        TekError: the engine refuses the plan or options.
    """
    from core.engine import create_run

    options = console_options(options)
    try:
        # Shielded: a journal made for a console that quit meanwhile must
        # still reach the app, which closes it (and drops the run) on exit.
        with anyio.CancelScope(shield=True):
            journal = await anyio.to_thread.run_sync(_new_journal, plan, options)
    except (ImportError, TekError) as exc:
        return ConsoleRun(create_run(plan, options), None, f"running without a journal: {exc}")
    try:
        run = create_run(plan, options, run_id=journal.run_id, recorder=journal.recorder)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(journal.close)  # never started: leaves no run
        raise
    return ConsoleRun(run, journal)


async def resumed_run(
    plan: Plan, options: RunOptions, resume: str, given: Collection[str] = ()
) -> ConsoleRun:
    """The journaled run ``resume`` (an id or ``last``) of ``plan``, reopened to resume.

    It runs with the options the run recorded, but for those in ``given``
    (given on the command line: ``options`` has them), as ``tek run
    --resume`` does. The journal's reads and writes are done in a thread, as
    for :func:`new_run`.

    Raises:
        TekError: no journal, no such run, a run of another plan file, one
            still running, or options the engine refuses (then nothing changed).
    """
    from core.engine import create_run
    from core.journal import create_journal, find_resume
    from core.run_options import resumed_options
    from core.store import open_store

    with anyio.CancelScope(shield=True):  # as in new_run: all of it reaches the app, or none
        store = await anyio.to_thread.run_sync(lambda: open_store(create=False))
        try:
            target = await anyio.to_thread.run_sync(
                lambda: find_resume(plan, store=store, resume=resume))
            options = console_options(resumed_options(target.run.options, options, given,
                                                      run_id=target.run.id))
            journal = await anyio.to_thread.run_sync(lambda: create_journal(
                plan, store=store, resume=target, defer_reopen=True, options=recorded(options)))
            run = create_run(plan, options, run_id=journal.run_id, recorder=journal.recorder,
                             completed=journal.completed, attempts_so_far=journal.attempts_so_far,
                             skipped=journal.skipped)
            if (reopen := journal.reopen) is not None:
                # Reopened at `s`, before any task starts (orphans stopped,
                # open attempts closed); left before, the run stays as it was.
                journal.recorder.hold_until_start()

                async def reopen_at_start() -> object:
                    with anyio.CancelScope(shield=True):
                        return await anyio.to_thread.run_sync(reopen)

                run.before_start = reopen_at_start
            times = await anyio.to_thread.run_sync(_succeeded_times, journal)
        except BaseException:
            store.close()
            raise
    d = journal.decision
    notice = "" if d is None else (f"resuming run {journal.run_id}: {len(d.rerun)} to run, "
                                   f"{len(d.completed)} already succeeded; s starts")
    return ConsoleRun(run, journal, notice, times)


def _succeeded_times(journal: RunJournal) -> dict[str, tuple[float, float | None]]:
    """``(started, ended)`` of the last attempt of each task the resume keeps as done."""
    if not journal.completed:
        return {}
    _, _, attempts = journal.store.read_run(journal.run_id)
    # Attempts come in (task, attempt) order: the last one of a task wins.
    return {a.task_id: (a.started_ts, a.ended_ts) for a in attempts
            if a.task_id in journal.completed}


def _new_journal(plan: Plan, options: RunOptions) -> RunJournal:
    from core.journal import create_journal
    from core.store import open_store

    store = open_store()
    try:
        journal = create_journal(plan, store=store, options=recorded(options))
        journal.ready()  # a damaged journal is refused here, before the run exists
    except BaseException:
        store.close()
        raise
    return journal
