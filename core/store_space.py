"""A journal SQLite cannot write now (a full disk, a quota, a size limit): say why.

SQLite only reports "disk I/O error" or "database or disk is full", and a
failed write while opening (the ``-shm`` file of a WAL journal) once read
as a damaged journal. :func:`write_failed` tells such failures from damage,
and :func:`cannot_write` words them as the system does
(``No space left on device``), with what to do.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path

from core.errors import StoreWriteError

#: Bytes a journal needs free beside it to open and commit a little: the WAL
#: index (``-shm``, 32 KiB) and a few WAL frames. Less free space than this is
#: reported as a full disk (:func:`why_unwritable`).
SPACE_NEEDED = 64 * 1024

#: What to do about a write the system refused, by ``errno``.
_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, or give --store PATH on another disk",
    errno.EDQUOT: "over the disk quota: free some space, or give --store PATH on another disk",
    errno.EFBIG: "over this process's file size limit, ulimit -f",
}


def write_failed(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed to *write* (a full disk, a size limit): the file is not at fault.

    ``SQLITE_FULL`` is a full disk; an ``SQLITE_IOERR`` other than a failed
    read is a write (or a lock, a sync, the ``-shm`` file) the system refused,
    e.g. ``SQLITE_IOERR_SHMSIZE`` when the WAL index cannot be made.
    """
    name = getattr(exc, "sqlite_errorname", "")
    return name == "SQLITE_FULL" or (
        name.startswith("SQLITE_IOERR") and name not in ("SQLITE_IOERR_READ", "SQLITE_IOERR_SHORT_READ")
    )


def cannot_write(path: Path, exc: sqlite3.Error) -> StoreWriteError:
    """The one-line error for a write SQLite could not make, with the system's reason.

    SQLite only says "disk I/O error" or "database or disk is full";
    :func:`why_unwritable` asks the system what stops a write beside the
    file (``No space left on device``, ``File too large``).
    """
    problem = why_unwritable(path.parent)
    if problem is None:  # nothing stops a small write now: say what SQLite said
        name = getattr(exc, "sqlite_errorname", "")
        return StoreWriteError(f"{path}: cannot write the journal: {exc} ({name})")
    reason = problem.strerror or os.strerror(problem.errno or errno.EIO)
    hint = _WRITE_HINTS.get(problem.errno or 0)
    return StoreWriteError(
        f"{path}: cannot write the journal: {reason}" + (f" ({hint})" if hint else ""),
        errno=problem.errno,
    )


def why_unwritable(folder: Path) -> OSError | None:
    """What stops a file of :data:`SPACE_NEEDED` bytes being written in ``folder``; None if nothing.

    Less free space than that (``statvfs``) is ``ENOSPC`` without writing
    anything; otherwise a nameless file is written and dropped (unlinked
    first, so nothing is left behind): a quota, a file size limit, a
    read-only disk answer as the system words them.
    """
    try:
        fs = os.statvfs(folder)
        if fs.f_bavail * fs.f_frsize < SPACE_NEEDED:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fd, name = tempfile.mkstemp(prefix=".tek-space-", dir=folder)
    except OSError as exc:
        return exc
    try:
        os.unlink(name)
        left = memoryview(bytes(SPACE_NEEDED))
        while left:
            left = left[os.write(fd, left):]
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
    return None
