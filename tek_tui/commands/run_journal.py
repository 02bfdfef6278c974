"""``tek run``'s journal: the flags and the run recorded in ``core.store``.

``tek_tui.commands.run`` adds :func:`add_journal_args` to its parser, reads
the plan named by :func:`plan_path_for` and runs it with
:func:`run_journaled`: journal on by default (``$TEK_HOME/tek.db`` or
``--store PATH``), ``--no-journal`` to skip it. ``--resume [RUN_ID|last]``
and ``--from TASK`` rerun part of an earlier run (see ``core.resume``)
through :func:`run_resumed`, with the run's recorded options for every
option not given again.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tek_tui.commands.runs import store_arg

if TYPE_CHECKING:
    from core.engine import RunOptions
    from core.journal import ResumeTarget, RunJournal
    from core.store import Store


def add_journal_args(p: argparse.ArgumentParser) -> None:
    """Add ``tek run``'s journal flags: ``--store``, ``--no-journal``, ``--resume``, ``--from``."""
    store_arg(p)
    p.add_argument("--no-journal", action="store_true", help="do not record this run")
    p.add_argument(
        "--resume", nargs="?", const="last", metavar="RUN_ID|last",
        help="rerun what did not succeed in an earlier run (default: the last run of PLAN; "
        "PLAN may be left out: the run's own plan file is read), with the options it ran "
        "with: only the flags given again change them",
    )  # fmt: skip
    p.add_argument(
        "--from", dest="from_tasks", action="append", default=[], metavar="TASK",
        help="with --resume (implied: last): rerun TASK and everything downstream of it",
    )  # fmt: skip


def resume_wanted(args: argparse.Namespace) -> str | None:
    """The run ``tek run`` resumes (``--resume``; ``--from`` implies ``last``), or None."""
    return args.resume or ("last" if getattr(args, "from_tasks", None) else None)


def plan_path_for(args: argparse.Namespace) -> str:
    """The plan file ``tek run`` (or ``tek tui``) should read: PLAN, or the resumed run's own.

    ``tek run --resume plan.csv`` is read as PLAN plus ``--resume last``
    (argparse would otherwise take the file for the run id). A resume names
    its run by id from here on (``args.resume``), so what reads the journal
    later resumes that very run; see :func:`resume_plan_path` for which file.

    Raises:
        TekError: no PLAN and nothing to resume, the run has no plan file,
            no journal, no such run.
    """
    from core.errors import TekError

    _plan_from_resume(args)
    if not resume_wanted(args):
        if args.plan is None:
            raise TekError("PLAN is required (or --resume [RUN_ID|last] to rerun a run's plan)")
        return str(args.plan)
    with _journal_to_resume(args, "--resume and --from need") as store:
        return resume_plan_path(store, args)


def _plan_from_resume(args: argparse.Namespace) -> None:
    if args.plan is None and args.resume and args.resume != "last" and Path(args.resume).is_file():
        args.plan, args.resume = args.resume, "last"


