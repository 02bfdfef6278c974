"""Child processes for agents: own process group, pidfd wait, group kill.

:func:`spawn` starts a command in a new session (so it leads its own process
group) with stdout and stderr on one pipe; :class:`Child` waits for it through
a pidfd (``os.pidfd_open`` + ``anyio.wait_readable``) instead of asyncio's
child watcher, which costs a thread or a SIGCHLD scan per process and is what
makes ``asyncio.create_subprocess_exec`` about 1.45x slower than ``xargs -P``.
:func:`spawn_async` runs the spawn itself on a few spawner threads, because
vfork blocks its caller until the child has exec'd (see :class:`_Spawner`).
On Python 3.11 the spawn calls ``_posixsubprocess.fork_exec`` with the
arguments Popen would pass (half Popen's CPU); other versions use Popen.
A pidfd is opened only for a leader still running when its output ends.

Stopping (:meth:`Child.terminate`) sends SIGTERM to the whole group, waits
``grace_s``, then SIGKILLs the group, so ``sh -c 'sleep 100 & sleep 100; wait'``
leaves nothing behind. Live children are also tracked in a module registry so
a second Ctrl-C can SIGKILL every group at once (:func:`kill_all`).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

#: SIGTERM -> SIGKILL grace of the current attempt (the engine sets it per attempt).
GRACE_S: ContextVar[float] = ContextVar("tek_grace_s", default=5.0)

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
        # Opened only when the leader outlives its output (see wait): a short
        # task is reaped by exited() and never needs one. Safe to open late:
        # the pid stays ours until we reap it.
        self._pidfd = -1
        self.returncode: int | None = None
        _live_groups.add(pid)

    async def wait(self) -> int:
        """Wait for the leader to exit; returns the code (negative = signal)."""
        if self.returncode is None and not self.exited():
            if self._pidfd < 0:
                self._pidfd = os.pidfd_open(self.pid)
            await anyio.wait_readable(self._pidfd)
            self._reap()
        assert self.returncode is not None
        return self.returncode

    def exited(self) -> bool:
        """True once the leader has exited (reaps it); never blocks.

        Usually true already when the output pipe reaches end of file, which
        saves the pidfd wait (two epoll calls and a loop turn).
        """
        if self.returncode is None:
            if self._popen is not None:
                self.returncode = self._popen.poll()
            else:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self._set_status(status)
        return self.returncode is not None

    def _set_status(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def _reap(self) -> None:
        if self._popen is not None:
            self.returncode = self._popen.wait()
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
        else:
            self._set_status(os.waitpid(self.pid, 0)[1])

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the whole group; False when no member is left."""
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    async def terminate(self, grace_s: float) -> None:
        """SIGTERM the group, wait up to ``grace_s`` for the leader, SIGKILL the group.

        The pipe stays open (read what is left, then :meth:`close`). Runs
        shielded: it is what cancellation cleanup calls, and it must finish
        even while the caller is being cancelled.
        """
        with anyio.CancelScope(shield=True):
            if self.returncode is None:
                self.signal_group(signal.SIGTERM)
                with anyio.move_on_after(grace_s):
                    await self.wait()
            # Background members may outlive the leader; none may outlive the attempt.
            self.signal_group(signal.SIGKILL)
            if self.returncode is None:
                await self.wait()

    def close(self) -> None:
        """Release the pidfd and pipe, forget the group (leader must be reaped)."""
        _live_groups.discard(self.pid)
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        if self.out_fd >= 0:
            os.close(self.out_fd)
            self.out_fd = -1


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


def _prepared_spawn(
    command: str, env: Mapping[str, str], cwd: Path, prepare: Callable[[], object] | None
) -> Child:
    if prepare is not None:
        prepare()
    return spawn(command, env, cwd)


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

    def submit(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Child],
               args: tuple[str, Mapping[str, str], Path, Callable[[], object] | None]) -> None:
        """Queue one :func:`spawn`; ``fut`` gets the child (or the error) on ``loop``."""
        with self._lock:
            if self._threads < self.THREADS:
                self._threads += 1
                threading.Thread(target=self._work, name="tek-spawn", daemon=True).start()
        self._queue.put((loop, fut, args))

    def _work(self) -> None:
        while True:
            loop, fut, args = self._queue.get()
            try:
                result: Any = _prepared_spawn(*args)
                loop.call_soon_threadsafe(_resolve, fut, result, None)
            except BaseException as exc:  # delivered to the awaiting task
                loop.call_soon_threadsafe(_resolve, fut, None, exc)


def _resolve(fut: asyncio.Future[Child], result: Child | None, exc: BaseException | None) -> None:
    if exc is not None:
        fut.set_exception(exc)
    else:
        assert result is not None
        fut.set_result(result)


_spawner = _Spawner()


async def spawn_async(
    command: str,
    env: Mapping[str, str],
    cwd: Path,
    prepare: Callable[[], object] | None = None,
) -> Child:
    """:func:`spawn` from a spawner thread, shielded from cancellation.

    Shielded so that a child is never started and then lost to a
    cancellation: the caller's next checkpoint delivers it, and the caller
    stops the child. Off asyncio (trio) it uses ``anyio.to_thread``.

    Args:
        command: shell text.
        env: the full environment.
        cwd: working directory.
        prepare: called first in the same thread (e.g. create the log file).

    Raises:
        OSError: the process could not be started.
    """
    with anyio.CancelScope(shield=True):
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio)
            return await anyio.to_thread.run_sync(_prepared_spawn, command, env, cwd, prepare)
        fut: asyncio.Future[Child] = loop.create_future()
        _spawner.submit(loop, fut, (command, env, cwd, prepare))
        child = await fut
    return child


def kill_all() -> int:
    """SIGKILL every live child's group now (second Ctrl-C); returns how many."""
    n = 0
    for pgid in list(_live_groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
            n += 1
        except (ProcessLookupError, PermissionError):
            pass
    return n
