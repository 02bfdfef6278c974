"""The log pane: the selected task's current attempt, live, with a loss curve.

On selection the attempt's log file is tailed in a thread worker (the last
``max_lines`` lines, read backwards from the end: :func:`~tek_tui.widgets.log_text.read_tail`);
live ``OutputLines`` then append, one ``write_lines`` per flush. Every line
is shown as :func:`~tek_tui.widgets.log_text.shown_line` makes it (controls
escaped, the text after a ``\\r``), once, as it comes. Lines that arrived
while the file was being read are de-duplicated against the file's tail.
Memory stays bounded by ``Log.max_lines``.

Following (:class:`~tek_tui.widgets.follow_log.FollowLog`): any move up
pauses it, ``End``/``G`` follow again, ``f`` toggles; another task's log
starts following again. ``/`` searches (the screen's ``/`` key calls
:meth:`LogView.action_search` while the log pane has the focus), ``n``/``N``
jump to the next/previous match. The header
(:class:`~tek_tui.widgets.log_header.LogHeader`) stays one line. For tasks
that report ``loss`` in ``Progress`` events a sparkline of the loss history
shows above the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Sparkline, Static
from textual.worker import Worker

from tek_tui.widgets.follow_log import FollowLog
from tek_tui.widgets.log_header import LogHeader
from tek_tui.widgets.log_text import LINE_CHARS, TAIL_BYTES, read_tail, shown_line

__all__ = ["LINE_CHARS", "MAX_LINES", "TAIL_BYTES", "LogView", "read_tail"]

#: Lines kept in the pane (and read from the end of a log file).
MAX_LINES = 5000


def _overlap(tail: Sequence[str], head: Sequence[str]) -> int:
    """Length of the longest suffix of ``tail`` that equals a prefix of ``head``."""
    for k in range(min(len(tail), len(head)), 0, -1):
        if list(tail[-k:]) == list(head[:k]):
            return k
    return 0


class LogView(Vertical):
    """Log of one task attempt, follow/pause, search and loss curve."""

    BINDINGS = [
        Binding("f", "toggle_follow", "Follow", id="log-follow", tooltip="Follow or pause the log"),
        Binding("n", "next_match", "Next match", id="log-next-match", show=False),
        Binding("N", "prev_match", "Prev match", id="log-prev-match", show=False),
        Binding("escape", "close_search", "Close search", id="log-close-search", show=False),
    ]

    def __init__(self, *, max_lines: int = MAX_LINES, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.max_lines = max_lines
        self.task_id: str | None = None
        """Task shown, or None."""
        self.attempt = 0
        """Attempt shown."""
        self.needle = ""
        """Current search text."""
        self.match_line: int | None = None
        """Line of the current match."""
        self.outcome = ""
        """How the shown task ended and why (``✗ failed: exit code 3``), or empty."""
        self._whole = True  # the buffer holds the whole log from its first line
        self._loading = False
        self._held: list[str] = []
        self._generation = 0
        self._loss: tuple[list[float], str] = ([], "")

    def compose(self) -> ComposeResult:
        yield LogHeader(id="log-header")
        with Horizontal(id="loss-row"):
            yield Static("loss", id="loss-label")
            yield Sparkline([], id="loss-curve")
        yield FollowLog(max_lines=self.max_lines, id="log-lines")
        yield Input(placeholder="search log (enter: find, esc: close)", id="log-search")

    def on_mount(self) -> None:
        self.query_one("#log-search").display = False
        # Keys and the mouse pause following in the log itself: say so here.
        self.watch(self.lines_widget, "auto_scroll", self._follow_changed, init=False)
        self._update_header()

    @property
    def lines_widget(self) -> FollowLog:
        """The underlying ``Log`` widget."""
        return self.query_one("#log-lines", FollowLog)

    @property
    def follow(self) -> bool:
        """New lines scroll the log to the end (the log's ``auto_scroll``)."""
        return self.lines_widget.auto_scroll

    @follow.setter
    def follow(self, value: bool) -> None:
        self.lines_widget.auto_scroll = value

    # --------------------------------------------------------------- public

    def show(self, task_id: str | None, attempt: int, path: Path | None,
             outcome: str = "") -> None:
        """Show ``task_id``'s ``attempt``: clear, then load its file's tail.

        Args:
            task_id: the task, or None for an empty pane.
            attempt: attempt number (0: not started, nothing to read).
            path: the attempt's log file, or None.
            outcome: how the task ended and why, for the header (see :meth:`set_outcome`).
        """
        if task_id != self.task_id:
            # Paused (`f`, or a search) for the task that was shown: this one's
            # log follows its end until paused again.
            self.follow = True
        self.task_id, self.attempt, self.outcome = task_id, attempt, outcome
        self._whole = True
        self._generation += 1
        self._held.clear()
        self.lines_widget.clear()
        self.match_line = None
        self.set_loss([], "")
        self._update_header()
        if task_id is not None and attempt > 0 and path is not None:
            self._loading = True
            self._read(path, self._generation)
        else:
            self._loading = False

    def append(self, lines: Sequence[tuple[int, str]]) -> None:
        """Add live lines (``(attempt, text)``) of the shown task."""
        out: list[str] = []
        for attempt, text in lines:
            if attempt > self.attempt:
                self.attempt = attempt
                self._whole = False  # line numbers now count the earlier attempt's too
                out.append(f"── attempt {attempt} ──")
                self._update_header()
            if attempt == self.attempt:
                out.append(shown_line(text))
        if not out:
            return
        if self._loading:
            self._held.extend(out)
        else:
            self._write(out)

    def set_outcome(self, outcome: str) -> None:
        """Say in the header how the task ended and why (empty while it has not ended)."""
        if outcome != self.outcome:
            self.outcome = outcome
            self._update_header()

    def set_loss(self, values: Sequence[float], label: str) -> None:
        """Show the loss curve (hidden when ``values`` is empty).

        The curve shows the last points that fit its width, one cell each,
        scaled to their own lowest and highest value (printed under the
        label): a high first loss must not flatten the rest to ``▁``.
        """
        row = self.query_one("#loss-row")
        row.display = bool(values)
        self._loss = (list(values), label)
        if values:
            self._draw_loss()

    def _draw_loss(self) -> None:
        values, label = self._loss
        curve = self.query_one("#loss-curve", Sparkline)
        width = curve.size.width or max(self.size.width - 16, 10)
        shown = values[-width:]
        curve.data = shown
        low, high = min(shown), max(shown)
        self.query_one("#loss-label", Static).update(f"{label}\n{low:.3g}–{high:.3g}")

    def on_resize(self) -> None:
        """A new width shows more (or fewer) of the last loss points."""
        if self._loss[0]:
            self.call_after_refresh(self._draw_loss)

    # -------------------------------------------------------------- actions

    def action_toggle_follow(self) -> None:
        """Follow the end of the log, or hold it still."""
        if self.follow:
            self.lines_widget.pause()
        else:
            self.lines_widget.action_scroll_end()

    def action_search(self) -> None:
        """Open the search box."""
        box = self.query_one("#log-search", Input)
        box.display = True
        self.screen.set_focus(box)  # at once, so keys typed right after `/` land here

    def action_next_match(self) -> None:
        """Jump to the next line containing the search text."""
        self._find(forward=True)

    def action_prev_match(self) -> None:
        """Jump to the previous line containing the search text."""
        self._find(forward=False)

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.needle = event.value
        self.match_line = None
        event.input.display = False
        self.lines_widget.focus()
        self._find(forward=True)

    def action_close_search(self) -> None:
        """Close the search box without searching."""
        box = self.query_one("#log-search", Input)
        if not box.display:
            raise SkipAction()  # nothing to close: the screen's esc goes back
        box.display = False
        self.lines_widget.focus()

    # -------------------------------------------------------------- private

    def _find(self, *, forward: bool) -> None:
        if not self.needle:
            return
        lines = self.lines_widget.lines
        needle = self.needle.lower()
        hits = [i for i, line in enumerate(lines) if needle in line.lower()]
        if not hits:
            self.match_line = None
            self.notify(f"not found: {self.needle}", severity="warning", timeout=2)
            self._update_header()
            return
        current = self.match_line
        if current is None:
            pick = hits[0] if forward else hits[-1]
        elif forward:
            pick = next((i for i in hits if i > current), hits[0])
        else:
            pick = next((i for i in reversed(hits) if i < current), hits[-1])
        self.match_line = pick
        # Searching pauses follow, else the next live line would scroll the match away.
        self.follow = False
        self.lines_widget.scroll_to(y=max(0, pick - 2), animate=False)
        # The buffer holds the log's last lines only: a buffer line is a file
        # line only while the whole log is in it.
        where = f"line {pick + 1:,}"
        if not self._whole or len(lines) >= self.max_lines:
            where += f" of the last {len(lines):,}"
        self._update_header(f"match {hits.index(pick) + 1}/{len(hits)} at {where}")

    def _follow_changed(self, _following: bool) -> None:
        self._update_header()

    def _update_header(self, extra: str = "") -> None:
        header = self.query_one("#log-header", LogHeader)
        if self.task_id is None:
            header.show("no task selected", extra=extra)
        elif self.attempt == 0:
            # Skipped or cancelled before it ever ran: say why, not just "not started".
            header.show(self.task_id, self.outcome or "not started", extra=extra)
        else:
            mode = "following" if self.follow else "paused"
            header.show(self.task_id, self.outcome, f"attempt {self.attempt} · {mode}", extra)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A log that cannot be read becomes an error notification."""
        self.app.report_worker(event)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="log-read", description="read log tail",
          exit_on_error=False)
    def _read(self, path: Path, generation: int) -> None:
        lines = read_tail(path, self.max_lines)
        try:
            whole = len(lines) < self.max_lines and path.stat().st_size <= TAIL_BYTES
        except OSError:
            whole = True  # no file (yet): live lines start at line 1
        self.app.call_from_thread(self._loaded, lines, generation, whole)

    def _loaded(self, lines: list[str], generation: int, whole: bool = True) -> None:
        if generation != self._generation:
            return  # another task was selected meanwhile
        self._loading = False
        self._whole = self._whole and whole
        held, self._held = self._held, []
        skip = _overlap(lines, held)
        self._write([*lines, *held[skip:]])

    def _write(self, lines: list[str]) -> None:
        log = self.lines_widget
        log.write_lines(lines, scroll_end=False)
        log.follow_end()
