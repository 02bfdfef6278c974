"""The journal's SQLite schema, its forward migrations, and safe opening.

A tek journal is an SQLite file marked with ``PRAGMA application_id``
(:data:`APP_ID`) and versioned with ``PRAGMA user_version``. Opening one:

1. checks the file *without writing to it*: not SQLite, a corrupt file, a
   SQLite file of another application, or a schema newer than this tek knows
   all raise :class:`~core.errors.StoreError` and leave the file's bytes and
   mtime as they were;
2. switches a new file to WAL (readers never wait for the writer) and applies
   every migration from the file's version up to :data:`SCHEMA_VERSION`, each
   in its own transaction, so a tek that dies mid-migration leaves a file at
   the previous version, not a half-migrated one.

Version 1 holds runs, tasks and attempts. Version 2 adds what resume and
``tek logs --follow`` need beyond that: the writing process (``pid``,
``pid_ts`` when it took the run, ``host``) so a reader can tell a live run from a crashed one, the resources
given to each task and attempt and the attempt's metrics, an index for "last run of this plan",
and ``pending``: big batches of task and attempt rows committed as one packed
row each and applied to ``tasks``/``attempts`` later, in order (see
``core.store``, "Pending batches").

A journal SQLite cannot write to (a full disk: the first connection must
create the ``-shm`` file, and that write fails) is sound all the same: the
failure is a :class:`~core.errors.StoreWriteError` saying why in the
system's words (``No space left on device``), never "damaged", and readers
still open it (:func:`connect_unshared`).

Durability: ``synchronous=NORMAL`` in WAL mode keeps every committed batch
across a crash of the tek process (the case resume handles); ``FULL`` also
survives power loss at the cost of an fsync per batch (``sync="full"``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from core.errors import StoreError
from core.store_space import cannot_write, write_failed

#: ``PRAGMA application_id`` of a tek journal ("TEK1" as a big-endian int).
APP_ID = 0x54454B31

#: Schema version this code writes and reads.
SCHEMA_VERSION = 3

#: WAL pages (4 KiB) between automatic checkpoints.
WAL_CHECKPOINT_PAGES = 16384

#: How long a connection waits for a lock before "database is locked" (ms).
BUSY_TIMEOUT_MS = 10_000

_V1 = """
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    plan_path   TEXT NOT NULL,
    plan_hash   TEXT NOT NULL,
    options     TEXT NOT NULL DEFAULT '{}',
    task_count  INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    created_ts  REAL NOT NULL,
    started_ts  REAL,
    ended_ts    REAL,
    resumes     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE tasks (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    task_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    row_hash    TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;
CREATE TABLE attempts (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    state       TEXT NOT NULL,
    started_ts  REAL NOT NULL,
    ended_ts    REAL,
    exit_code   INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    log_path    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, task_id, attempt)
) WITHOUT ROWID;
"""

_V2 = """
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pid_ts REAL;
ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN pid INTEGER;
ALTER TABLE attempts ADD COLUMN cpus REAL;
ALTER TABLE attempts ADD COLUMN gpus TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN memory_mb INTEGER;
ALTER TABLE attempts ADD COLUMN metrics TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tasks ADD COLUMN cpus REAL;
ALTER TABLE tasks ADD COLUMN memory_mb INTEGER;
CREATE INDEX runs_by_plan ON runs (plan_path, created_ts);
CREATE INDEX runs_by_time ON runs (created_ts);
CREATE TABLE pending (
    seq         INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    log_dir     TEXT NOT NULL,
    rows        BLOB NOT NULL
);
CREATE INDEX pending_by_run ON pending (run_id, seq);
"""

# Seconds a resumed run ran before its latest resume (its duration leaves
# out the time it was down).
_V3 = """
ALTER TABLE runs ADD COLUMN earlier_s REAL NOT NULL DEFAULT 0;
"""

#: ``MIGRATIONS[n]`` takes a file from version ``n`` to ``n + 1``.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)


def connect(path: Path, *, create: bool = True, sync: str = "normal") -> sqlite3.Connection:
    """Open (and if needed create or migrate) the journal at ``path``.

    Args:
        path: the database file.
        create: make a new journal when the file is missing or empty; when
            False a missing file raises.
        sync: ``"normal"`` (survives a crash of tek) or ``"full"`` (also
            survives power loss).

    Returns:
        A connection in autocommit mode (callers open their own transactions),
        usable from any one thread at a time.

    Raises:
        StoreWriteError: the file is sound but cannot be written now (a full
            disk): the message says why, as the system does.
        StoreError: the file is missing (``create=False``), not SQLite,
            corrupt, another application's, or of a newer schema.
    """
    fresh = _check_header(path, create)
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the journal: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _check_owner(conn, path, fresh)
        if version < SCHEMA_VERSION:
            _migrate(conn, path, version)
        conn.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        # A checkpoint inside a commit costs a big run ~12 ms per 4 MB of WAL:
        # let the WAL grow to 64 MB between checkpoints (the run's writer
        # checkpoints when it is done, see Store.checkpoint) and shrink back.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_CHECKPOINT_PAGES * 4096}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if write_failed(exc):  # a full disk, not a bad file: say which
            raise cannot_write(path, exc) from None
        if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise StoreError(f"{path}: not a tek journal (not an SQLite database)") from None
        raise StoreError(f"{path}: not a usable tek journal: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def damaged(path: Path, problem: str) -> StoreError:
    """The one-line error for a journal SQLite reports as damaged, with what to do."""
    return StoreError(
        f"{path}: the journal is damaged ({problem}); move it aside and tek starts a new one,"
        f" or salvage what it holds: sqlite3 {path} .recover | sqlite3 recovered.db"
    )


def check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse to write into a journal with a damaged page anywhere in it.

    A good header says nothing of the pages past it, and SQLite only notices
    a bad page when a statement reads it: a run could append to a journal
    whose history can no longer be read. ``PRAGMA quick_check`` reads every
    page without writing (~2 ms per MB; a run checks in the background while
    the engine builds, see ``Store.begin_run``).

    Raises:
        StoreWriteError: SQLite could not write what reading needs (a full disk).
        StoreError: the first problem SQLite found.
    """
    try:
        problem = str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return  # busy, not damaged: a writer holds it (checked again next time)
        if write_failed(exc):  # a full disk, not a damaged page
            raise cannot_write(path, exc) from None
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem != "ok":
        raise damaged(path, problem.replace("\n", " ").replace("*** in database main *** ", ""))


