"""``tek run PLAN``: run a plan headless, with a live view on a terminal.

Flow (one function per step, so the journal options can hook in):
:func:`_run` reads the plan and the flags into a :class:`~core.engine.RunOptions`
(:func:`options_from_args`), then :func:`execute` runs it with an optional
recorder, run id and resume state, shows progress (rich live view on a TTY,
plain timestamped lines otherwise, nothing but the summary with ``--json``)
and turns the summary into the exit code. Flags not given default to
``run_*`` keys of the user's config file (``run_jobs = 8``), then to the
engine's defaults; a resume (``--resume``, ``--from``) takes them from the
run's recorded options first (``tek_tui.commands.run_journal.run_resumed``).

Signals: the first SIGINT, SIGTERM or SIGHUP stops dispatching and cancels
the run (running tasks get SIGTERM, then SIGKILL after ``--grace``), their
state is recorded, exit 130. A second signal SIGKILLs every task's process
group at once. Bad flag values are one ``tek: ...`` line and exit 2 (they are
parsed here, not by argparse, which would print its usage too).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from core.errors import TekError

if TYPE_CHECKING:
    from core.engine import RunOptions, RunSummary
    from core.plan import Plan
    from core.recorder import Recorder

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def register(sub: Any) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="run a plan headless (live view on a terminal)",
        description="Run a plan's tasks in dependency order. Exit codes: 0 all succeeded, "
        "1 a task failed, 2 bad input, 130 interrupted.",
    )
    p.add_argument("plan", nargs="?", metavar="PLAN",
                   help="plan file (CSV); optional with --resume")
    add_option_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the order tasks would start in")
    p.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.add_argument("-d", "--detach", action="store_true",
                   help="run in the background (not stopped when the terminal closes); "
                   "prints the run id to attach to with `tek tui --attach`")
    from tek_tui.commands.run_journal import add_journal_args  # journal flags (issue 4)

    add_journal_args(p)
    p.set_defaults(func=_run)


def add_option_args(p: argparse.ArgumentParser) -> None:
    """The engine's options as flags, for ``tek run`` and ``tek tui`` alike."""
    p.add_argument("-j", "--jobs", metavar="N",
                   help="tasks at once: every pool's size, and the CPU capacity unless --cpus")
    p.add_argument("--pool", metavar="NAME=SIZE", action="append", default=[],
                   help="size of one pool (repeatable)")
    p.add_argument("--cpus", metavar="N", help="CPU capacity (default: -j, else the machine's)")
    p.add_argument("--gpus", metavar="N", help="GPU capacity (default: NVML's count)")
    p.add_argument("--memory-mb", metavar="MIB", help="memory capacity (default: total memory)")
    p.add_argument("--memory-floor-mb", metavar="MIB",
                   help="pause admission while available memory is below this (default 256)")
    p.add_argument("--grace", metavar="SECONDS",
                   help="SIGTERM to SIGKILL grace for stopped tasks (default 5)")
    p.add_argument("--fail-fast", action=argparse.BooleanOptionalAction, default=None,
                   help="cancel everything after the first failure (default: keep going; "
                   "a resume: as the run was)")


#: Most GPUs ``--gpus`` accepts: the scheduler keeps one slot per GPU.
MAX_GPUS = 1024


def _number(flag: str, text: str | None, kind: type, minimum: float,
            maximum: float | None = None) -> Any:
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise TekError(f"{flag} {text}: must be {what}") from None
    if not math.isfinite(value):  # float("nan") and float("inf") parse
        raise TekError(f"{flag} {text}: must be a finite number")
    if value < minimum:
        raise TekError(f"{flag} {text}: must be at least {minimum:g}")
    if maximum is not None and value > maximum:
        raise TekError(f"{flag} {text}: must be at most {maximum:g}")
    return value