def resume_plan_path(store: Store, args: argparse.Namespace) -> str:
    """The plan file a resume reads; pins ``args.resume`` to the run's id.

    Without PLAN, the run's own file. With PLAN, PLAN; but where PLAN is the
    file the run recorded, reached by another path (the symlink's target,
    or the link itself), the recorded path: a task's working directory is
    its plan file's folder, and every attempt of a run runs in the same one.
    (A run journaled by an older tek recorded its plan resolved: it goes on
    in the target's folder.) PLAN that does not exist is returned as it is,
    for its read to say so.

    Raises:
        StoreError: no such run; without PLAN, a run with no plan file or
            one whose file is gone.
    """
    from core.errors import StoreError

    resume = resume_wanted(args) or "last"
    if args.plan is not None:
        given = Path(args.plan).absolute()
        if not given.is_file():
            return str(args.plan)
        run = store.get_run(store.resolve_run(resume, plan_path=str(given) if resume == "last" else None))
        args.resume = run.id
        recorded = run.plan_path
        if recorded and recorded != str(given) and _same_file(recorded, given):
            return recorded
        return str(args.plan)
    run = store.get_run(store.resolve_run(resume))
    if not run.plan_path:
        raise StoreError(f"run {run.id} has no plan file to read; give PLAN")
    if not Path(run.plan_path).exists():
        raise StoreError(f"run {run.id}'s plan file {run.plan_path} is gone; if it moved: "
                         f"tek run NEW_PATH --resume {run.id}")
    args.resume = run.id
    return run.plan_path


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run_resumed(options: RunOptions, args: argparse.Namespace) -> int:
    """``tek run --resume``/``--from`` (``--dry-run`` too): resume a journaled run.

    The journal is opened once, read-only until the engine accepts the run:
    the run and its plan file (:func:`resume_plan_path`), every refusal of a
    resume (``core.journal.find_resume``: a live run, another plan file, an
    unknown ``--from`` task), then the options: a flag given now wins, then
    what the run recorded, then the config file, then the defaults
    (``core.run_options.resumed_options``). A dry run stops there, having
    refused what the resume would refuse and written nothing.

    Raises:
        TekError: as above, or a bad journal or plan.
    """
    from core.journal import find_resume
    from core.run_options import resumed_options
    from tek_tui.commands.run import check_log_folder, dry_run, given_options, note_fd_limit
    from tek_tui.commands.validate import read_cli_plan

    _plan_from_resume(args)
    if args.plan is not None and not Path(args.plan).is_file():
        read_cli_plan(str(args.plan))  # says what is wrong with PLAN (raises)
    # The dry run checks every page, as the readers do; the resume does
    # it before it writes anything (Store.reopen_run).
    store = _journal_to_resume(args, "--resume and --from need", check=args.dry_run)
    try:
        plan = read_cli_plan(resume_plan_path(store, args))
        target = find_resume(plan, store=store, resume=args.resume, from_tasks=args.from_tasks)
        options = resumed_options(target.run.options, options, given_options(args),
                                  run_id=target.run.id)
        if args.dry_run:
            from core.engine import create_run

            d = target.decision
            create_run(plan, options, run_id="dry-run", completed=d.completed, skipped=d.skipped)
            return dry_run(plan, as_json=args.json, resume=(target.run.id, d))
        check_log_folder()  # before the journal records a run that could not log
        note_fd_limit(options)
        return run_journaled(plan, options, args, store=store, resume=target)
    finally:
        store.close()  # (idempotent: the journal closes it after the run)


def run_journaled(
    plan: Any, options: Any, args: argparse.Namespace, *, store: Store | None = None,
    resume: ResumeTarget | None = None,
) -> int:
    """Run ``plan`` through ``tek run``'s ``execute`` with the journal on.

    A new run is recorded before it starts; a resume (``resume``, found in
    ``store`` by :func:`run_resumed`) reopens the earlier run (same id,
    attempt numbers go on), closes the attempts its crash left open as
    ``interrupted`` and hands the engine the tasks that already succeeded.
    Queued batches are applied once the run is over.

    Raises:
        TekError: bad journal, unknown run or ``--from`` task, run still live.
    """
    import dataclasses

    from core.errors import PlanError, TekError
    from core.journal import create_journal
    from core.store import open_store
    from tek_tui.commands.run import execute

    if args.no_journal:
        if resume is not None:
            raise TekError("--resume and --from need the journal: drop --no-journal")
        return execute(plan, options, args)
    if store is None:
        store = open_store(args.store)
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


def _journal_to_resume(args: argparse.Namespace, flags: str, *, check: bool = True) -> Store:
    """The journal a resume reads (``flags``: how the message names the options).

    Opened as the readers open it (``tek runs``): a journal this user may
    not write still opens (the resume then says why it cannot write it).
    ``check`` checks every page first, as they do; the resume itself checks
    them before it writes anything (``Store.reopen_run``), so it need not.

    Raises:
        TekError: ``--no-journal`` was given, or there is no journal yet.
    """
    from core.errors import StoreError, TekError
    from core.paths import default_store_path
    from core.store import open_store

    if args.no_journal:
        raise TekError(f"{flags} the journal: drop --no-journal")
    path = Path(args.store).expanduser() if args.store else default_store_path()
    if not path.exists() and (args.store or args.plan is not None):
        raise StoreError(f"{path}: no journal here (no run has been recorded yet)")
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        raise StoreError("nothing to resume: the journal is empty")
    store = open_store(path, create=False)
    try:  # a damaged page would make what is read wrong, silently (~2 ms per MB)
        if check:
            store.check_intact()
    except BaseException:
        store.close()
        raise
    return store


def _earlier(journal: RunJournal) -> dict[str, tuple[int | None, float | None]]:
    """Exit code and duration of the last attempt of each task the resume kept."""
    _, _, attempts = journal.store.read_run(journal.run_id)
    out: dict[str, tuple[int | None, float | None]] = {}
    for a in attempts:  # ordered by task, then attempt: the last one wins
        if a.task_id in journal.completed:
            out[a.task_id] = (a.exit_code, a.duration_s)
    return out
