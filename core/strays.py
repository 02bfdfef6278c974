"""A task's processes that ``killpg`` misses: found through ``/proc`` and signalled.

A shell task leads its own session and process group (:mod:`core.process`),
and stopping it signals the group. Two kinds of process slip past that:

- one that moved to a group of its own but stayed in the session
  (``timeout``, job control): :func:`signal_session_soon` signals the whole
  session of a stopped task, batched to one scan per loop turn;
- one that left the session too (``setsid``) but still holds the task's
  output pipe: :func:`kill_pipe_holders` finds it by the pipe's inode.

Both scan ``/proc`` (milliseconds), so they run only when a task is stopped
or its output outlives its group, never on the hot path of a task that
simply exits. A process that left the session and let go of the output (a
daemon) is beyond reach without cgroups.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping


def kill_pipe_holders(fd: int) -> int:
    """SIGKILL every other process holding the pipe that ``fd`` is one end of.

    For a task's output pipe after its whole group was killed: whoever still
    holds the write end left the group (``setsid``) and would outlive the
    attempt. Found by scanning ``/proc/*/fd`` (milliseconds; only done when
    the pipe outlived the group's SIGKILL, never on the hot path).

    Args:
        fd: this process's end of the pipe.

    Returns:
        How many processes were sent SIGKILL (0 where ``/proc`` is missing).
    """
    try:
        target = f"pipe:[{os.fstat(fd).st_ino}]"
        pids = _proc_pids()
    except OSError:
        return 0
    me = str(os.getpid())
    killed = 0
    for pid in pids:
        if pid == me:
            continue
        if _holds(f"/proc/{pid}/fd", target):
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def _proc_pids() -> list[str]:
    """The pids in ``/proc``, as its folder names (raises OSError without ``/proc``)."""
    return [name for name in os.listdir("/proc") if name.isdigit()]


def _holds(fd_dir: str, target: str) -> bool:
    """True when one of the descriptors in ``fd_dir`` is the write end of pipe ``target``.

    Both ends of a pipe link to the same ``pipe:[inode]``; the read end (held
    for an instant by a process forked here before its exec) is told apart
    by the access mode in ``fdinfo``.
    """
    try:
        names = os.listdir(fd_dir)
    except OSError:  # gone, or not ours to look at
        return False
    for name in names:
        try:
            if os.readlink(f"{fd_dir}/{name}") != target:
                continue
            with open(f"{fd_dir}info/{name}", "rb") as info:
                flags = next(ln for ln in info if ln.startswith(b"flags:")).split()[1]
            if int(flags, 8) & os.O_ACCMODE != os.O_RDONLY:
                return True
        except (OSError, StopIteration, ValueError, IndexError):  # closed meanwhile
            continue
    return False


#: Sessions whose strays get a signal at the next scan: session id -> signal.
_stray_signals: dict[int, int] = {}
#: The loop whose next turn runs the scan (None: no scan pending).
_scan_loop: asyncio.AbstractEventLoop | None = None


def signal_session_soon(loop: asyncio.AbstractEventLoop, sid: int, sig: int) -> None:
    """Send ``sig`` soon to every process of session ``sid`` (a stopped task's).

    A task's processes stay in its session unless they call ``setsid``, but
    not always in its process group: ``timeout``, ``bash -m`` job control
    and the like move to groups of their own, and ``killpg`` misses them.
    Such strays are found by one ``/proc`` scan per loop turn for every
    session stopped in that turn (a ``--fail-fast`` that stops 500 tasks
    scans once), so only stopping a task pays for it, never the hot path.
    A session id cannot be reused while a process is still in that session.

    Args:
        loop: the event loop that runs the scan.
        sid: the session id (the task leader's pid).
        sig: SIGTERM or SIGKILL (SIGKILL wins when both are asked for).
    """
    global _scan_loop
    if _scan_loop is None or _scan_loop.is_closed():  # a closed loop never runs its scan
        _scan_loop = loop
        loop.call_soon(_signal_strays)
    if _stray_signals.get(sid) != signal.SIGKILL:
        _stray_signals[sid] = sig


def _signal_strays() -> None:
    global _scan_loop
    _scan_loop = None
    wanted = dict(_stray_signals)
    _stray_signals.clear()
    signal_sessions(wanted)


def signal_sessions(wanted: Mapping[int, int]) -> None:
    """One ``/proc`` scan: signal each process of a session in ``wanted`` outside its group.

    Args:
        wanted: session id -> signal number.
    """
    try:
        pids = _proc_pids()
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            group, session = int(fields[2]), int(fields[3])
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
        sig = wanted.get(session)
        # The task's own group had the signal from killpg: a second SIGTERM
        # would run a TERM trap twice.
        if sig is not None and group != session:
            try:
                os.kill(int(pid), sig)
            except (ProcessLookupError, PermissionError):
                pass