def parse_pool_sizes(specs: list[str]) -> dict[str, int]:
    """``["gpu=2", "io=8"]`` -> ``{"gpu": 2, "io": 8}``.

    Raises:
        TekError: a spec without ``=``, an empty name or a bad size.
    """
    sizes: dict[str, int] = {}
    for spec in specs:
        name, eq, size = spec.partition("=")
        if not eq or not name.strip():
            raise TekError(f"--pool {spec}: expected NAME=SIZE, e.g. --pool gpu=2")
        try:
            sizes[name.strip()] = int(size)
        except ValueError:
            raise TekError(f"--pool {spec}: SIZE must be a whole number") from None
        if sizes[name.strip()] < 1:  # 0 would hold the pool forever: fine live, not here
            raise TekError(f"--pool {spec}: SIZE must be at least 1")
    return sizes


#: Config keys (flat, in ``config.toml``) giving defaults for flags not given.
CONFIG_KEYS = {
    "jobs": "run_jobs", "cpus": "run_cpus", "gpus": "run_gpus", "memory_mb": "run_memory_mb",
    "memory_floor_mb": "run_memory_floor_mb", "grace": "run_grace_s",
}  # fmt: skip


def options_from_args(args: argparse.Namespace) -> RunOptions:
    """The engine options the flags ask for (every value checked).

    A flag not given takes its value from the user's config file
    (``run_jobs = 8``, ``run_cpus``, ``run_gpus``, ``run_memory_mb``,
    ``run_memory_floor_mb``, ``run_grace_s``), else the engine's default.

    Raises:
        TekError: a flag or config value is bad.
    """
    from core.engine import RunOptions

    config = _run_config()

    def pick(flag: str, attr: str, kind: type, minimum: float, maximum: float | None = None) -> Any:
        text = getattr(args, attr)
        if text is not None:
            return _number(flag, text, kind, minimum, maximum)
        key = CONFIG_KEYS[attr]
        if key in config:
            from core.paths import config_path

            return _number(f"{config_path()}: {key} =", str(config[key]), kind, minimum, maximum)
        return None

    defaults = RunOptions()
    floor = pick("--memory-floor-mb", "memory_floor_mb", int, 0)
    grace = pick("--grace", "grace", float, 0)
    return RunOptions(
        jobs=pick("-j", "jobs", int, 1),
        pool_sizes=parse_pool_sizes(args.pool),
        cpus=pick("--cpus", "cpus", float, 0.001),
        gpus=pick("--gpus", "gpus", int, 0, MAX_GPUS),
        memory_mb=pick("--memory-mb", "memory_mb", int, 0),
        memory_floor_mb=defaults.memory_floor_mb if floor is None else floor,
        grace_s=defaults.grace_s if grace is None else grace,
        fail_fast=bool(args.fail_fast),
    )


#: ``RunOptions`` fields set by flags other than ``--pool`` and ``--fail-fast``: field -> flag's attribute.
_FLAG_OF = {"jobs": "jobs", "cpus": "cpus", "gpus": "gpus", "memory_mb": "memory_mb",
            "memory_floor_mb": "memory_floor_mb", "grace_s": "grace"}  # fmt: skip


def given_options(args: argparse.Namespace) -> set[str]:
    """``RunOptions`` fields given by a flag on the command line (not by config or default).

    A resume takes the others from the run's recorded options
    (``core.run_options.resumed_options``).
    """
    given = {name for name, attr in _FLAG_OF.items() if getattr(args, attr) is not None}
    if args.fail_fast is not None:  # --fail-fast or --no-fail-fast
        given.add("fail_fast")
    if args.pool:
        given.add("pool_sizes")
    return given


def _run_config() -> dict[str, Any]:
    """The ``run_*`` keys of the user's config.

    Raises:
        ConfigError: the file is not valid TOML, or has a ``run_`` key tek
            does not know (a typo that would otherwise be ignored).
    """
    from tek_tui.config import ConfigError, load_config

    data = load_config()
    known = set(CONFIG_KEYS.values())
    for key in data:
        if key.startswith("run_") and key not in known:
            from core.paths import config_path

            raise ConfigError(f"{config_path()}: {key}: not a setting of tek run "
                              f"(settings: {', '.join(sorted(known))})")
    return {k: v for k, v in data.items() if k in known}


