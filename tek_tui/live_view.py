"""What ``tek run`` shows while a run goes: a rich live view or plain lines.

Both read only the run protocol (snapshot + events). :class:`RunWatch`
(:mod:`tek_tui.run_watch`) folds events into a small model; the live view
redraws it
at most ``FPS`` times a second from a timer, never per event, so a flood of
events costs the loop nothing extra. Plain mode prints one timestamped line
per task start and end (coalesced events may fold a start into its end for
very short tasks) and the last output lines of a failed task. Its first line
names the run with its date (``04:16:23 == 2026-11-25 +0100 == run ID:
PLAN``), and a line ``00:00:02 == 2026-11-26 +0100 ==`` comes before the
first line of each new day, so a log of a night, or of many nights appended
to one file, dates every line while each line stays ``HH:MM:SS text``. A
``plan`` task's end line comes after its sub-tasks' lines (coalescing can
fold a short plan task's end into its start, ahead of its sub-plan's events
in the stream: the line waits until the sub-tasks named by its
``TasksAdded`` have ended, or the run has). Those lines are
written in order, in one write every ``PLAIN_FLUSH_S`` and when the run ends,
not one write per line (a 2000-task run printed 4000 lines with 4000 writes,
unbuffered under ``PYTHONUNBUFFERED``), which still keeps a pipe or
``tail -f`` reader current. When that reader goes away (``tek run | head``)
the view stops writing and the run goes on to its end (journal, logs and exit
code as ever). Task output is shown as text: no colour codes or cursor moves
from a task reach the terminal or a plain log, and ``[/red]`` is not markup.

Nothing here imports textual: ``tek run`` must start fast.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from core.events import AdmissionChanged, Event, RunFinished, TaskChanged, TaskState
from tek_tui.run_watch import ENDS_AN_ATTEMPT, TAIL, RunWatch, printable, render

if TYPE_CHECKING:

    from core.client import RunClient

FPS = 8
#: Plain lines are written at most this often (and when the run ends).
PLAIN_FLUSH_S = 0.1
class RunView:
    """Consumes a run's events for ``tek run``: live, plain or quiet."""

    def __init__(self, client: RunClient, *, live: bool, quiet: bool, out: TextIO) -> None:
        self.watch = RunWatch(client)
        self.live = live
        self.quiet = quiet
        self.out = out
        #: The reader of ``out`` has gone (a closed pipe): nothing more is written.
        self.out_gone = False
        self.done = anyio.Event()
        self._live: Any = None
        self._pending: list[str | deque[str]] = []  # plain lines / failure tails not yet written
        self._started: dict[str, int] = {}  # attempt whose start line was printed, per task
        #: plan tasks' end lines waiting for their sub-tasks' lines: (attempt, lines)
        self._held: dict[str, tuple[int, list[str | deque[str]]]] = {}
        #: the time of plain lines (tests set it)
        self.clock = time.time
        self._stamp_s = -1
        self._stamp = ""
        self._day: str | None = None  # date of the lines written so far

    def begin(self) -> None:
        """The first plain line: the run, its date and time zone, and its plan."""
        where = f": {self.watch.plan_path}" if self.watch.plan_path else ""
        self._line(f"run {self.watch.run_id}{where}", dated=True)

    def _line(self, text: str, dated: bool = False) -> None:
        now = int(self.clock())
        if now != self._stamp_s:  # strftime once a second, not once a line
            self._stamp_s = now
            local = time.localtime(now)
            self._stamp = time.strftime("%H:%M:%S", local)
            day = time.strftime("%Y-%m-%d %z", local)
            if day != self._day:
                if self._day is not None and not dated:  # a new day (or time zone)
                    self._pending.append(f"{self._stamp} == {day} ==\n")
                self._day = day
        if dated:
            text = f"== {self._day} == {text}"
        self._pending.append(f"{self._stamp} {text}\n")

    def flush(self) -> None:
        """Write the pending plain lines, in order, with one write."""
        if self._pending:
            parts: list[str] = []
            for item in self._pending:
                if isinstance(item, str):
                    parts.append(item)
                else:
                    parts.extend(f"         | {printable(line)}\n" for line in item)
            text = "".join(parts)
            self._pending = []
            self.write(text)

    def write(self, text: str) -> None:
        """Write and flush; once the reader has gone, write nothing more.

        ``tek run PLAN | head`` closes the pipe early, and ``> file`` on a
        full disk fails: the run goes on to its end (its journal and logs get
        everything, its exit code is the run's) rather than dying half-way
        with a traceback.
        """
        if self.out_gone:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except OSError as exc:  # the reader went away, or the disk is full
            from tek_tui.cli import output_lost

            self.out_gone = True
            output_lost(self.out, exc)

    async def _flush_plain(self) -> None:
        while True:
            await anyio.sleep(PLAIN_FLUSH_S)
            self.flush()

    def _plain(self, ev: TaskChanged) -> None:
        tid, state = ev.task_id, ev.state
        if tid in self._held:  # its next attempt: the last one's end comes first
            self._release(tid)
        if state is TaskState.RUNNING or (
            ev.attempt and state in ENDS_AN_ATTEMPT and self._started.get(tid) != ev.attempt
        ):
            # An attempt whose RUNNING was coalesced into its end still gets
            # its start line, so every attempt has one.
            self._started[tid] = ev.attempt
            self._line(f"start {tid} (attempt {ev.attempt})")
            if state is TaskState.RUNNING:
                return
        end: list[str | deque[str]] = []
        if state is TaskState.SUCCEEDED:
            end.append(f"ok    {tid}")
        elif state is TaskState.PENDING:
            end.append(f"again {tid} (pending)")
        else:
            word = {"failed": "FAIL ", "retrying": "retry", "cancelled": "CANCEL",
                    "skipped": "skip "}.get(state.value, state.value)
            end.append(f"{word} {tid}: {ev.reason}".rstrip(": "))
            if state in (TaskState.FAILED, TaskState.RETRYING):
                # The attempt's tail is read when the lines are written: its
                # last output may come after the state change (coalescing
                # keeps a task's state change where its first pending one was,
                # and may have folded its RUNNING into this one).
                end.append(self.watch.tails.setdefault(tid, deque(maxlen=TAIL)))
        if (ev.attempt and tid in self.watch.plans and state in ENDS_AN_ATTEMPT
                and not self._subs_done(tid, ev.attempt)):
            self._held[tid] = (ev.attempt, end)
        else:
            self._write_end(end)

    def _write_end(self, end: list[str | deque[str]]) -> None:
        for item in end:
            if isinstance(item, str):
                self._line(item)
            else:
                self._pending.append(item)

    def _subs_done(self, task_id: str, attempt: int) -> bool:
        """True when plan task ``task_id``'s sub-tasks' lines (of ``attempt``) are all out."""
        inside = task_id + "/"
        return self.watch.sub_plan_ended(task_id, attempt) and not any(
            held.startswith(inside) for held in self._held)

    def _release(self, task_id: str) -> None:
        self._write_end(self._held.pop(task_id)[1])

    def _release_done(self) -> None:
        """Write the held end lines whose sub-plans' lines are all out (innermost first)."""
        progressed = True
        while progressed:
            progressed = False
            for task_id, (attempt, _) in list(self._held.items()):
                if self._subs_done(task_id, attempt):
                    self._release(task_id)
                    progressed = True

    def _release_all(self) -> None:
        """The run ended: every held line goes out (a sub-plan's inner lines first)."""
        for task_id in sorted(self._held, key=lambda t: -t.count("/")):
            self._release(task_id)

    async def consume(self, events: AsyncIterator[Event]) -> None:
        """Read events until RunFinished."""
        plain = not self.live and not self.quiet
        try:
            async for ev in events:
                changed = self.watch.apply(ev)
                if not plain:
                    continue
                if changed is not None:
                    self._plain(changed)
                elif isinstance(ev, AdmissionChanged):
                    self._line(f"dispatch paused: {ev.reason}" if ev.paused
                               else "dispatch resumed")
                elif isinstance(ev, RunFinished):
                    self._release_all()
                if self._held:
                    self._release_done()
        finally:
            self._release_all()
            self.done.set()

    async def _refresh(self) -> None:
        while True:
            await anyio.sleep(1 / FPS)
            if self._live is not None:
                self._live.update(render(self.watch, self._live.console.width), refresh=True)

    def finish(self) -> None:
        """Print the last line: status, counts and wall time."""
        fin = self.watch.finished
        if fin is None or self.quiet:
            return
        counts = ", ".join(f"{n} {s}" for s, n in fin.counts.items() if n)
        text = f"run {fin.run_id} {fin.status.value}: {counts} in {fin.wall_s:.2f}s"
        if self.live:
            self.write(text + "\n")
        else:
            self._line(text)
            self.flush()


@asynccontextmanager
async def open_view(client: RunClient, *, live: bool, quiet: bool = False,
                    out: TextIO | None = None) -> AsyncIterator[RunView]:
    """Show a run while the body runs it; waits for the last event on exit.

    Args:
        client: the run.
        live: rich live view (else plain lines).
        quiet: no progress at all (``--json``); a live view still shows on a TTY.
        out: where to write (default stdout, or stderr when quiet).
    """
    stream = out or (sys.stderr if quiet else sys.stdout)
    view = RunView(client, live=live, quiet=quiet and not live, out=stream)
    async with anyio.create_task_group() as tg:
        if live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=stream)
            with Live(render(view.watch, console.width), console=console,
                      auto_refresh=False, transient=False) as lv:
                view._live = lv
                tg.start_soon(view._refresh)
                yield view
                with anyio.move_on_after(5):
                    await view.done.wait()
                lv.update(render(view.watch, console.width), refresh=True)
                view._live = None
        else:
            if not view.quiet:
                view.begin()
                tg.start_soon(view._flush_plain)
            try:
                yield view
                with anyio.move_on_after(5):
                    await view.done.wait()
            finally:
                view.flush()
        tg.cancel_scope.cancel()
    view.finish()
