"""The run journal: every run, task and attempt tek has run, in SQLite.

:class:`Store` is the one door to the journal file (``$TEK_HOME/tek.db`` or a
path given with ``--store``): it creates a run's rows before the run starts,
reopens a run for ``--resume`` (closing the attempts a crash left open as
``interrupted``) and answers the history commands. Events are written by
``core.journal.JournalRecorder``; the schema and its migrations live in
``core.store_schema``; a run's own rows (create, reset for resume) in
``core.store_runs``; records in ``core.store_records``.

Readers beside a writer: the file is in WAL mode, every connection waits on a
busy timeout instead of failing, and every read that spans several queries
runs inside one read transaction, so a reader sees whole batches only.

A journal that cannot be written now (a full disk, a file only readable to
this user) still opens for reading (:func:`open_store` with ``create=False``):
``runs``, ``show`` and ``logs`` work, the store's :attr:`Store.unwritable`
says why it is read-only, and a write raises that reason. Only what frees or
tidies may still try to write through it (``tek prune``, applying queued
batches before a read); a reader whose queued batches cannot be applied
reads the tables as they stand.

A ``Store`` may be used from several threads (the recorder writes from a
worker thread); a lock serialises its one connection.

A new run's rows can be committed in the background (``begin_run(...,
background=True)``, what ``core.journal.create_journal`` does): its task rows
go in by one statement that SQLite runs without the GIL, beside the caller
building the run, and every later use of the store waits for that commit
first (:meth:`Store.settle`). The run row and its tasks are one transaction,
so a reader never sees a run without its tasks.

Pending batches: a batch of task changes becomes rows of ``attempts`` and
``tasks`` (``core.store_batch``). A small batch is applied at once; a big one
(thousands of noop tasks finishing in one scheduler turn) is committed as one
packed row of ``pending`` instead, which is durable just the same but costs one
INSERT instead of thousands, and is applied later, in order, by
:meth:`Store.apply_pending`: by any reader before it reads (so every reader
sees the same history), by resume, and by ``tek run`` once its run is over.
Like SQLite's own WAL checkpoint, this moves work off the run's critical path
without changing what is recorded; once a run has pending rows, its later
batches queue behind them so the order never changes. Applying merges a run's
queued batches, back to back, into one (it is one transaction), so a task
that started in one turn and ended in the next is written once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import StoreError, StoreWriteError
from core.paths import default_store_path
from core.run_options import new_run_id
from core.store_batch import RawChange, apply_batch, apply_queued, pack
from core.store_records import (
    ATTEMPT_COLS,
    RUN_COLS,
    AttemptRecord,
    RunRecord,
    TaskRecord,
    attempt_from_row,
    counts_by_state,
    process_alive,
    run_from_row,
)
from core.store_runs import (
    SetupThread,
    delete_run,
    insert_run,
    new_tasks,
    pick_run_id,
    plan_hash,
    reset_run,
    resolve_run_id,
    task_rows,
    where_plan,
)
from core.store_schema import check_intact, connect, connect_read_only, connect_unshared, damaged
from core.store_space import cannot_write, write_failed

__all__ = [
    "AttemptRecord",
    "RunRecord",
    "Store",
    "TaskRecord",
    "new_run_id",
    "open_store",
    "plan_hash",
    "process_alive",
]

if TYPE_CHECKING:
    from core.plan import Plan

class Store:
    """An open journal. Use :func:`open_store`; close it (or use ``with``)."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, *, unwritable: StoreWriteError | None = None,
        may_try: bool = False,
    ) -> None:
        self.path = path
        self._conn = conn
        #: Why this journal opened read-only (a full disk, a read-only file);
        #: None when it is writable. Writes raise it, see :meth:`write`.
        self.unwritable = unwritable
        #: Whether a write may still be tried (``anyway=True``): the journal
        #: is writable once there is space again (False: a read-only file).
        self._may_try = may_try
        self._lock = threading.Lock()
        #: Whether a run this Store writes has queued batches. Only the run's
        #: writer adds to ``pending`` (others only apply), so False is sure.
        self._has_pending: dict[str, bool] = {}
        #: A new run's rows being written in the background (``begin_run``).
        self._setup: SetupThread | None = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        try:
            self.settle()
        finally:
            with self._lock:
                self._conn.close()

    def settle(self) -> None:
        """Wait for the rows ``begin_run`` writes in the background.

        Every other use of the connection calls this first, so nothing reads
        or writes before the new run's rows are committed.

        Raises:
            StoreError: writing them failed.
        """
        setup = self._setup
        if setup is not None and setup is not threading.current_thread():
            setup.join()
            self._setup = None
            if setup.error is not None:
                raise setup.error

    @contextmanager
    def write(self, *, anyway: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), under the lock.

        Args:
            anyway: on a journal opened read-only because it could not be
                written (:attr:`unwritable`, a full disk), try all the same
                (what frees space, or needs little of it); otherwise such a
                journal refuses every write at once.

        Raises:
            StoreWriteError: the journal cannot be written (a full disk), why.
            StoreError: SQLite failed (a corrupt page, a lock held past the
                busy timeout); the transaction is rolled back.
        """
        if self.unwritable is not None and not (anyway and self._may_try):
            raise StoreWriteError(str(self.unwritable), self.unwritable.errno)
        self.settle()
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One short read transaction: every query inside sees the same state.

        Raises:
            StoreError: SQLite failed (e.g. a corrupt page).
        """
        self.settle()
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # SQLite errors past opening (a page corrupt deep in the file, a full
        # disk) become tek's one-line error, never a traceback.
        try:
            yield
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_CORRUPT":
                raise damaged(self.path, str(exc)) from exc
            if write_failed(exc):  # a full disk: say so, as the system does
                raise cannot_write(self.path, exc) from exc
            raise StoreError(f"{self.path}: journal error: {exc}") from exc

    # ----------------------------------------------------------------- writes

    def write_batch(
        self,
        run_id: str,
        log_dir: str,
        raw: list[RawChange],
        run_updates: list[tuple[str, tuple[Any, ...]]],
        inline_max: int,
    ) -> bool:
        """Commit one batch in one transaction; True when it was applied at once.

        A batch of more than ``inline_max`` task changes, or any batch of a
        run that already has queued ones, is queued in ``pending`` instead.
        The run-row updates are applied at once either way.
        """
        size = len(raw)
        with self.write() as conn:
            queued = self._has_pending.get(run_id)
            if queued is None:
                queued = conn.execute(
                    "SELECT 1 FROM pending WHERE run_id = ? LIMIT 1", (run_id,)
                ).fetchone() is not None
            inline = not queued and size <= inline_max
            if inline:
                apply_batch(conn, run_id, log_dir, raw)
            elif size:
                conn.execute(
                    "INSERT INTO pending (run_id, log_dir, rows) VALUES (?, ?, ?)",
                    (run_id, log_dir, pack(raw)),
                )
                queued = True
            for sql, params in run_updates:
                conn.execute(sql, params)
        self._has_pending[run_id] = queued
        return inline

    def apply_pending(self, run_id: str | None = None) -> int:
        """Apply queued batches (of one run, or all) in order; returns how many.

        Raises:
            StoreWriteError: the journal cannot be written (a full disk).
        """
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
        with self.read() as conn:
            if conn.execute(f"SELECT 1 FROM pending {where} LIMIT 1", params).fetchone() is None:
                return 0
        with self.write(anyway=True) as conn:
            return self._apply_pending(conn, where, params)

    def _apply_before_reading(self, run_id: str | None = None) -> None:
        # On a journal opened read-only (a full disk) the queued batches wait
        # for one that can write them; the tables are read as they stand.
        try:
            self.apply_pending(run_id)
        except StoreWriteError:
            if self.unwritable is None:
                raise

    def _apply_pending(self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> int:
        try:
            runs = apply_queued(conn, where, params)
        except StoreError as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        for run in set(runs):
            self._has_pending[run] = False
        return len(runs)

    def check_intact(self) -> None:
        """Raise StoreError unless every page of the file reads back sound."""
        with self._lock, self._errors():
            check_intact(self._conn, self.path)

    def delete_run(self, run_id: str) -> None:
        """Remove a run and everything recorded of it, in one transaction.

        Tried even on a journal opened read-only for want of space: removing
        runs is how ``tek prune`` frees it.
        """
        with self.write(anyway=True) as conn:
            delete_run(conn, run_id)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file now (a passive checkpoint).

        Called once a run is over, so the run itself never waits for one.
        """
        self.settle()
        with self._lock, self._errors():
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def begin_run(
        self,
        run_id: str | None,
        plan: Plan,
        options: Mapping[str, Any] | None = None,
        *,
        background: bool = False,
    ) -> str:
        """Record a new run and its tasks (all ``pending``), in one transaction.

        The whole file is checked first (``check_intact``): a run never
        writes into a damaged journal.

        Args:
            run_id: the new run's id; None picks a new one not in the journal
                yet (two runs started in the same second almost surely get
                different ids; drawing the same one at the same instant is
                then a one-line error, not a mixed-up run).
            plan: its plan.
            options: run options, kept as JSON.
            background: return once the rows are built and let a thread
                commit them. That thread holds the GIL only to start one
                statement; SQLite inserts the task rows on another core
                while the caller builds the run (``create_run``). Whatever
                uses the store next waits for the commit (:meth:`settle`),
                so the first batch of the run is written after its rows.

        Returns:
            The run's id.

        Raises:
            StoreError: a run with this id is already in the journal (or,
                in the background, the journal is damaged or writing failed:
                raised by the next use, or by :meth:`settle`).
        """
        tasks, phash = new_tasks(plan)  # hashing happens before the write lock
        with self.read() as conn:
            rid = pick_run_id(conn, run_id, self.path)

        def insert() -> None:
            self.check_intact()
            with self.write() as conn:
                insert_run(conn, rid, plan, tasks, phash, options)

        if not background:
            insert()
            return rid
        self._setup = SetupThread(insert)
        self._setup.start()
        return rid

    def reopen_run(
        self, run_id: str, plan: Plan, rerun: frozenset[str], options: Mapping[str, Any] | None = None
    ) -> int:
        """Prepare a run for ``--resume`` by this process.

        Queued batches are applied first; then attempts left open by the
        crash are closed as ``interrupted``, every task in ``rerun`` goes back
        to ``pending`` and rows take the plan's current hashes (tasks gone
        from the plan are dropped, their attempts stay).

        Returns:
            How many open attempts were closed as interrupted.

        Raises:
            StoreError: the journal is damaged (nothing is written) or SQLite failed.
        """
        rows, phash = task_rows(run_id, plan)
        self.check_intact()
        with self.write() as conn:
            self._apply_pending(conn, "WHERE run_id = ?", (run_id,))
            return reset_run(conn, run_id, plan, rows, phash, rerun, options)

    # ------------------------------------------------------------------ reads

    def list_runs(self, limit: int | None = None, plan_path: str | None = None) -> list[RunRecord]:
        """Runs, newest first, with their task counts by state.

        With ``plan_path``, the runs of that file, whichever path (symlink,
        resolved path) each run named it by.
        """
        lim = f" LIMIT {int(limit)}" if limit else ""
        self._apply_before_reading()
        with self.read() as conn:
            where, params = where_plan(conn, plan_path)
            rows = conn.execute(
                f"SELECT {RUN_COLS} FROM runs {where} ORDER BY created_ts DESC, id DESC{lim}", params
            ).fetchall()
            counts = counts_by_state(conn, [r[0] for r in rows])
        return [run_from_row(r, counts.get(r[0], {})) for r in rows]

    def resolve_run(self, ref: str, plan_path: str | None = None) -> str:
        """Turn ``last``, a run id or a unique prefix of one into a run id.

        ``last`` is the run most recently begun or resumed (of the file
        ``plan_path`` names when given, by whichever path each run named
        it): after resuming an older run, ``tek show last`` shows it.

        Raises:
            StoreError: no such run, or the prefix matches several.
        """
        with self.read() as conn:
            return resolve_run_id(conn, ref, plan_path, self.path)

    def get_run(self, run_id: str) -> RunRecord:
        """One run with its counts.

        Raises:
            StoreError: no such run.
        """
        return self.read_run(run_id)[0]

    def read_run(
        self, run_id: str
    ) -> tuple[RunRecord, list[TaskRecord], list[AttemptRecord]]:
        """A run, its tasks in plan order and their attempts, from one snapshot."""
        self._apply_before_reading(run_id)
        with self.read() as conn:
            row = conn.execute(f"SELECT {RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: no run {run_id!r} in the journal")
            counts = counts_by_state(conn, [run_id])
            tasks = [
                TaskRecord(*r)
                for r in conn.execute(
                    "SELECT task_id, idx, row_hash, state, attempts, exit_code, reason"
                    " FROM tasks WHERE run_id = ? ORDER BY idx",
                    (run_id,),
                )
            ]
            attempts = [
                attempt_from_row(r)
                for r in conn.execute(
                    f"SELECT {ATTEMPT_COLS} FROM attempts WHERE run_id = ?"
                    " ORDER BY task_id, attempt",
                    (run_id,),
                )
            ]
        return run_from_row(row, counts.get(run_id, {})), tasks, attempts

    def attempts(self, run_id: str, task_id: str) -> list[AttemptRecord]:
        """Attempts of one task, first to last."""
        self._apply_before_reading(run_id)
        with self.read() as conn:
            return [
                attempt_from_row(r)
                for r in conn.execute(
                    f"SELECT {ATTEMPT_COLS} FROM attempts WHERE run_id = ? AND task_id = ?"
                    " ORDER BY attempt",
                    (run_id, task_id),
                )
            ]


def open_store(path: Path | str | None = None, *, create: bool = True, sync: str = "normal") -> Store:
    """Open the journal at ``path`` (default ``$TEK_HOME/tek.db``).

    Args:
        path: database file; None for :func:`core.paths.default_store_path`.
        create: create a new journal where none exists (False for readers).
        sync: ``"normal"`` or ``"full"`` (see ``core.store_schema``).

    An existing journal that cannot be written now opens read-only when
    ``create`` is False (the readers' case): a file or folder this user may
    only read, or a full disk (SQLite cannot even make the ``-shm`` file it
    reads through). :attr:`Store.unwritable` then says why, and writes raise it.

    Raises:
        StoreWriteError: ``create`` and the journal cannot be written (a
            read-only file, a full disk: the message says which).
        StoreError: see :func:`core.store_schema.connect`.
    """
    p = Path(path).expanduser() if path is not None else default_store_path()
    try:
        conn = connect(p, create=create, sync=sync)
    except StoreError as exc:
        if not p.is_file():
            raise
        if not (os.access(p.parent, os.W_OK) and os.access(p, os.W_OK)):
            why = StoreWriteError(f"{p}: cannot write the journal: the file or its folder is "
                                  "read-only (fix the permissions, or give --store PATH)")
            if create:
                raise why from None
            read_only = connect_read_only(p)
            if read_only is None:
                raise
            return Store(read_only, p, unwritable=why)
        if create or not isinstance(exc, StoreWriteError):
            raise
        unshared = connect_unshared(p)  # a full disk: read without the -shm file
        if unshared is None:
            raise
        return Store(unshared, p, unwritable=exc, may_try=True)
    return Store(conn, p)

