"""Child processes for agents: own process group, non-blocking reap, group kill.

:func:`spawn` starts a command in a new session (so it leads its own process
group) with stdout and stderr on one pipe. A :class:`Child` is reaped with
``waitpid(WNOHANG)`` when its output ends (the leader is usually gone by
then), else once its pidfd says so (the shell attempt watches it), never
through asyncio's child watcher, which
costs a thread or a SIGCHLD scan per process and is what makes
``asyncio.create_subprocess_exec`` about 1.45x slower than ``xargs -P``.
:func:`spawn_soon` runs the spawn itself on a few spawner threads, because
vfork blocks its caller until the child has exec'd (see :class:`_Spawner`),
and hands the child back to the event loop as a callback.
On Python 3.11 the spawn calls ``_posixsubprocess.fork_exec`` with the
arguments Popen would pass (half Popen's CPU); other versions use Popen.

Stopping a group (SIGTERM, then SIGKILL after the grace) is the caller's
(:mod:`core.agents.shell_attempt`). Live children are tracked in a module
registry so a second Ctrl-C can SIGKILL every group at once (:func:`kill_all`).
Processes that left a task's group are found by :mod:`core.strays`.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import os
import queue
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeAlias

#: SIGTERM -> SIGKILL grace of the current attempt (the engine sets it per attempt).
GRACE_S: ContextVar[float] = ContextVar("tek_grace_s", default=5.0)

#: Where a spawner thread hands its result: ``(child, None)`` or ``(None, error)``.
SpawnCallback: TypeAlias = "Callable[[Child | None, BaseException | None], None]"

#: Process-group ids of live children, for :func:`kill_all`.
_live_groups: set[int] = set()


class Child:
    """A spawned process leading its own group, with its output pipe."""

    def __init__(self, pid: int, out_fd: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.out_fd = out_fd
        # Popen must reap its own child (else its __del__ would, later, and
        # steal the exit status); others are reaped here.
        self._popen = popen
        self.returncode: int | None = None
        _live_groups.add(pid)

    def exited(self) -> bool:
        """True once the leader has exited (reaps it); never blocks.

        Usually true already when the output pipe reaches end of file, which
        saves waiting on a pidfd (see :mod:`core.agents.shell_attempt`).
        """
        if self.returncode is None:
            if self._popen is not None:
                self.returncode = self._popen.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode is not None

    def reap(self) -> None:
        """Wait for the leader to exit, blocking (call when it has, or was killed)."""
        if self.returncode is not None:
            return
        if self._popen is not None:
            self.returncode = self._popen.wait()
        else:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the whole group; False when no member is left."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def group_alive(self) -> bool:
        """True while a live process is left in the group (the leader's, once it is reaped).

        Members whose parent (the shell) died are zombies until their new
        parent reaps them, which a busy or non-reaping init may never do:
        those do not count.
        """
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a member that changed its user: still there
            return True
        return _live_member(self.pid)

    def close(self) -> None:
        """Release the pipe, forget the group (leader must be reaped)."""
        _live_groups.discard(self.pid)
        if self.out_fd >= 0:
            os.close(self.out_fd)
            self.out_fd = -1


def _live_member(pgid: int) -> bool:
    """True when /proc shows a process of group ``pgid`` that is not a zombie."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: trust kill(0)
        return True
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) "
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def spawn(command: str, env: Mapping[str, str], cwd: Path) -> Child:
    """Start ``/bin/sh -c command`` in a new session, output on a pipe.

    ``subprocess.Popen`` (vfork + exec) rather than ``os.posix_spawn``: it
    has ``cwd``, and it releases the GIL while vfork waits for the exec,
    which ``posix_spawn`` does not (measured: spawner threads using it
    stalled the loop and doubled the wall time of 2000 short tasks).

    Args:
        command: shell text.
        env: the full environment.
        cwd: working directory.

    Returns:
        The child; its ``out_fd`` is non-blocking and carries stdout and stderr.

    Raises:
        OSError: the process could not be started (e.g. missing ``cwd``).
    """
    if _fork_exec is not None:
        return _spawn_direct(command, env, cwd)
    read_fd, write_fd = os.pipe()
    try:
        popen = subprocess.Popen(
            ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=write_fd,
            stderr=write_fd, env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    os.set_blocking(read_fd, False)
    return Child(popen.pid, read_fd, popen)


# Python 3.11's _posixsubprocess.fork_exec (the call Popen makes), called
# directly: Popen's own Python code around it costs about as much CPU as the
# vfork + exec (measured 135 -> 65 us a spawn). Other versions use Popen.
_fork_exec: Any = None
if sys.version_info[:2] == (3, 11) and sys.platform == "linux":
    try:
        from _posixsubprocess import fork_exec as _fork_exec
    except ImportError:  # pragma: no cover
        _fork_exec = None
_SH = (b"/bin/sh",)
_devnull = -1
_devnull_lock = threading.Lock()


def _spawn_direct(command: str, env: Mapping[str, str], cwd: Path) -> Child:
    """:func:`spawn` through ``fork_exec`` with the arguments Popen would pass.

    Same child as Popen's (vfork, new session, stdin ``/dev/null``, other fds
    closed, signals restored); exec errors come back on a pipe and are raised
    as the ``OSError`` Popen raises.
    """
    global _devnull
    if _devnull < 0:  # one shared, close-on-exec /dev/null for every child's stdin
        with _devnull_lock:
            if _devnull < 0:
                _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    env_list = []
    for k, v in env.items():
        if "=" in k:
            raise ValueError("illegal environment variable name")
        env_list.append(os.fsencode(f"{k}={v}"))
    read_fd, write_fd = os.pipe()
    err_read, err_write = os.pipe()
    try:
        try:
            pid = _fork_exec(
                ["/bin/sh", "-c", command], _SH, True, (err_write,), os.fspath(cwd), env_list,
                _devnull, -1, -1, write_fd, -1, write_fd, err_read, err_write,
                True, True, -1, None, None, None, -1, None, True,
            )  # fmt: skip
        finally:
            os.close(err_write)
            os.close(write_fd)
        err = b""
        while part := os.read(err_read, 50000):
            err += part
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(err_read)
    if err:
        os.close(read_fd)
        os.waitpid(pid, 0)
        raise _exec_error(err, cwd)
    os.set_blocking(read_fd, False)
    return Child(pid, read_fd)


def _exec_error(data: bytes, cwd: Path) -> BaseException:
    """The exception Popen raises for the child's ``name:hex_errno:message`` report."""
    try:
        name, hex_errno, msg_b = data.split(b":", 2)
        msg = msg_b.decode()
    except ValueError:
        return subprocess.SubprocessError(f"bad exception data from child: {data!r}")
    kind = getattr(builtins, name.decode("ascii", "replace"), subprocess.SubprocessError)
    if isinstance(kind, type) and issubclass(kind, OSError) and hex_errno:
        errno_num = int(hex_errno, 16)
        filename = os.fspath(cwd) if msg == "noexec" else "/bin/sh"
        return kind(errno_num, os.strerror(errno_num) if errno_num else "", filename)
    if isinstance(kind, type) and issubclass(kind, BaseException):
        return kind(msg)
    return subprocess.SubprocessError(msg)


class _Spawner:
    """A few daemon threads that start processes for the event loop.

    ``vfork`` (under both posix_spawn and Popen) blocks the calling thread
    until the child has exec'd, which on a busy machine takes milliseconds:
    on the event loop that alone made 2000 ``sh -c true`` tasks twice as slow
    as ``xargs -P8``. These threads spawn while the loop goes on (the GIL is
    released meanwhile); a plain queue and ``call_soon_threadsafe`` cost a
    third of ``anyio.to_thread``'s CPU per call.
    """

    THREADS = 4

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0

    def submit(self, outbox: _Outbox, callback: SpawnCallback,
               args: tuple[str, Mapping[str, str], Path]) -> None:
        """Queue one :func:`spawn`; ``callback(child, error)`` runs on the outbox's loop."""
        with self._lock:
            if self._threads < self.THREADS:
                self._threads += 1
                threading.Thread(target=self._work, name="tek-spawn", daemon=True).start()
        self._queue.put((outbox, callback, args))

    def _work(self) -> None:
        while True:
            outbox, callback, args = self._queue.get()
            try:
                child = spawn(*args)
            except BaseException as exc:  # handed to the callback
                outbox.put(callback, None, exc)
            else:
                if not outbox.put(callback, child, None):
                    _orphan(child)


class _Outbox:
    """Spawn results waiting for one loop, delivered in batches.

    One ``call_soon_threadsafe`` (a write to the loop's wake-up pipe, and a
    loop wake-up) serves every result that arrives before the loop gets to
    it, rather than one each.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[tuple[SpawnCallback, Child | None, BaseException | None]]
        self._items = collections.deque()
        self._scheduled = False

    def put(self, callback: SpawnCallback, child: Child | None, exc: BaseException | None) -> bool:
        """From a spawner thread; False when the loop is closed (nobody will take it)."""
        if self.loop.is_closed():
            return False
        self._items.append((callback, child, exc))
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # closed just now
                return False
        return True

    def _deliver(self) -> None:
        self._scheduled = False  # before draining: a later put schedules again
        items = self._items
        while items:
            callback, child, exc = items.popleft()
            callback(child, exc)


_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = (
    weakref.WeakKeyDictionary()
)


def _orphan(child: Child) -> None:
    """Stop a child whose loop went away before it could be handed over."""
    child.signal_group(signal.SIGKILL)
    child.reap()
    child.close()


_spawner = _Spawner()


#: Soft limit on open files that tek raises its own to before its first shell task
#: (within the hard one; :mod:`core.agents.fd_gate` does it as it reads the limit).
FD_LIMIT = 1 << 16


def raise_fd_limit(want: int = FD_LIMIT) -> int:
    """Raise this process's soft limit on open files toward ``want``; returns the limit.

    Each running task holds its output pipe, and a spawn briefly two more:
    at the common soft limit of 1024 (256 on some systems), ``-j 1000``
    failed tasks with "Too many open files" though the hard limit allows
    far more. Children inherit the raised limit; it stays moderate because
    some programs close every descriptor up to it when they start.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # not allowed here: keep what we have
            pass
    return soft


def spawn_soon(
    loop: asyncio.AbstractEventLoop,
    callback: SpawnCallback,
    command: str,
    env: Mapping[str, str],
    cwd: Path,
    inline: bool = False,
) -> None:
    """:func:`spawn` in a spawner thread; then ``callback(child, None)`` on ``loop``.

    With ``inline``, the spawn happens right here, on the loop's thread (the
    loop waits for the exec), and the callback still comes from the loop.
    If the spawn fails, ``callback(None, error)`` instead (an ``OSError`` when
    the process could not be started). The callback always comes, so a child
    is never started and then lost: its receiver must stop it.
    """
    if inline:
        try:
            child = spawn(command, env, cwd)
        except BaseException as exc:  # handed to the callback
            loop.call_soon(callback, None, exc)
        else:
            loop.call_soon(callback, child, None)
        return
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes[loop] = _Outbox(loop)
    _spawner.submit(outbox, callback, (command, env, cwd))


def kill_all() -> int:
    """SIGKILL every live child's group and session now (second Ctrl-C); returns how many."""
    n = 0
    groups = list(_live_groups)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
            n += 1
        except (ProcessLookupError, PermissionError):
            pass
    if groups:  # members that moved to groups of their own (see signal_session_soon)
        from core.strays import signal_sessions

        signal_sessions(dict.fromkeys(groups, signal.SIGKILL))
    return n

