"""One shell attempt driven by event-loop callbacks: :class:`ShellAttempt`.

The shell agent's hot path. An attempt is a small state machine on the
asyncio loop (anyio's asyncio backend, which tek always runs on): no task,
no coroutine and no cancel scope per attempt, so a short task costs the loop
a few callbacks. The steps:

1. the command is spawned by a spawner thread (:func:`core.process.spawn_soon`;
   on the loop itself when it is the only attempt running, ``INLINE_MAX``),
   or later if tek is short of file descriptors (:mod:`core.agents.fd_gate`);
   the result comes back as a callback (the log file is made by the first
   output, :mod:`core.logsink`);
2. the output pipe is read by a callback of the loop's epoll set
   (:mod:`core.poller`) and split into lines (:class:`LineSplitter`); at end
   of file the leader is usually gone already (one ``waitpid``), else a pidfd
   tells when it exits;
3. the attempt ends with :meth:`ShellAttempt.finish`, which hands the
   :class:`~core.agents.base.Outcome` to the ``done`` callback, exactly once.

Output (stdout and stderr on one pipe, so in arrival order) is read in 64 KiB
chunks; a line longer than ``MAX_LINE_BYTES`` without a newline is cut there,
so memory stays flat whatever the task prints. Background members still
holding the pipe ``DRAIN_S`` after the leader exited are killed (noted in the
log), whether or not they keep printing, and so is anything left in the group
at the end. A process that left the group (``setsid``) but still holds the
output pipe ``ESCAPE_S`` after the group was killed is found through
``/proc`` and killed too (:func:`core.strays.kill_pipe_holders`): no process
of a task that still writes to its output outlives its attempt. When a task
is stopped (cancel, timeout), processes of its session that moved to other
groups (``timeout``, job control) get its signals too
(:func:`core.strays.signal_session_soon`). One that left the session *and*
let go of the output (a daemon) is out of reach without cgroups; so is one
that left only the group and the output of a task that ended by itself.
:meth:`ShellAttempt.cancel` sends SIGTERM to the group, then SIGKILL after
the grace period; the attempt ends once the leader is gone.
A leader that was alive when stopped has not succeeded, even if its TERM
handler exits 0 (so a timed-out task is never reported as succeeded).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from core.agents.base import AttemptContext, Outcome
from core.agents.fd_gate import gate, is_shortage
from core.agents.lines import LineSplitter
from core.poller import poller
from core.process import Child, spawn_soon
from core.strays import kill_pipe_holders, signal_session_soon

#: How long output may stay open after the main process exited.
DRAIN_S = 0.5
#: How often an attempt whose pipe is open checks whether the leader exited.
POLL_S = 0.25
#: While a stopped task's group uses its grace, how often to look whether it is empty.
GRACE_POLL_S = 0.05
#: How long the output may stay open after the whole group was SIGKILLed
#: before whoever still holds it is hunted down (it left the group: setsid).
ESCAPE_S = 0.2
_CHUNK = 1 << 16
#: Most bytes one synchronous drain reads (see ShellAttempt._drain).
_DRAIN_MAX = 1 << 22


def describe_exit(code: int) -> str:
    """``"exit code 3"`` or ``"killed by SIGKILL"`` for a Popen-style return code."""
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}"


#: Spawn on the loop itself while at most this many shell attempts run.
#: A spawner thread lets the loop go on during vfork + exec, which matters
#: when many tasks start at once; a lone attempt (a chain of dependent
#: tasks, ``-j 1``) starts sooner without the two thread hand-offs
#: (measured: 1000 sequential ``true`` tasks 1.78 -> 1.60 s).
INLINE_MAX = 1


class ShellAttempt:
    """``/bin/sh -c command`` for one attempt, on the running asyncio loop.

    Args:
        ctx: the attempt's context (command, env, cwd, log, set_pid).
        done: called once, on the loop, with the outcome.
        grace_s: SIGTERM -> SIGKILL grace when cancelled.
    """

    #: shell attempts started and not yet finished, in this process
    running = 0

    def __init__(self, ctx: AttemptContext, done: Callable[[Outcome], None], grace_s: float) -> None:
        self.ctx = ctx
        self.grace_s = grace_s
        self._done: Callable[[Outcome], None] | None = done
        self._loop = asyncio.get_running_loop()
        self._poller = poller(self._loop)
        self._lines = LineSplitter(ctx.log)
        self._child: Child | None = None
        self._pidfd = -1
        self._timer: asyncio.TimerHandle | None = None
        self._kill_timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._eof = False
        self._ending = False
        self._signalled = False  # the leader was alive when stopped
        self._grace_wait = False  # stopping: the leader is gone, the group has its grace
        self._exited_at: float | None = None
        self._active = False  # counted by the descriptor gate (spawning or running)
        self._held = False  # waiting in the gate for descriptors
        self.cancelled = False

    def start(self) -> ShellAttempt:
        """Spawn now, or once descriptors allow (:mod:`core.agents.fd_gate`); returns self."""
        ShellAttempt.running += 1
        if gate.admit(self._loop, self._spawn):
            self._active = True
            self._spawn()
        else:
            self._held = True
        return self

    def _spawn(self) -> None:
        """Spawn in a spawner thread, or right here when it is the only attempt."""
        self._held = False
        self._active = True
        if self._done is None:  # cancelled after the gate let it through
            self._active = False
            gate.leave()
            return
        ctx = self.ctx
        inline = ShellAttempt.running <= INLINE_MAX
        spawn_soon(self._loop, self._spawned, ctx.task.command, ctx.env, ctx.cwd, inline)

    def cancel(self) -> None:
        """Stop the attempt: SIGTERM the group now, SIGKILL it after the grace."""
        if self.cancelled or self._done is None:
            return
        self.cancelled = True
        if self._child is not None:
            self._terminate()
        elif self._held:  # never started: nothing to stop
            self._held = False
            gate.drop(self._spawn)
            self.finish(Outcome(ok=False, reason="cancelled"))
        # else: _spawned stops the child as soon as it exists

    # -- callbacks -----------------------------------------------------------

    def _spawned(self, child: Child | None, error: BaseException | None) -> None:
        if child is None and is_shortage(error) and not self.cancelled:
            if gate.retry_later(self._loop, self._spawn):  # another attempt's end frees some
                self._active = False
                self._held = True
                return
        if child is None:
            reason = f"could not start /bin/sh: {error}"
            if isinstance(error, FileNotFoundError) and not Path(self.ctx.cwd).is_dir():
                reason = f"could not start: working directory {self.ctx.cwd} does not exist (cwd)"
            try:  # the log says why it is empty (unless the log itself failed)
                self.ctx.log.write_line(f"[tek] {reason}")
            except Exception:
                pass
            self.finish(Outcome(ok=False, reason=reason))
            return
        self._child = child
        try:
            self.ctx.set_pid(child.pid)
            self._poller.add(child.out_fd, self._readable)
            self._reading = True
            self._timer = self._loop.call_later(POLL_S, self._poll)
            if self.cancelled:
                self._terminate()
        except BaseException as exc:  # a bug: end the attempt, never leave it hanging
            self._fail(exc)

    def _readable(self) -> None:
        child = self._child
        assert child is not None
        try:
            data = os.read(child.out_fd, _CHUNK)
        except BlockingIOError:
            return
        except BaseException as exc:
            self._fail(exc)
            return
        try:
            if data:
                self._lines.feed(data)
                return
            self._eof = True
            self._stop_reading()
            if self._ending:
                self._finish_end()
            elif self._grace_wait:
                pass  # _wait_for_group ends it
            elif child.exited():
                self._end()
            elif self._pidfd < 0:
                self._watch_leader()
        except BaseException as exc:
            self._fail(exc)

    def _poll(self) -> None:
        """Every ``POLL_S`` while the pipe is open: has the leader left it to others?

        Checked whether or not output flows: a background loop that keeps
        printing after the leader exited must not keep the attempt alive
        (one ``waitpid`` a ``POLL_S`` is nothing next to reading its output).
        """
        self._timer = None
        child = self._child
        if child is None or not self._reading or self._ending or self._grace_wait:
            return
        if self._exited_at is None:
            if child.exited():
                self._exited_at = time.monotonic()
        elif time.monotonic() - self._exited_at >= DRAIN_S:
            self.ctx.log.write_line(
                "[tek] background processes kept the output open after the task exited; "
                "killing them"
            )
            child.signal_group(signal.SIGKILL)
            self._end()
            return
        self._timer = self._loop.call_later(POLL_S, self._poll)

    def _watch_leader(self) -> None:
        """Wake when the leader exits (it outlived its output, or we are stopping it)."""
        child = self._child
        assert child is not None
        if child.returncode is not None:
            self._leader_gone()
            return
        self._pidfd = os.pidfd_open(child.pid)
        self._poller.add(self._pidfd, self._leader_gone)

    def _leader_gone(self) -> None:
        child = self._child
        assert child is not None
        try:
            if self._pidfd >= 0:
                self._poller.remove(self._pidfd)
                os.close(self._pidfd)
                self._pidfd = -1
            if not child.exited():
                child.reap()
            if self.cancelled:
                if self._kill_timer is not None and child.group_alive():
                    # The shell went first (SIGTERM ends it at once); what it ran
                    # may be saving its work: the group gets the rest of the grace.
                    self._grace_wait = True
                    self._wait_for_group()
                    return
                child.signal_group(signal.SIGKILL)  # members must not outlive a stopped task
            if self.cancelled or not self._reading:
                self._end()
        except BaseException as exc:
            self._fail(exc)

    def _wait_for_group(self) -> None:
        """Stopping, the leader gone: end once the group is empty or the grace ran out."""
        child = self._child
        if child is None or self._done is None or self._ending:
            return
        if self._kill_timer is not None and child.group_alive():
            self._loop.call_later(GRACE_POLL_S, self._wait_for_group)
            return
        self._grace_wait = False
        try:
            self._end()  # kills whatever is left, reads the rest of the output
        except BaseException as exc:
            self._fail(exc)

    def _terminate(self) -> None:
        child = self._child
        assert child is not None
        # exited() reaps a leader that is gone already: a finish that raced
        # the stop keeps its result. Past this point the leader was alive
        # when signalled, so whatever it exits with is the stop's doing.
        if child.returncode is None and not child.exited():
            self._signalled = True
            child.signal_group(signal.SIGTERM)
            child.signal_group(signal.SIGCONT)  # a stopped member takes its SIGTERM only once continued
            signal_session_soon(self._loop, child.pid, signal.SIGTERM)
            self._kill_timer = self._loop.call_later(self.grace_s, self._kill)
            if self._pidfd < 0:
                self._watch_leader()
        else:
            child.signal_group(signal.SIGKILL)
            self._end()

    def _kill(self) -> None:
        self._kill_timer = None
        if self._child is not None and self._done is not None:
            self._child.signal_group(signal.SIGKILL)
            signal_session_soon(self._loop, self._child.pid, signal.SIGKILL)

    # -- ending --------------------------------------------------------------

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            assert self._child is not None
            self._poller.remove(self._child.out_fd)

    def _end(self) -> None:
        """The leader is reaped (or about to be): kill the rest, read what is left, finish.

        Usually the pipe is at end of file already and the attempt finishes
        here. Else the group is SIGKILLed and the attempt reads on until the
        pipe closes; a holder still there after ``ESCAPE_S`` left the group,
        and is found and killed by :meth:`_sweep`.
        """
        if self._ending:
            return
        child = self._child
        assert child is not None
        if child.returncode is None:
            child.signal_group(signal.SIGKILL)
            child.reap()
        # Leftovers, killed before the pipe is drained: a member that floods
        # it would otherwise keep the drain (and the loop) busy for ever.
        child.signal_group(signal.SIGKILL)
        if self._signalled or self.cancelled:  # a stopped task: its strays too
            signal_session_soon(self._loop, child.pid, signal.SIGKILL)
        if not self._eof:
            self._drain()
        if self._eof:
            self._finish_end()
            return
        # The pipe is still held: by members dying of the SIGKILL just sent,
        # or by a process that escaped the group. Wait for the one, hunt the other.
        self._ending = True
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(ESCAPE_S, self._sweep)
        if not self._reading:
            self._poller.add(child.out_fd, self._readable)
            self._reading = True

    def _sweep(self) -> None:
        """The pipe outlived the group's SIGKILL: kill whoever holds it, then finish."""
        self._timer = None
        child = self._child
        assert child is not None
        try:
            if not self._eof and kill_pipe_holders(child.out_fd):
                self.ctx.log.write_line(
                    "[tek] processes that left the task's process group kept its output "
                    "open; killed them"
                )
        except BaseException as exc:
            self._fail(exc)
            return
        self._finish_end()

    def _finish_end(self) -> None:
        """Read what is in the pipe, write the last line, hand over the outcome."""
        child = self._child
        assert child is not None
        self._stop_reading()
        if not self._eof:
            self._drain()
        self._lines.flush()
        code = child.returncode
        assert code is not None
        if code == 0 and not self._signalled:
            self.finish(Outcome(ok=True, exit_code=0))
        elif code == 0:  # a TERM handler exiting 0: stopped, not done
            self.finish(Outcome(ok=False, exit_code=0, reason="stopped (exit code 0)"))
        else:
            self.finish(Outcome(ok=False, exit_code=code, reason=describe_exit(code)))

    def _drain(self) -> None:
        """Read what is in the pipe right now, without waiting.

        At most ``_DRAIN_MAX`` bytes: a writer outside the group (not killed
        yet) could otherwise keep this loop, and the event loop, busy for ever.
        """
        child = self._child
        if child is None or child.out_fd < 0:
            return
        try:
            for _ in range(_DRAIN_MAX // _CHUNK):
                data = os.read(child.out_fd, _CHUNK)
                if not data:
                    self._eof = True
                    return
                self._lines.feed(data)
        except OSError:  # EAGAIN: still held open by someone
            pass

    def _fail(self, exc: BaseException) -> None:
        """An unexpected error: stop the group and fail the attempt with it."""
        child = self._child
        if child is not None:
            self._stop_reading()
            child.signal_group(signal.SIGKILL)
            if child.returncode is None:
                child.reap()
        self.finish(Outcome(ok=False, reason=f"shell agent error: {exc!r}"))

    def finish(self, outcome: Outcome) -> None:
        """Release everything and hand ``outcome`` to ``done`` (once)."""
        done, self._done = self._done, None
        if done is None:
            return
        ShellAttempt.running -= 1
        for timer in (self._timer, self._kill_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._kill_timer = None
        if self._pidfd >= 0:
            self._poller.remove(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if self._child is not None:
            self._child.close()
        if self._active:
            self._active = False
            gate.leave()
        done(outcome)
