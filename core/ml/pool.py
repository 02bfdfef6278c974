"""Warm ML worker processes, parent side: :class:`WorkerProcess` and :class:`WorkerPool`.

Each worker is ``python -m core.ml.worker`` in its own process group (a
session), so killing it kills anything it started. Workers are plain
``subprocess.Popen`` objects read through ``anyio.to_thread`` rather than
anyio processes: an anyio process belongs to the event loop that made it,
while warm workers outlive one run (and one event loop) and serve the next.

A task takes an idle, live worker or starts one; after a task that ended
normally (success or an op error) the worker goes back to the idle list (at
most ``max_idle``, default ``$TEK_ML_WARM_WORKERS`` or 4; ``0`` means every
task gets a fresh, cold worker). A worker that died, or whose task was
cancelled or timed out, is killed and never reused; the next task starts a
replacement. The worker's raw stderr (segfault tracebacks) goes to a file
under ``$TEK_HOME/ml-workers`` whose tail explains a death.

Each worker gets a lifeline (``core.ml.worker``): the read end of a pipe
whose write end only this process holds (``os.pipe`` descriptors are not
inheritable, and only the worker's read end is passed on). When this process
dies, however it dies, the kernel closes the write end and the worker kills
itself and its group at once, so no orphan keeps training after a SIGKILLed
``tek run`` and races its own resume.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread

from core.ml.worker import LIFELINE_ARG
from core.paths import tek_home

ENV_WARM = "TEK_ML_WARM_WORKERS"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class WorkerDiedError(Exception):
    """The worker process ended in the middle of a request (or before ready)."""

    def __init__(self, reason: str, exit_code: int | None) -> None:
        super().__init__(reason)
        self.exit_code = exit_code
        #: The worker's last stderr lines (a crash's stack dump), for the log.
        self.details: list[str] = []


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


class WorkerProcess:
    """One worker process and its pipes."""

    def __init__(self, python: str = sys.executable) -> None:
        folder = tek_home() / "ml-workers"
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self._stderr = open(folder / f"worker-{os.getpid()}-{id(self)}.err", "w+b")  # noqa: SIM115
        # The write end stays here for the worker's whole life; closing it
        # (or our death) tells the worker to go. Both ends are created
        # non-inheritable, so other children (shell tasks, other workers)
        # never hold a copy that would keep the pipe open after we die.
        read_end, self._lifeline = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [python, "-m", "core.ml.worker", LIFELINE_ARG, str(read_end)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                pass_fds=(read_end,),
                start_new_session=True,  # own process group: a kill reaches its children too
                text=True,
                encoding="utf-8",
            )
        except BaseException:
            os.close(self._lifeline)
            self._stderr.close()
            raise
        finally:
            os.close(read_end)
        self.pid = self.proc.pid
        self.ready = False
        self.tasks = 0

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    async def _read(self) -> dict[str, Any]:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        # abandon_on_cancel: a cancelled attempt must not wait for the worker's
        # next line; the caller kills the worker, which ends the blocked read.
        line = await anyio.to_thread.run_sync(out.readline, abandon_on_cancel=True)
        if not line:
            code = await anyio.to_thread.run_sync(self._wait, abandon_on_cancel=True)
            raise self._died(code)
        message: dict[str, Any] = json.loads(line)
        return message

    def _wait(self) -> int | None:
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _stderr_lines(self) -> list[str]:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return []
        return [ln.rstrip() for ln in text.splitlines() if ln.strip()]

    def _died(self, code: int | None) -> WorkerDiedError:
        lines = self._stderr_lines()
        # faulthandler's first line says what happened; the rest is a stack dump.
        fatal = [ln for ln in lines if ln.startswith("Fatal Python error")]
        summary = fatal[:1] or [ln.strip() for ln in lines[-2:]]
        tail = f": {' | '.join(summary)}" if summary else ""
        error = WorkerDiedError(f"ML worker (pid {self.pid}) {_describe_exit(code)}{tail}", code)
        error.details = lines[-40:]
        return error

    async def wait_ready(self) -> None:
        """Wait for the ``ready`` message (torch imported).

        Raises:
            WorkerDiedError: the worker could not start.
        """
        early: list[str] = []  # what it printed before ready (an import error)
        while not self.ready:
            try:
                message = await self._read()
            except WorkerDiedError as exc:
                if early and not exc.details:
                    exc.details = early[-40:]
                    exc.args = (f"{exc}: {early[-1].strip()}",)
                raise
            if message.get("type") == "log":
                early.append(str(message.get("line", "")))
            self.ready = message.get("type") == "ready"

    async def request(
        self, request: dict[str, Any], on_message: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Send one request; pass ``log``/``progress`` messages on; return ``done``.

        Raises:
            WorkerDiedError: the worker died before answering.
        """
        await self.wait_ready()
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            await self._read()  # raises WorkerDiedError with the exit status
        self.tasks += 1
        while True:
            message = await self._read()
            if message.get("type") == "done":
                return message
            on_message(message)

    def kill(self) -> None:
        """Kill the worker's whole process group and reap it (never blocks long)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._wait()
        self.close_files()

    def close_files(self) -> None:
        """Close the pipes (the lifeline too) and remove the stderr file."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()
        Path(self._stderr.name).unlink(missing_ok=True)


@dataclass
class WorkerStats:
    """Counters of a pool: workers started, tasks served by a warm one, deaths."""

    started: int = 0
    reused: int = 0
    died: int = 0
    killed: int = 0


class WorkerPool:
    """Idle warm workers, shared by every ML task of this process."""

    def __init__(self, max_idle: int | None = None, python: str = sys.executable) -> None:
        if max_idle is None:
            max_idle = int(os.environ.get(ENV_WARM, "4") or 4)
        self.max_idle = max(0, max_idle)
        self.python = python
        self.stats = WorkerStats()
        self._idle: list[WorkerProcess] = []
        self._lock = threading.Lock()  # acquire/release may run on different event loops
        # Workers exit by themselves when our end of their stdin closes; this
        # just makes it prompt when the interpreter exits normally.
        atexit.register(self.close)

    def acquire(self) -> WorkerProcess:
        """A live idle worker, or a newly started one (not yet ready)."""
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    self.stats.reused += 1
                    return worker
                worker.close_files()
        self.stats.started += 1
        return WorkerProcess(self.python)

    def release(self, worker: WorkerProcess, healthy: bool) -> None:
        """Keep a healthy worker warm (room permitting); kill any other."""
        if healthy and worker.alive:
            with self._lock:
                if len(self._idle) < self.max_idle:
                    self._idle.append(worker)
                    return
        worker.kill()

    def close(self) -> None:
        """Kill every idle worker."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    @property
    def idle(self) -> int:
        """Workers waiting for a task."""
        return len(self._idle)
