"""A run's own rows in the journal: creating them, resetting them to resume, finding the run.

:class:`core.store.Store` calls these inside its write transactions; they
only build rows and run SQL on the connection they are given. A run row
names the process writing it (``pid``, ``pid_ts``, ``host``) so a reader can
tell a live run from a crashed one; resuming hands the run to the resuming
process.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import StoreError
from core.resume import HASH_LEN, row_hash
from core.run_options import new_run_id
from core.store_records import RUN_COLS, RunRecord, run_from_row

if TYPE_CHECKING:
    from core.plan import Plan


def plan_hash(plan: Plan, row_hashes: list[str] | None = None) -> str:
    """sha256 of the plan file's bytes, or of its rows for a plan built in code."""
    h = hashlib.sha256()
    if plan.path is not None and plan.path.is_file():
        h.update(plan.path.read_bytes())
    else:
        for rh in row_hashes if row_hashes is not None else map(row_hash, plan.tasks):
            h.update(rh.encode())
    return h.hexdigest()


def task_rows(run_id: str, plan: Plan) -> tuple[list[tuple[Any, ...]], str]:
    """Rows of ``tasks`` for a plan (to insert as pending) and the plan's hash."""
    hashes = [row_hash(t) for t in plan.tasks]
    rows = [
        (run_id, t.id, i, h, t.cpus, t.memory_mb)
        for i, (t, h) in enumerate(zip(plan.tasks, hashes, strict=True))
    ]
    return rows, plan_hash(plan, hashes)


@dataclass(frozen=True, slots=True)
class NewTasks:
    """A plan's rows of ``tasks``, ready for :func:`insert_tasks`.

    Attributes:
        packed: JSON list of ``row_hash + task_id`` strings, in plan order.
        odd: ``(cpus, memory_mb, task_id)`` of tasks whose resources are not
            the defaults (1 CPU, no memory): usually none.
    """

    packed: str
    odd: list[tuple[float, int, str]]


def new_tasks(plan: Plan) -> tuple[NewTasks, str]:
    """The plan's task rows for a new run, and the plan's hash."""
    hashes = [row_hash(t) for t in plan.tasks]
    packed = json.dumps([h + t.id for h, t in zip(hashes, plan.tasks, strict=True)])
    odd = [(t.cpus, t.memory_mb, t.id) for t in plan.tasks if t.cpus != 1.0 or t.memory_mb]
    return NewTasks(packed, odd), plan_hash(plan, hashes)


def delete_run(conn: sqlite3.Connection, run_id: str) -> None:
    """Remove a run and everything recorded of it (a run that never started)."""
    for table, column in (("pending", "run_id"), ("attempts", "run_id"), ("tasks", "run_id"),
                          ("runs", "id")):
        conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))


def insert_run(
    conn: sqlite3.Connection,
    run_id: str,
    plan: Plan,
    tasks: NewTasks,
    phash: str,
    options: Mapping[str, Any] | None,
) -> None:
    """Insert a new run (``pending``, owned by this process) and its task rows."""
    now = time.time()
    conn.execute(
        "INSERT INTO runs (id, plan_path, plan_hash, options, task_count, status,"
        " created_ts, pid, pid_ts, host) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
        (run_id, _plan_path(plan), phash, _json(options), len(plan), now, os.getpid(), now,
         socket.gethostname()),
    )  # fmt: skip
    # One statement over a JSON list instead of a row per task: SQLite walks
    # the list itself (~10 ms at 10k tasks instead of ~20 ms binding rows),
    # without holding the GIL (see Store.begin_run).
    conn.execute(
        "INSERT INTO tasks (run_id, task_id, idx, row_hash, state, cpus, memory_mb)"
        f" SELECT ?1, substr(value, {HASH_LEN + 1}), key, substr(value, 1, {HASH_LEN}),"
        " 'pending', 1.0, 0 FROM json_each(?2)",
        (run_id, tasks.packed),
    )
    if tasks.odd:
        conn.executemany(
            "UPDATE tasks SET cpus = ?, memory_mb = ? WHERE run_id = ? AND task_id = ?",
            [(cpus, mem, run_id, tid) for cpus, mem, tid in tasks.odd],
        )


