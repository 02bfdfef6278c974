"""``tek runs``, ``tek show RUN``, ``tek logs RUN TASK`` and ``tek prune``: the journal's history.

The first three read the journal (``$TEK_HOME/tek.db`` or ``--store PATH``)
and never write to it: a missing journal is "no runs yet", a file that is not
a tek journal is one ``tek: ...`` line and exit 2, untouched. ``tek prune``
forgets old runs (``--keep N`` newest, and/or only those older than
``--older-than DAYS``; never a live one) and deletes their log folders
(``core.prune``); ``--dry-run`` lists them. Each read is one
short transaction, so they run beside a live run without "database is
locked" and never see half a batch.

``RUN`` is a run id, a unique prefix of one, or ``last``. ``tek logs
--follow`` tails the log of a run going on in another process: it prints
what is there, then what is appended, moves on to the task's next attempt
when it retries, and stops once the task has ended or the run's process has
finished or died.
"""

from __future__ import annotations

import argparse
import codecs
import gc
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.store import AttemptRecord, RunRecord, Store, TaskRecord

#: Seconds between two looks at a followed log and the journal.
FOLLOW_POLL_S = 0.2

_TERMINAL = {"succeeded", "failed", "cancelled", "skipped"}


def register(sub: Any) -> None:
    """Add the ``runs``, ``show`` and ``logs`` subcommands."""
    p = sub.add_parser("runs", help="list recorded runs, newest first",
                       description="List the journal's runs, newest first: id, status, start, "
                       "duration, counts by state and plan.")
    store_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("-n", "--limit", type=int, default=20, metavar="N", help="show N runs (0: all)")
    p.add_argument("--plan", metavar="PLAN", help="only runs of this plan file")
    p.set_defaults(func=_runs)

    p = sub.add_parser("show", help="one run, task by task",
                       description="One run: its plan, start, duration and resumes, then each task's "
                       "state, attempts, exit code, duration and reason.")
    store_arg(p)
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or 'last'")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_show)

    p = sub.add_parser("logs", help="print (or follow) a task's log",
                       description="Print a task's log (its last attempt unless --attempt); "
                       "--follow waits for more while the run goes on.")
    store_arg(p)
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or 'last'")
    p.add_argument("task", metavar="TASK", help="task id")
    p.add_argument("--attempt", type=int, metavar="N", help="attempt number (default: the last)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing as the log grows")
    p.set_defaults(func=_logs)

    p = sub.add_parser("prune", help="forget old runs and delete their logs",
                       description="Forget old runs and delete their logs. A run is kept when it "
                       "is one of the --keep N newest or newer than --older-than DAYS; a live "
                       "run always is.")
    store_arg(p)
    p.add_argument("--keep", type=int, metavar="N", help="keep the N newest runs")
    p.add_argument("--older-than", type=float, metavar="DAYS",
                   help="prune only runs started more than DAYS days ago")
    p.add_argument("--plan", metavar="PLAN", help="only runs of this plan file")
    p.add_argument("-n", "--dry-run", action="store_true", help="list what would go; change nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_prune)


def store_arg(p: argparse.ArgumentParser) -> None:
    """Add ``--store PATH`` (every command that reads or writes runs has it)."""
    p.add_argument("--store", metavar="PATH", help="journal file (default: $TEK_HOME/tek.db)")


def open_journal(args: argparse.Namespace) -> Store | None:
    """Open the journal for reading; None when it has nothing yet (missing or empty).

    Raises:
        StoreError: ``--store`` names a missing file, or the file is not a
            usable tek journal, or has a damaged page (the file is left untouched).
    """
    from core.errors import StoreError
    from core.paths import default_store_path, missing_home
    from core.store import open_store

    path = Path(args.store).expanduser() if args.store else default_store_path(create=False)
    if not path.exists():
        if args.store:
            raise StoreError(f"{path}: no journal here")
        if why := missing_home():
            raise StoreError(why)
        return None
    if path.is_file() and path.stat().st_size == 0:
        return None  # a journal being created this instant: nothing recorded yet
    store = open_store(path, create=False)
    try:  # a damaged page would make what is shown wrong, silently (~2 ms per MB)
        store.check_intact()
    except BaseException:
        store.close()
        raise
    return store


# ------------------------------------------------------------------- prune


def _prune(args: argparse.Namespace) -> int:
    from core.errors import TekError
    from core.prune import select_runs

    if args.keep is None and args.older_than is None:
        raise TekError("say which runs to prune: --keep N and/or --older-than DAYS")
    if args.keep is not None and args.keep < 0:
        raise TekError(f"--keep must be 0 or more (got {args.keep})")
    if args.older_than is not None and not args.older_than >= 0:  # also refuses nan
        raise TekError(f"--older-than must be 0 or more days (got {args.older_than})")
    store = open_journal(args)
    if store is None:
        print(json.dumps({"pruned": [], "kept": 0, "freed_bytes": 0, "dry_run": args.dry_run})
              if args.json else "no runs yet")
        return 0
    with store:
        plan = str(Path(args.plan).resolve()) if args.plan else None
        runs = store.list_runs(plan_path=plan)
        chosen = select_runs(runs, args.keep, args.older_than)
        freed = _forget(store, chosen, args.dry_run)
    if args.json:
        print(json.dumps({"pruned": [r.id for r in chosen], "kept": len(runs) - len(chosen),
                          "freed_bytes": freed, "dry_run": args.dry_run}, indent=2))
        return 0
    if not runs and args.plan:
        print(f"no runs of {args.plan}")
        return 0
    verb = "would prune" if args.dry_run else "pruned"
    for r in chosen:
        print(f"{verb} {r.id}  {r.effective_status:<11} {_when(r.started_ts or r.created_ts)}  {_short_path(r.plan_path)}")
    print(f"{verb} {len(chosen)} run(s), {freed / 1e6:.1f} MB of logs; "
          f"kept {len(runs) - len(chosen)}")
    return 0


def _forget(store: Store, runs: list[RunRecord], dry_run: bool) -> int:
    """Bytes of logs freed by pruning ``runs`` (or that would be, with ``dry_run``).

    On a full disk (the journal cannot be written) prune is what frees
    space: the runs' log folders go first, then their rows, in what was freed.

    Raises:
        StoreWriteError: the journal cannot be written even so (saying what
            was deleted: a run whose logs are gone stays listed until then).
    """
    import errno
    import shutil

    from core.errors import StoreWriteError
    from core.paths import run_dir
    from core.prune import folder_bytes, prune_runs

    sizes = {r.id: folder_bytes(run_dir(r.id)) for r in runs}
    if dry_run:
        return sum(sizes.values())

    def freed() -> int:
        return sum(size for rid, size in sizes.items() if not run_dir(rid).exists())

    try:
        return prune_runs(store, runs, sizes)
    except StoreWriteError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
    for r in runs:
        shutil.rmtree(run_dir(r.id), ignore_errors=True)
    try:
        prune_runs(store, runs, sizes)  # rows of runs already forgotten: nothing to delete
    except StoreWriteError as exc:
        raise StoreWriteError(
            f"{exc}; the logs of the {len(runs)} run(s) to prune are deleted "
            f"({freed() / 1e6:.1f} MB freed), the runs stay listed until `tek prune` "
            "can write the journal", exc.errno) from None
    return freed()


# -------------------------------------------------------------------- runs


def _runs(args: argparse.Namespace) -> int:
    from core.errors import TekError

    if args.limit < 0:
        raise TekError(f"-n must be 0 (all) or more (got {args.limit})")
    store = open_journal(args)
    if store is None:
        print("[]" if args.json else "no runs yet")
        return 0
    with store:
        plan = str(Path(args.plan).resolve()) if args.plan else None
        runs = store.list_runs(limit=args.limit or None, plan_path=plan)
    if args.json:
        print(json.dumps([_run_json(r) for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs of {args.plan}" if args.plan else "no runs yet")
        return 0
    rows = [
        [r.id, r.effective_status, _when(r.started_ts or r.created_ts), _dur(r.duration_s),
         _counts(shown_counts(r)), _short_path(r.plan_path)]
        for r in runs
    ]  # fmt: skip
    _table(["RUN", "STATUS", "STARTED", "DURATION", "TASKS", "PLAN"], rows)
    return 0


def _run_json(r: RunRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "plan": r.plan_path,
        "plan_hash": r.plan_hash,
        "status": r.effective_status,
        "recorded_status": r.status,
        "task_count": r.task_count,
        "counts": shown_counts(r),
        "created_ts": r.created_ts,
        "started_ts": r.started_ts,
        "ended_ts": r.ended_ts,
        "duration_s": r.duration_s,
        "resumes": r.resumes,
        "options": dict(r.options),
    }


# -------------------------------------------------------------------- show


def _show(args: argparse.Namespace) -> int:
    from core.errors import StoreError

    store = open_journal(args)
    if store is None:
        raise StoreError("no runs yet: the journal is empty")
    with store:
        run, tasks, attempts = store.read_run(store.resolve_run(args.run))
    by_task: dict[str, list[AttemptRecord]] = {}
    for a in attempts:
        by_task.setdefault(a.task_id, []).append(a)
    if args.json:
        out = _run_json(run)
        cut = out["status"] == "interrupted"
        out["tasks"] = [_task_json(t, by_task.get(t.task_id, []), cut) for t in tasks]
        print(json.dumps(out, indent=2))
        return 0
    print(f"run      {run.id}  ({run.effective_status})")
    print(f"plan     {run.plan_path or '-'}")
    print(f"started  {_when(run.started_ts)}   duration {_dur(run.duration_s)}   resumes {run.resumes}")
    print(f"tasks    {_counts(shown_counts(run))}")
    print()
    rows = []
    cut = run.effective_status == "interrupted"
    for t in tasks:
        last = by_task.get(t.task_id, [])[-1:]
        dur = last[0].duration_s if last else None
        code = "" if t.exit_code is None else str(t.exit_code)
        rows.append([t.task_id, _shown(t.state, cut), str(t.attempts), code, _dur(dur), t.reason])
    _table(["TASK", "STATE", "ATTEMPTS", "EXIT", "DURATION", "REASON"], rows)
    failed = next((t.task_id for t in tasks if t.state == "failed"), None)
    if run.effective_status in ("failed", "cancelled", "interrupted"):
        print()
        store_flag = f" --store {shlex.quote(args.store)}" if args.store else ""
        if failed is not None:
            print(f"why {failed} failed:  tek logs {run.id} {failed}{store_flag}")
        print(f"rerun what did not succeed:  tek run --resume {run.id}{store_flag}")
    elif run.is_live:
        print(f"\nwatch and steer it:  tek tui --attach {run.id}")
    return 0


def _task_json(t: TaskRecord, attempts: list[AttemptRecord], cut: bool) -> dict[str, Any]:
    return {
        "id": t.task_id,
        "state": _shown(t.state, cut),
        "attempts": t.attempts,
        "exit_code": t.exit_code,
        "reason": t.reason,
        "row_hash": t.row_hash,
        "duration_s": attempts[-1].duration_s if attempts else None,
        "history": [
            {"attempt": a.attempt, "state": a.state, "started_ts": a.started_ts,
             "ended_ts": a.ended_ts, "exit_code": a.exit_code, "reason": a.reason,
             "log": a.log_path, "pid": a.pid, "cpus": a.cpus, "gpus": list(a.gpus),
             "memory_mb": a.memory_mb, "metrics": dict(a.metrics)}
            for a in attempts
        ],
    }  # fmt: skip


# -------------------------------------------------------------------- logs


def _logs(args: argparse.Namespace) -> int:
    from core.errors import StoreError

    store = open_journal(args)
    if store is None:
        raise StoreError("no runs yet: the journal is empty")
    with store:
        run_id = store.resolve_run(args.run)
        run, tasks, _ = store.read_run(run_id)
        ids = {t.task_id for t in tasks}
        if args.task not in ids:
            parent = args.task.split("/", 1)[0]
            hint = (f"; a sub-plan's tasks log into their parent's log: tek logs {args.run} {parent}"
                    if parent in ids and parent != args.task else "")
            raise StoreError(f"run {run_id} has no task {args.task!r}{hint}")
        if args.follow:
            gc.enable()  # the CLI starts with it off (imports only)
            return _follow(store, run_id, args.task, args.attempt)
        attempt = _pick(store.attempts(run_id, args.task), args.attempt, run_id, args.task)
        if attempt is None:
            task = next(t for t in tasks if t.task_id == args.task)
            why = f" ({task.state}: {task.reason})" if task.reason else f" ({task.state})"
            raise StoreError(f"task {args.task!r} of run {run_id} has not started{why}")
    path = Path(attempt.log_path)
    if path.is_file():
        with path.open("rb") as f:
            _copy(f, codecs.getincrementaldecoder("utf-8")("replace"))
    elif attempt.ended_ts is not None and not path.parent.is_dir():
        # An attempt that printed nothing has no file, but its run's folder
        # is there: without it, printing nothing would pass for an empty log.
        raise StoreError(f"{path.parent}: the logs of run {run_id} are gone (removed?)")
    return 0


def _pick(
    attempts: list[AttemptRecord], wanted: int | None, run_id: str, task_id: str
) -> AttemptRecord | None:
    from core.errors import StoreError

    if wanted is None:
        return attempts[-1] if attempts else None
    for a in attempts:
        if a.attempt == wanted:
            return a
    have = ", ".join(str(a.attempt) for a in attempts) or "none"
    raise StoreError(f"task {task_id!r} of run {run_id} has no attempt {wanted} (attempts: {have})")


def _follow(store: Store, run_id: str, task_id: str, wanted: int | None) -> int:
    """Tail the task's log until the task or the run has ended."""
    from core.errors import StoreError

    current: AttemptRecord | None = None
    f = None
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    last = "\n"  # the last character printed: a log may end without a newline

    def copy() -> None:
        nonlocal last
        last = _copy(f, decoder) or last
    try:
        while True:
            # Order matters: read the journal first, then the file, so the
            # last pass after "ended" has every byte written before the end.
            run = store.get_run(run_id)
            attempts = store.attempts(run_id, task_id)
            if wanted is not None and wanted > max((a.attempt for a in attempts), default=0):
                attempt = None if run.is_live else _pick(attempts, wanted, run_id, task_id)
            else:
                attempt = _pick(attempts, wanted, run_id, task_id)
            if attempt is not None and current is not None and attempt.attempt != current.attempt:
                if f is not None:
                    copy()
                    f.close()
                    f = None
                start = "" if last == "\n" else "\n"
                print(f"{start}--- {task_id}: attempt {attempt.attempt} ---", flush=True)
                last = "\n"
            if attempt is not None:
                current = attempt  # the latest record of it: its end shows up here
            if f is None and current is not None and Path(current.log_path).is_file():
                f = open(current.log_path, "rb")  # noqa: SIM115
            if f is not None:
                copy()
            live = run.is_live
            if current is None:  # skipped or cancelled before it ever ran: say so now
                task_over = wanted is None and _task_state(store, run_id, task_id) in _TERMINAL
            else:
                task_over = current.ended_ts is not None and (
                    wanted is not None or _task_state(store, run_id, task_id) in _TERMINAL
                )
            if task_over or not live:
                if f is not None:
                    copy()
                if current is None:
                    raise StoreError(f"task {task_id!r} of run {run_id} never started")
                if current.ended_ts is None and not live:
                    print(f"tek: run {run_id} stopped before attempt {current.attempt} of "
                          f"{task_id} ended (its process died: tek run --resume reruns it)",
                          file=sys.stderr)
                return 0
            time.sleep(FOLLOW_POLL_S)
    finally:
        if f is not None:
            f.close()


def _task_state(store: Store, run_id: str, task_id: str) -> str:
    with store.read() as conn:
        row = conn.execute(
            "SELECT state FROM tasks WHERE run_id = ? AND task_id = ?", (run_id, task_id)
        ).fetchone()
    return str(row[0]) if row else ""


def _copy(f: Any, decoder: codecs.IncrementalDecoder) -> str:
    """Print what the file has gained; returns the last character printed ("" if none)."""
    last = ""
    while chunk := f.read(1 << 16):
        text = decoder.decode(chunk)
        sys.stdout.write(text)
        last = text[-1:] or last
    sys.stdout.flush()
    return last


# ------------------------------------------------------------------ format


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for line in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


#: States a writer that died left its tasks in: shown as ``interrupted``.
_CUT_SHORT = frozenset({"running", "retrying"})


def _shown(state: str, cut: bool) -> str:
    """A task's state as shown: ``interrupted`` for one a dead run left running."""
    return "interrupted" if cut and state in _CUT_SHORT else state


def shown_counts(run: RunRecord) -> dict[str, int]:
    """The run's task counts by state as shown (see :func:`_shown`)."""
    cut = run.effective_status == "interrupted"
    out: dict[str, int] = {}
    for state, n in run.counts.items():
        shown = _shown(state, cut)
        out[shown] = out.get(shown, 0) + n
    return out


def _counts(counts: Any) -> str:
    order = ["succeeded", "failed", "running", "retrying", "interrupted", "pending", "ready",
             "cancelled", "skipped"]
    keys = sorted(counts, key=lambda k: order.index(k) if k in order else len(order))
    return ", ".join(f"{counts[k]} {k}" for k in keys) or "-"


def _short_path(p: str) -> str:
    if not p:
        return "-"
    try:
        return str(Path(p).relative_to(Path.cwd()))
    except ValueError:
        return p