def _check_header(path: Path, create: bool) -> bool:
    """True when the journal file is missing or empty (a new journal).

    Only ``stat``: the file is never opened outside SQLite. Closing any
    descriptor of a database file drops every POSIX lock this process holds
    on it, which would let another process delete the WAL under this
    process's live connections (the "disk I/O error" of SQLite's docs,
    "How To Corrupt An SQLite Database File", 2.2). Whether the bytes are an
    SQLite database is SQLite's own first check, which never writes.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if not create:
            raise StoreError(f"{path}: no journal here (no run has been recorded yet)") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        return True
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the journal: {exc.strerror}") from None
    if not path.is_file():
        raise StoreError(f"{path}: not a tek journal (not a file)")
    if size == 0:
        if not create:
            raise StoreError(f"{path}: the journal is empty (no run has been recorded yet)")
        return True
    return False


def _check_owner(conn: sqlite3.Connection, path: Path, fresh: bool) -> int:
    """Return the file's schema version after checking it is tek's (reads only).

    The three reads share one read transaction: another tek creating the
    journal at the same moment (two cron jobs in one minute) must not be
    seen half-way, with tables but no application id yet.
    """
    conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        # A failed read (a full disk: the WAL index cannot be made) has ended
        # the transaction already; a COMMIT would hide why, behind "cannot
        # commit - no transaction is active".
        if conn.in_transaction:
            conn.execute("COMMIT")
    if app_id != APP_ID:
        if tables or version:
            raise StoreError(
                f"{path}: not a tek journal (an SQLite database of another application)"
            )
        return 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: journal schema version {version} is newer than this tek's "
            f"({SCHEMA_VERSION}); upgrade tek to read it"
        )
    return version


def _migrate(conn: sqlite3.Connection, path: Path, version: int) -> None:
    if version == 0:
        # WAL is a property of the file: set once, before the first table, so
        # readers beside a writer never hit "database is locked".
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: cannot switch the journal to WAL mode ({mode})")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        migrate_one(conn, target)


def migrate_one(conn: sqlite3.Connection, target: int) -> None:
    """Apply the migration to version ``target`` in one transaction.

    Another process may have migrated meanwhile: the version is re-read under
    the write lock and the step is skipped when it is already done.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if current < target:
            _exec_script(conn.execute, MIGRATIONS[target - 1])
            conn.execute(f"PRAGMA application_id = {APP_ID}")
            conn.execute(f"PRAGMA user_version = {target}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
            conn.execute("ROLLBACK")
        raise


def _exec_script(execute: Callable[[str], object], script: str) -> None:
    # executescript() would COMMIT first; run statement by statement instead
    # so the whole step stays inside the caller's transaction.
    for statement in script.split(";"):
        if statement.strip():
            execute(statement)


def create_at_version(path: Path, version: int) -> None:
    """Create a journal at an older schema ``version`` (for migration tests)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for target in range(1, version + 1):
            migrate_one(conn, target)
    finally:
        conn.close()


def connect_unshared(path: Path) -> sqlite3.Connection | None:
    """Open a sound journal that cannot be written now (a full disk), to read it.

    A WAL database keeps its index in the ``-shm`` file, which the first
    connection creates and sizes by writing to it: on a full disk that write
    fails before anything is read. In EXCLUSIVE locking mode SQLite keeps the
    index in this process's memory instead, so reading writes nothing, and
    the ``-wal`` file's commits are read too. The connection holds the
    file's lock until it closes (a writer waits for it, as it waits for
    space); closing checkpoints as any last connection does, which may fail
    on a full disk without harm. Writes are tried as usual and fail with
    SQLite's full-disk error while there is no space.

    Returns:
        The connection, or None when this fails too (the journal is locked,
        or of an older schema: the caller re-raises its error).

    Raises:
        StoreError: the file is another application's, or of a newer schema.
    """
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error:
        return None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # before the first read
        version = _check_owner(conn, path, fresh=False)  # another application's: raises
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        return None
    except BaseException:
        conn.close()
        raise
    if version != SCHEMA_VERSION:  # migrating would need space
        conn.close()
        return None
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection | None:
    """Open a journal this user may read but not write (a copied CI artefact).

    SQLite opens a WAL database read-only only when its ``-shm`` file exists
    or can be created. When the folder is read-only and there is no ``-wal``
    file, no writer is at work (a writer keeps one), so the file is opened as
    immutable. Returns None when that does not apply or the file is not a
    tek journal of this schema (the caller re-raises its error).
    """
    if path.with_name(path.name + "-wal").exists():
        return None
    try:
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?immutable=1", uri=True, isolation_level=None,
            check_same_thread=False,
        )  # fmt: skip
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error:
        return None
    if app_id != APP_ID or version != SCHEMA_VERSION:
        conn.close()
        return None
    return conn