def refuse_if_live(run: RunRecord) -> None:
    """Refuse to resume ``run`` while the process that writes it still runs.

    Raises:
        StoreError: it does.
    """
    if run.is_live:
        raise StoreError(f"run {run.id} is still running (pid {run.pid}); stop it before resuming")


def reset_run(
    conn: sqlite3.Connection,
    run_id: str,
    plan: Plan,
    rows: list[tuple[Any, ...]],
    phash: str,
    rerun: frozenset[str],
    options: Mapping[str, Any] | None,
) -> int:
    """Make a journaled run ready to resume in this process; see ``Store.reopen_run``.

    Returns:
        How many open attempts were closed as interrupted.

    Raises:
        StoreError: another process took the run first. Checked here, in the
            write transaction, so of two resumes started together one wins.
    """
    row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    earlier = 0.0
    if row is not None:
        rec = run_from_row(row, {})
        refuse_if_live(rec)
        earlier = rec.earlier_s + session_s(conn, rec)
    now = time.time()
    closed = conn.execute(
        "UPDATE attempts SET state = 'interrupted', ended_ts = ?,"
        " reason = 'tek stopped while it ran' WHERE run_id = ? AND ended_ts IS NULL",
        (now, run_id),
    ).rowcount
    ids = {t.id for t in plan.tasks}
    known = [r[0] for r in conn.execute("SELECT task_id FROM tasks WHERE run_id = ?", (run_id,))]
    conn.executemany(
        "DELETE FROM tasks WHERE run_id = ? AND task_id = ?",
        [(run_id, tid) for tid in known if tid not in ids],
    )
    conn.executemany(
        "INSERT INTO tasks (run_id, task_id, idx, row_hash, state, cpus, memory_mb)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?)"
        " ON CONFLICT (run_id, task_id) DO UPDATE SET idx = excluded.idx,"
        " row_hash = excluded.row_hash, cpus = excluded.cpus, memory_mb = excluded.memory_mb",
        rows,
    )
    conn.executemany(
        "UPDATE tasks SET state = 'pending', exit_code = NULL, reason = ''"
        " WHERE run_id = ? AND task_id = ?",
        [(run_id, tid) for tid in sorted(rerun)],
    )
    # The resuming process owns the run from now on (pid_ts: a reader checks
    # the pid's start time against it, so a recycled pid never looks live).
    conn.execute(
        "UPDATE runs SET status = 'pending', ended_ts = NULL, resumes = resumes + 1,"
        " pid = ?, pid_ts = ?, host = ?, plan_path = ?, plan_hash = ?, task_count = ?,"
        " options = ?, earlier_s = ? WHERE id = ?",
        (os.getpid(), now, socket.gethostname(), _plan_path(plan), phash, len(plan),
         _json(options), earlier, run_id),
    )  # fmt: skip
    return int(closed)


def session_s(conn: sqlite3.Connection, rec: RunRecord) -> float:
    """How long the run's latest session ran (from its start or resume).

    To its end; for a session that died without one, to the last moment the
    journal saw (an attempt's start or end), so the hours between a crash and
    its resume are not counted. A long quiet task that was running when tek
    died is counted only up to its start.
    """
    since = rec.session_start
    if since is None:
        return 0.0
    end = rec.ended_ts
    if end is None:
        (end,) = conn.execute(
            "SELECT max(max(started_ts, coalesce(ended_ts, 0))) FROM attempts WHERE run_id = ?",
            (rec.id,),
        ).fetchone()
    return max(0.0, (end or since) - since)


def pick_run_id(conn: sqlite3.Connection, run_id: str | None, path: Path) -> str:
    """``run_id`` when the journal has no such run yet; None draws ids until one is new.

    Raises:
        StoreError: ``run_id`` is already in the journal at ``path``.
    """
    def taken(rid: str) -> bool:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (rid,)).fetchone() is not None

    if run_id is not None:
        if taken(run_id):
            raise StoreError(f"{path}: run {run_id!r} is already in the journal")
        return run_id
    while taken(rid := new_run_id()):
        pass
    return rid