def _run(args: argparse.Namespace) -> int:
    from tek_tui.commands.detach import detach, take_ready_fd
    from tek_tui.commands.run_journal import (
        plan_path_for,
        resume_wanted,
        run_journaled,
        run_resumed,
    )
    from tek_tui.commands.validate import read_cli_plan

    args.ready_fd = take_ready_fd()  # set when `tek run -d` started this one
    if args.detach and args.ready_fd is None:  # the started one never detaches again
        if args.dry_run:
            raise TekError("--detach runs the plan: leave --dry-run out")
        return detach(args.argv)
    options = options_from_args(args)  # flags first: a typo fails before the plan is read
    if resume_wanted(args):  # the run's recorded options, its plan file, the same refusals
        return run_resumed(options, args)
    plan = read_cli_plan(plan_path_for(args))
    if args.dry_run:
        from core.engine import create_run

        create_run(plan, options, run_id="dry-run")  # refusals
        return dry_run(plan, as_json=args.json)
    check_log_folder()  # before the journal records a run that could not log
    note_fd_limit(options)
    return run_journaled(plan, options, args)  # journal on unless --no-journal


def check_log_folder() -> None:
    """Make sure task logs can be written under ``$TEK_HOME/runs``.

    The engine opens each attempt's log as the attempt starts; a folder it
    cannot write would fail every task one by one (or worse, inside a
    callback), so ``tek run`` says it once, up front.

    Raises:
        TekError: the folder cannot be created or written.
    """
    from core.paths import runs_dir

    path = runs_dir()
    if path.exists() and not path.is_dir():
        raise TekError(f"{path}: is not a folder: tek keeps task logs there "
                       "(move it away, or set TEK_HOME to another folder)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TekError(f"{path}: cannot create the folder for task logs: "
                       f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        why = "read-only file system" if os.statvfs(path).f_flag & os.ST_RDONLY else "permission denied"
        raise TekError(f"{path}: cannot write task logs here: {why} "
                       "(set TEK_HOME to a writable folder)")


def note_fd_limit(options: RunOptions) -> None:
    """Say on stderr when the open-file limit lets fewer tasks run at once than asked.

    The tasks over it wait for a free slot (:mod:`core.agents.fd_gate`);
    without a word, a user would wonder why ``-j 500`` runs fewer.
    """
    from core.agents.fd_gate import capacity_for
    from core.process import raise_fd_limit

    asked = max([options.jobs or 0, *options.pool_sizes.values()])
    limit = raise_fd_limit()
    fits = capacity_for(limit)
    if asked > fits:
        print(f"tek: the open-file limit ({limit}) lets {fits} shell tasks run at once; "
              f"the others wait for a free slot (its hard limit: ulimit -Hn)", file=sys.stderr)


def dry_run(plan: Plan, *, as_json: bool = False, resume: tuple[str, Any] | None = None) -> int:
    """Print the order tasks would start in (unlimited workers); exit code 0.

    With ``resume`` (run id, decision), only the tasks the resume would rerun,
    each with why; JSON adds ``resume``: ``run_id``, ``completed`` and ``why``.
    """
    from core.scheduler import start_order

    order = start_order(plan)
    why: Mapping[str, str] = {}
    if resume is not None:
        why = resume[1].why
        order = [tid for tid in order if tid in resume[1].rerun]
    if as_json:
        out: dict[str, Any] = {"order": order}
        if resume is not None:
            out["resume"] = {"run_id": resume[0], "completed": sorted(resume[1].completed),
                             "skipped": sorted(resume[1].skipped), "why": dict(why)}
        print(json.dumps(out))
        return EXIT_OK
    if resume is not None:
        kept = f", {len(resume[1].skipped)} skipped by you (kept skipped)" if resume[1].skipped else ""
        print(f"resume of run {resume[0]}: {len(order)} to run, "
              f"{len(resume[1].completed)} already succeeded{kept}")
    for n, tid in enumerate(order, 1):
        t = plan.task(tid)
        reason = f"  {why[tid]}" if tid in why else ""
        print(f"{n:>4}  {tid}  ({t.agent}, pool {t.pool_name}){reason}")
    return EXIT_OK


def execute(
    plan: Plan,
    options: RunOptions,
    args: argparse.Namespace,
    *,
    recorder: Recorder | None = None,
    run_id: str | None = None,
    completed: Collection[str] = (),
    attempts_so_far: Mapping[str, int] | None = None,
    skipped: Collection[str] = (),
    on_created: Callable[[], None] | None = None,
    earlier: Callable[[], Mapping[str, tuple[int | None, float | None]]] | None = None,
) -> int:
    """Run ``plan`` with a view chosen from ``args``; returns the exit code.

    Args:
        plan: the plan.
        options: engine options.
        args: the parsed flags (``json``, ``plain``).
        recorder: journal hook, awaited before events are shown.
        run_id: the run's id (default: a new one).
        completed: tasks already succeeded (resume).
        attempts_so_far: attempt numbering to continue from (resume).
        skipped: tasks the user skipped before, kept skipped (resume).
        on_created: called once the engine has accepted the plan and options,
            before anything runs (a resume reopens its journal there).
        earlier: for ``--json`` after a resume, ``(exit_code, duration_s)`` of
            the tasks that had already succeeded (the engine never ran them).
    """
    import anyio

    from core.engine import create_run

    run = create_run(plan, options, run_id=run_id, recorder=recorder, completed=completed,
                     attempts_so_far=attempts_so_far, skipped=skipped)
    if on_created is not None:
        on_created()
    gc.enable()  # the CLI starts with it off (imports only)
    try:
        summary, interrupted = anyio.run(_drive, run, args)
    except BaseExceptionGroup as group:
        # Task groups wrap errors; a TekError (journal) must reach the CLI
        # bare, to be printed as one line with exit code 2.
        tek_errors, _ = group.split(TekError)
        if tek_errors is None:
            raise
        raise _first_leaf(tek_errors) from None
    if args.json:
        if earlier is not None and completed:
            summary = _with_earlier(summary, earlier())
        try:
            print(json.dumps(summary.to_json()), flush=True)
        except OSError as exc:  # the reader has gone, or a full disk; the exit code still tells
            from tek_tui.cli import output_lost

            output_lost(sys.stdout, exc)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.status.value == "succeeded" else EXIT_FAILED


def _with_earlier(
    summary: RunSummary, earlier: Mapping[str, tuple[int | None, float | None]]
) -> RunSummary:
    """The summary with exit codes and durations of tasks a resume kept as succeeded."""
    tasks = dict(summary.tasks)
    for tid, (code, duration) in earlier.items():
        result = tasks.get(tid)
        if result is not None and result.exit_code is None and result.duration_s is None:
            tasks[tid] = result._replace(exit_code=code, duration_s=duration)
    return dataclasses.replace(summary, tasks=tasks)


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _drive(run: Any, args: argparse.Namespace) -> tuple[RunSummary, bool]:
    import anyio

    from core.run_socket import serving
    from tek_tui.commands.detach import report_ready
    from tek_tui.live_view import open_view

    interrupted = False

    async def watch_signals(scope: anyio.CancelScope) -> None:
        nonlocal interrupted
        from core.errors import ControlError
        from core.events import CancelRun
        from core.process import kill_all

        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
            async for signum in sigs:
                if not interrupted:
                    interrupted = True
                    print(f"tek: {signal.Signals(signum).name}: stopping tasks "
                          "(again to kill at once)", file=sys.stderr)
                    try:
                        await run.client().control(CancelRun())
                    except ControlError:
                        pass
                else:
                    kill_all()

    client = run.client()
    # Served for `tek tui --attach` while it runs (nothing to pay until a console attaches).
    async with serving(client, run.run_id) as served, anyio.create_task_group() as tg:
        report_ready(getattr(args, "ready_fd", None), run.run_id, served)  # for `tek run -d`
        tg.start_soon(watch_signals, tg.cancel_scope)
        async with open_view(client, live=_live_wanted(args), quiet=args.json) as view:
            tg.start_soon(view.consume, client.events())
            summary = await run.run()
        tg.cancel_scope.cancel()
    return summary, interrupted


def _live_wanted(args: argparse.Namespace) -> bool:
    stream = sys.stderr if args.json else sys.stdout
    return not args.plain and stream.isatty()
