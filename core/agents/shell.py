"""The ``shell`` agent: ``/bin/sh -c command`` in its own process group.

Output (stdout and stderr on one pipe, so in arrival order) is read in 64 KiB
chunks and split into lines for the attempt's :class:`~core.agents.base.LogSink`;
a line longer than ``MAX_LINE_BYTES`` without a newline is cut there, so
memory stays flat whatever the task prints.

Ending: the attempt ends when the group leader exits and its output is read
to the end. Background members still holding the pipe ``DRAIN_S`` after the
leader exited are killed (noted in the log), and so is anything left in the
group afterwards: no process of a task outlives its attempt. On timeout or
cancellation the group gets SIGTERM, then SIGKILL after the grace period
(:data:`core.process.GRACE_S`, set per attempt by the engine), and the
cancellation is re-raised.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from core.agents.base import Agent, AttemptContext, LogSink, Outcome
from core.process import GRACE_S, Child, spawn_async

if TYPE_CHECKING:
    from core.plan import Task

#: Bytes of one line kept before it is cut (without a newline in sight).
MAX_LINE_BYTES = 1 << 20
#: How long output may stay open after the main process exited.
DRAIN_S = 0.5
#: A pipe quiet this long makes the reader check whether the leader exited.
POLL_S = 0.25
_CHUNK = 1 << 16


class ShellAgent(Agent):
    """Runs the task's command with ``/bin/sh -c``."""

    name = "shell"

    def validate(self, task: Task, plan_dir: Path) -> list[str]:
        """A shell task needs a non-blank command."""
        return [] if task.command.strip() else ["shell task needs a command"]

    async def run(self, ctx: AttemptContext) -> Outcome:
        """Run the command to its end; on cancellation stop the whole group."""
        try:
            # The log file is created in the spawner thread too: file creation
            # is the costliest syscall of a short task here.
            prepare = getattr(ctx.log, "prepare", None)
            child = await spawn_async(ctx.task.command, ctx.env, ctx.cwd, prepare)
        except OSError as exc:
            return Outcome(ok=False, reason=f"could not start /bin/sh: {exc}")
        ctx.set_pid(child.pid)
        reader = _Reader(child.out_fd, ctx.log)
        try:
            if not await reader.pump(child):
                ctx.log.write_line(
                    "[tek] background processes kept the output open after the task "
                    "exited; killing them"
                )
                child.signal_group(signal.SIGKILL)
                reader.drain()
            code = await child.wait()
        except BaseException:
            await child.terminate(GRACE_S.get())
            reader.drain()
            child.close()
            raise
        reader.flush()
        child.signal_group(signal.SIGKILL)  # leftovers that closed their output
        child.close()
        if code == 0:
            return Outcome(ok=True, exit_code=0)
        return Outcome(ok=False, exit_code=code, reason=describe_exit(code))


def describe_exit(code: int) -> str:
    """``"exit code 3"`` or ``"killed by SIGKILL"`` for a Popen return code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}"


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Reader:
    """Turns a non-blocking pipe into lines for a log sink."""

    def __init__(self, fd: int, log: LogSink) -> None:
        self.fd = fd
        self.log = log
        self.partial = b""

    def _feed(self, data: bytes) -> None:
        chunk = self.partial + data if self.partial else data
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self.partial = chunk
            if len(chunk) > MAX_LINE_BYTES:
                self.flush()
            return
        self.partial = chunk[cut + 1 :]
        self.log.write_lines(chunk[:cut].decode("utf-8", "replace").split("\n"))

    def flush(self) -> None:
        """Write an unterminated last line."""
        if self.partial:
            self.log.write_line(self.partial.decode("utf-8", "replace"))
            self.partial = b""

    async def pump(self, child: Child) -> bool:
        """Read until end of file; False when the leader exited ``DRAIN_S`` ago
        and something still holds the pipe open.

        The leader is only checked when the pipe has been quiet for
        ``POLL_S``. On asyncio the pipe is read by a reader callback
        (:meth:`_pump_asyncio`); elsewhere by this coroutine, one wait per chunk.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio
            return await self._pump_anyio(child)
        return await self._pump_asyncio(child, loop)

    async def _pump_asyncio(self, child: Child, loop: asyncio.AbstractEventLoop) -> bool:
        """:meth:`pump` with the loop reading the pipe in a callback.

        Each chunk is read and logged by the callback, with no task switch;
        the coroutine wakes only at end of file (or on an error, re-raised
        here) and every ``POLL_S`` to check a quiet pipe's leader. A short
        task thus costs one wake-up and no cancel scope.
        """
        fd = self.fd
        waiter: asyncio.Future[None] | None = None
        eof = False
        got_data = False
        error: BaseException | None = None

        def on_readable() -> None:
            nonlocal eof, got_data, error
            try:
                data = os.read(fd, _CHUNK)
                if data:
                    self._feed(data)
                    got_data = True
                    return
                eof = True
            except BlockingIOError:
                return
            except BaseException as exc:  # a read or log write error: the attempt's
                error = exc
            loop.remove_reader(fd)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        loop.add_reader(fd, on_readable)
        try:
            exited_at: float | None = None
            while not eof and error is None:
                waiter = loop.create_future()
                timer = loop.call_later(POLL_S, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                if eof or error is not None:
                    break
                if got_data:  # not quiet: look again after the next POLL_S
                    got_data = False
                elif exited_at is None:
                    if child.exited():
                        exited_at = time.monotonic()
                elif time.monotonic() - exited_at >= DRAIN_S:
                    return False
        finally:
            loop.remove_reader(fd)
        if error is not None:
            raise error
        return True

    async def _pump_anyio(self, child: Child) -> bool:
        exited_at: float | None = None
        while True:
            with anyio.move_on_after(POLL_S):
                await anyio.wait_readable(self.fd)
                try:
                    data = os.read(self.fd, _CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    return True
                self._feed(data)
                continue
            if exited_at is None:
                if child.exited():
                    exited_at = time.monotonic()
            elif time.monotonic() - exited_at >= DRAIN_S:
                return False

    def drain(self) -> None:
        """Read what is left right now, without waiting (after a kill)."""
        if self.fd < 0:
            return
        try:
            while data := os.read(self.fd, _CHUNK):
                self._feed(data)
        except OSError:
            pass
        self.flush()