def resolve_run_id(conn: sqlite3.Connection, ref: str, plan_path: str | None, path: Path) -> str:
    """Turn ``last``, a run id or a unique prefix of one into a run id (see ``Store.resolve_run``).

    Raises:
        StoreError: no such run, or the prefix matches several; ``path`` (the
            journal) names where it looked.
    """
    if not ref.strip():  # an empty prefix would match every run
        raise StoreError("RUN is empty: give a run id, a unique prefix of one, or 'last'")
    if ref == "last":
        where, params = where_plan(conn, plan_path)
        row = conn.execute(
            f"SELECT id FROM runs {where} ORDER BY COALESCE(pid_ts, created_ts) DESC, id DESC"
            " LIMIT 1", params
        ).fetchone()
        if row is None:
            what = f" of {plan_path}" if plan_path else ""
            raise StoreError(f"{path}: no run{what} in the journal")
        return str(row[0])
    rows = conn.execute(
        "SELECT id FROM runs WHERE id = ? OR substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
        (ref, len(ref), ref),
    ).fetchall()
    ids = [str(r[0]) for r in rows]
    if ref in ids:
        return ref
    if not ids:
        raise StoreError(f"{path}: no run {ref!r} in the journal (see `tek runs`)")
    if len(ids) > 1:
        more = ", ..." if len(ids) > 5 else ""
        raise StoreError(f"run {ref!r} is ambiguous: {', '.join(ids[:5])}{more}")
    return ids[0]


def _plan_path(plan: Plan) -> str:
    """The plan file as the run names it: absolute, symlinks kept (not resolved).

    Its folder is where the tasks ran (``Plan.base_dir``): a plan reached
    through a symlink runs in the symlink's folder, and a resume reading
    the recorded path runs there too.
    """
    return str(plan.path.absolute()) if plan.path is not None else ""


def recorded_paths_of(conn: sqlite3.Connection, plan_path: str) -> list[str]:
    """The plan paths in the journal that name the file ``plan_path`` names.

    A run records its plan as given (see :func:`_plan_path`); journals of
    older teks recorded it resolved. Either way, and through any symlink
    or hard link, the runs of one file are found: a recorded path matches
    when it is ``plan_path`` (as given, absolute or resolved) or is the same
    file on disk now (``os.path.samefile``).
    """
    given = Path(plan_path)
    names = {plan_path, str(given.absolute())}
    try:
        names.add(str(given.resolve()))
    except (OSError, RuntimeError):  # a symlink loop: it names no file
        pass
    try:
        st = given.stat()
    except OSError:  # no such file now: only its names match
        st = None
    out = []
    for (recorded,) in conn.execute("SELECT DISTINCT plan_path FROM runs WHERE plan_path != ''"):
        if recorded in names or (st is not None and _names_stat(recorded, st)):
            out.append(str(recorded))
    return out or [plan_path]


def _names_stat(path: str, st: os.stat_result) -> bool:
    """True when ``path`` is, now, the file ``st`` was read from."""
    try:
        return os.path.samestat(os.stat(path), st)
    except (OSError, ValueError):  # gone, or not a path at all
        return False


def where_plan(conn: sqlite3.Connection, plan_path: str | None) -> tuple[str, list[str]]:
    """SQL ``WHERE`` and its parameters for the runs of ``plan_path`` (all runs for None)."""
    if not plan_path:
        return "", []
    paths = recorded_paths_of(conn, plan_path)
    return f"WHERE plan_path IN ({', '.join('?' * len(paths))})", paths


def _json(options: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(options or {}), default=str)


class SetupThread(threading.Thread):
    """A thread running one write, keeping what it raised for ``Store.settle``."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__(name="tek-journal-setup")
        self.work = work
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.work()
        except Exception as exc:  # raised in the caller's thread by settle()
            self.error = exc
