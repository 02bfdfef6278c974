"""``tek run``'s journal: the flags and the run recorded in ``core.store``.

``tek_tui.commands.run`` adds :func:`add_journal_args` to its parser, reads
the plan named by :func:`plan_path_for` and runs it with
:func:`run_journaled`: journal on by default (``$TEK_HOME/tek.db`` or
``--store PATH``), ``--no-journal`` to skip it, ``--resume [RUN_ID|last]``
and ``--from TASK`` to rerun part of an earlier run (see ``core.resume``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tek_tui.commands.runs import open_journal, store_arg

if TYPE_CHECKING:
    from core.journal import RunJournal
    from core.store import Store


def add_journal_args(p: argparse.ArgumentParser) -> None:
    """Add ``tek run``'s journal flags: ``--store``, ``--no-journal``, ``--resume``, ``--from``."""
    store_arg(p)
    p.add_argument("--no-journal", action="store_true", help="do not record this run")
    p.add_argument(
        "--resume", nargs="?", const="last", metavar="RUN_ID|last",
        help="rerun what did not succeed in an earlier run (default: the last run of PLAN; "
        "PLAN may be left out: the run's own plan file is read)",
    )  # fmt: skip
    p.add_argument(
        "--from", dest="from_tasks", action="append", default=[], metavar="TASK",
        help="with --resume (implied: last): rerun TASK and everything downstream of it",
    )  # fmt: skip


def plan_path_for(args: argparse.Namespace) -> str:
    """The plan file ``tek run`` should read: PLAN, or the resumed run's own.

    ``tek run --resume plan.csv`` is read as PLAN plus ``--resume last``
    (argparse would otherwise take the file for the run id).

    Raises:
        TekError: no PLAN and nothing to resume, or the run has no plan file.
    """
    from core.errors import StoreError, TekError

    if args.plan is None and args.resume and args.resume != "last" and Path(args.resume).is_file():
        args.plan, args.resume = args.resume, "last"
    if args.plan is not None:
        return str(args.plan)
    resume = args.resume or ("last" if args.from_tasks else None)  # --from implies it
    if not resume:
        raise TekError("PLAN is required (or --resume [RUN_ID|last] to rerun a run's plan)")
    with _journal_to_resume(args, "--resume needs") as store:
        run = store.get_run(store.resolve_run(resume))
    if not run.plan_path:
        raise StoreError(f"run {run.id} has no plan file to read; give PLAN")
    if not Path(run.plan_path).exists():
        raise StoreError(f"run {run.id}'s plan file {run.plan_path} is gone; if it moved: "
                         f"tek run NEW_PATH --resume {run.id}")
    args.resume = run.id
    return run.plan_path


def resume_preview(plan: Any, args: argparse.Namespace) -> tuple[str, Any] | None:
    """For ``--dry-run --resume``: the run and what a resume would rerun, read only.

    Returns:
        (run id, :class:`core.resume.ResumeDecision`), or None without
        ``--resume`` or ``--from``.

    Raises:
        TekError: no journal, unknown run or ``--from`` task.
    """
    from core.resume import decide_resume

    resume = args.resume or ("last" if args.from_tasks else None)
    if not resume:
        return None
    with _journal_to_resume(args, "--resume and --from need") as store:
        plan_path = str(plan.path.resolve()) if plan.path is not None and resume == "last" else None
        run_id = store.resolve_run(resume, plan_path=plan_path)
        tasks = store.read_run(run_id)[1]
    return run_id, decide_resume(plan, tasks, args.from_tasks)


def run_journaled(plan: Any, options: Any, args: argparse.Namespace) -> int:
    """Run ``plan`` through ``tek run``'s ``execute`` with the journal on.

    A new run is recorded before it starts; ``--resume`` reopens the earlier
    run (same id, attempt numbers go on), closes the attempts its crash left
    open as ``interrupted`` and hands the engine the tasks that already
    succeeded. Queued batches are applied once the run is over.

    Raises:
        TekError: bad journal, unknown run or ``--from`` task, run still live.
    """
    import dataclasses

    from core.errors import PlanError, TekError
    from core.journal import create_journal
    from core.store import open_store
    from tek_tui.commands.run import execute

    resume = args.resume or ("last" if args.from_tasks else None)
    if args.no_journal:
        if resume:
            raise TekError("--resume and --from need the journal: drop --no-journal")
        return execute(plan, options, args)
    store = open_store(args.store, create=not resume)  # nothing to resume: write nothing
    try:
        # A resume changes the journal only once the engine has accepted the
        # options (create_run), so a typo in a flag leaves the run as it was.
        journal = create_journal(
            plan, store=store, options=dataclasses.asdict(options), resume=resume,
            from_tasks=args.from_tasks, defer_reopen=True,
        )  # fmt: skip
    except BaseException:
        store.close()
        raise

    def reopen() -> None:
        nonlocal journal
        journal.ready()
        journal = journal.commit_resume()
        if journal.decision is not None:
            d = journal.decision
            print(
                f"tek: resuming run {journal.run_id}: {len(d.rerun)} to run, "
                f"{len(d.completed)} already succeeded, {journal.interrupted} interrupted "
                f"attempt(s) closed ({journal.stopped} still running: stopped)",
                file=sys.stderr,
            )

    try:
        try:
            return execute(
                plan, options, args, recorder=journal.recorder, run_id=journal.run_id,
                completed=journal.completed, attempts_so_far=journal.attempts_so_far,
                skipped=journal.skipped, on_created=reopen, earlier=lambda: _earlier(journal),
            )  # fmt: skip
        except PlanError:  # create_run refused the options: the run never started
            journal.discard()
            raise
    finally:
        journal.close()


def _journal_to_resume(args: argparse.Namespace, flags: str) -> Store:
    """The journal a resume reads (``flags``: how the message names the options).

    Raises:
        TekError: ``--no-journal`` was given, or there is no journal yet.
    """
    from core.errors import StoreError, TekError

    if args.no_journal:
        raise TekError(f"{flags} the journal: drop --no-journal")
    store = open_journal(args)
    if store is None:
        raise StoreError("nothing to resume: the journal is empty")
    return store


def _earlier(journal: RunJournal) -> dict[str, tuple[int | None, float | None]]:
    """Exit code and duration of the last attempt of each task the resume kept."""
    _, _, attempts = journal.store.read_run(journal.run_id)
    out: dict[str, tuple[int | None, float | None]] = {}
    for a in attempts:  # ordered by task, then attempt: the last one wins
        if a.task_id in journal.completed:
            out[a.task_id] = (a.exit_code, a.duration_s)
    return out
