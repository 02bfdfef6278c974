"""What ``tek run`` shows while a run goes: a rich live view or plain lines.

Both read only the run protocol (snapshot + events). :class:`RunWatch` folds
events into a small model (state per task, running tasks with their last
output line and progress values, recent failures); the live view redraws it
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

import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from core.events import (
    AdmissionChanged,
    Event,
    OutputDropped,
    OutputLines,
    Progress,
    RunFinished,
    TaskChanged,
    TasksAdded,
    TaskState,
)

if TYPE_CHECKING:
    from rich.console import RenderableType

    from core.client import RunClient

FPS = 8
#: Plain lines are written at most this often (and when the run ends).
PLAIN_FLUSH_S = 0.1
_TAIL = 5
#: States that end an attempt that was started (skipped tasks never started one).
_ENDS_AN_ATTEMPT = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.RETRYING, TaskState.CANCELLED})
_FAILURES = 5
_STATE_STYLE = {
    "succeeded": "green", "failed": "red", "running": "cyan", "retrying": "yellow",
    "cancelled": "magenta", "skipped": "dim", "ready": "blue", "pending": "dim",
}  # fmt: skip


#: Terminal control sequences and control characters (tab aside) in task output.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?|[\x00-\x08\x0a-\x1f\x7f-\x9f]"
)


def printable(line: str) -> str:
    """A task's output line without colour codes, cursor moves or other controls.

    Task output is shown as text: a task that colours its output (or prints
    ``\\x1b[2J``) must not move the view's cursor or colour tek's own lines,
    and a plain ``tek run > ci.log`` must carry no escape codes. The log file
    keeps the bytes as the task wrote them.
    """
    return _CONTROL.sub("", line) if not line.isprintable() else line


class RunWatch:
    """The part of a run's state ``tek run`` shows, kept from events."""

    def __init__(self, client: RunClient) -> None:
        snap = client.snapshot()
        self.run_id = snap.run_id
        self.plan_path: str = getattr(snap, "plan_path", "")
        self.states: dict[str, TaskState] = {t.id: t.state for t in snap.tasks}
        #: ``plan`` tasks (their sub-tasks' lines come before their end line)
        self.plans: set[str] = {t.id for t in snap.tasks if getattr(t, "agent", "") == "plan"}
        #: per plan task whose sub-plan started: (its attempt, its sub-tasks)
        self.subs: dict[str, tuple[int, tuple[str, ...]]] = {}
        #: per plan task in ``subs``: how many of its sub-tasks have not ended
        self.subs_open: dict[str, int] = {}
        # Kept as events come (a 100k-task run must not be recounted per frame).
        self._counts: dict[TaskState, int] = {}
        for state in self.states.values():
            self._counts[state] = self._counts.get(state, 0) + 1
        self.started: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.tails: dict[str, deque[str]] = {}
        self.progress: dict[str, dict[str, Any]] = {}
        self.failures: deque[tuple[str, str, str]] = deque(maxlen=_FAILURES)
        self.admission = ""
        self.finished: RunFinished | None = None
        self.t0 = time.monotonic()

    def apply(self, ev: Event) -> TaskChanged | None:
        """Fold one event in; returns it when it is a state change worth a line."""
        if isinstance(ev, TaskChanged):
            prev = self.states.get(ev.task_id)
            self.states[ev.task_id] = ev.state
            if prev is not None:
                self._counts[prev] -= 1
            self._counts[ev.state] = self._counts.get(ev.state, 0) + 1
            if "/" in ev.task_id:
                self._sub_changed(ev.task_id, prev, ev.state)
            new_attempt = ev.attempt and self.attempts.get(ev.task_id) != ev.attempt
            if new_attempt:  # its RUNNING may have been folded into its end
                self.attempts[ev.task_id] = ev.attempt
                self.tails[ev.task_id] = deque(maxlen=_TAIL)
            if ev.state is TaskState.RUNNING:
                if prev is TaskState.RUNNING and not new_attempt:
                    return None  # the same attempt again, now with its pid
                self.started[ev.task_id] = time.monotonic()
                self.progress.pop(ev.task_id, None)
                return ev
            self.started.pop(ev.task_id, None)
            if ev.state in (TaskState.FAILED, TaskState.RETRYING):
                tail = self.tails.get(ev.task_id)
                self.failures.append((ev.task_id, ev.reason, tail[-1] if tail else ""))
            if ev.state.is_terminal:
                self.progress.pop(ev.task_id, None)
            return ev if ev.state is not TaskState.READY else None
        if isinstance(ev, OutputLines):
            self.tails.setdefault(ev.task_id, deque(maxlen=_TAIL)).extend(ev.lines)
        elif isinstance(ev, OutputDropped):
            self.tails.setdefault(ev.task_id, deque(maxlen=_TAIL)).append(
                f"[{ev.count:,} lines not shown; see the log]")
        elif isinstance(ev, Progress):
            values = self.progress.setdefault(ev.task_id, {})
            values.update(ev.values)
            if ev.fraction is not None:
                values["%"] = f"{ev.fraction * 100:.0f}"
        elif isinstance(ev, TasksAdded):
            self._tasks_added(ev)
        elif isinstance(ev, AdmissionChanged):
            self.admission = ev.reason if ev.paused else ""
        elif isinstance(ev, RunFinished):
            self.finished = ev
        return None

    def _sub_changed(self, task_id: str, prev: TaskState | None, state: TaskState) -> None:
        plan = task_id.rpartition("/")[0]
        if plan in self.subs_open and prev is not None and prev.is_terminal != state.is_terminal:
            self.subs_open[plan] += -1 if state.is_terminal else 1

    def _tasks_added(self, ev: TasksAdded) -> None:
        for info in ev.tasks:
            prev = self.states.get(info.id)
            if prev is not None:
                self._counts[prev] -= 1
            self.states[info.id] = info.state
            self._counts[info.state] = self._counts.get(info.state, 0) + 1
            if info.agent == "plan":
                self.plans.add(info.id)
        self.subs[ev.task_id] = (ev.attempt, tuple(t.id for t in ev.tasks))
        self.subs_open[ev.task_id] = sum(1 for t in ev.tasks if not t.state.is_terminal)

    def sub_plan_ended(self, task_id: str, attempt: int) -> bool:
        """True once attempt ``attempt`` of plan task ``task_id`` named its
        sub-tasks (TasksAdded) and every one of them has ended."""
        subs = self.subs.get(task_id)
        return subs is not None and subs[0] >= attempt and self.subs_open[task_id] == 0

    def counts(self) -> dict[str, int]:
        """Tasks per state (only states that occur)."""
        return {s.value: n for s, n in self._counts.items() if n}

    @property
    def total(self) -> int:
        """Tasks known: the plan's, plus those of the sub-plans started so far (``task/sub``)."""
        return len(self.states)

    def done(self) -> int:
        """Tasks in a terminal state."""
        return sum(n for s, n in self._counts.items() if s.is_terminal)


def _fmt_values(values: dict[str, Any]) -> str:
    parts = []
    for k, v in values.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def render(watch: RunWatch, width: int = 100, rows: int = 12) -> RenderableType:
    """The live view: progress bar with counts, running tasks, recent failures."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    done = watch.done()
    counts = Text()
    for state, n in sorted(watch.counts().items()):
        counts.append(f" {state} {n} ", style=_STATE_STYLE.get(state, ""))
    head = Text.assemble(
        (f"run {watch.run_id}  ", "bold"),
        f"{done}/{watch.total}  {time.monotonic() - watch.t0:6.1f}s",
    )
    if watch.admission:
        head.append(f"  dispatch paused: {watch.admission}", style="yellow")
    bar = Table.grid(expand=True)  # a bare ProgressBar ends without a newline
    bar.add_column(ratio=1)
    bar.add_row(ProgressBar(total=max(watch.total, 1), completed=done))
    parts: list[RenderableType] = [head, bar, counts]
    running = sorted(watch.started.items(), key=lambda kv: kv[1])
    if running:
        table = Table(box=None, pad_edge=False, expand=True, show_header=True)
        longest = max(len(tid) for tid, _ in running[:rows])
        table.add_column("running", no_wrap=True, min_width=min(longest, width // 3),
                         max_width=width // 3)
        table.add_column("time", justify="right", no_wrap=True, min_width=6)
        table.add_column("progress / last output", no_wrap=True, overflow="ellipsis")
        now = time.monotonic()
        for tid, t in running[:rows]:
            tail = watch.tails.get(tid)
            progress = watch.progress.get(tid)
            info = _fmt_values(progress) if progress else (tail[-1] if tail else "")
            # Text, not str: rich would read "[/red]" in a task's output as markup.
            table.add_row(tid, f"{now - t:.1f}s", Text(printable(info)))
        if len(running) > rows:
            table.add_row(f"... {len(running) - rows} more", "", "")
        parts.append(table)
    if watch.failures:
        fails = Table(box=None, pad_edge=False, expand=True, show_header=True)
        longest = max(len(tid) for tid, _, _ in watch.failures)
        fails.add_column("recent failures", style="red", no_wrap=True,
                         min_width=min(max(longest, 15), width // 3), max_width=width // 3)
        fails.add_column("why / last output", no_wrap=True, overflow="ellipsis")
        for tid, reason, last in watch.failures:
            fails.add_row(tid, Text(printable(f"{reason}  {last}".strip())))
        parts.append(fails)
    return Group(*parts)


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
            ev.attempt and state in _ENDS_AN_ATTEMPT and self._started.get(tid) != ev.attempt
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
                end.append(self.watch.tails.setdefault(tid, deque(maxlen=_TAIL)))
        if (ev.attempt and tid in self.watch.plans and state in _ENDS_AN_ATTEMPT
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
