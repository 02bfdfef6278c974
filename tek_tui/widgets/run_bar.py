"""The run bar: one line on top with run, status, per-state counts and elapsed time.

The line is built for the width it has (again on each resize). When the full
line does not fit, the less telling parts give way first, in this order: the
dropped-lines note shortens, the counts close up (``✓12`` for ``✓ 12``), an
admission reason ends in "…", the status says less (``ended (r, q)``), the
``tek ▸`` prefix goes, the plan name ends in "…", and only the running,
retrying and failed counts stay. The elapsed time is the last thing to go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from core.events import RunStatus, TaskState
from tek_tui.widgets.states import STATE_SYMBOLS, format_duration, state_colour


@dataclass
class _Figures:
    plan: str = ""
    status: RunStatus = RunStatus.PENDING
    counts: Mapping[TaskState, int] = field(default_factory=dict)
    elapsed: float | None = None
    admission: str = ""
    dropped: int = 0
    done: bool = False
    attached: bool = False


class RunBar(Static):
    """``tek ▸ nightly · running · ✓ 12 ● 4 ✗ 1 ○ 73 · 1m04s``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._figures: _Figures | None = None

    def show(
        self,
        *,
        plan: str,
        status: RunStatus,
        counts: Mapping[TaskState, int],
        elapsed: float | None,
        admission: str = "",
        dropped: int = 0,
        done: bool = False,
        attached: bool = False,
    ) -> None:
        """Redraw from the run's figures.

        Args:
            plan: plan name to show.
            status: the run's status.
            counts: tasks per state.
            elapsed: seconds since start, or None before it.
            admission: why dispatch is paused, or empty.
            dropped: live output lines dropped for this console.
            done: every task has ended but the run stays open for retries.
            attached: the run is another process's: ``q`` detaches (as the footer says).
        """
        self._figures = _Figures(plan, status, dict(counts), elapsed, admission, dropped,
                                 done, attached)
        self.update(self._line(self.size.width or 10**6))

    def on_resize(self, event: Resize) -> None:
        """Fit the line to the new width."""
        if self._figures is not None:
            self.update(self._line(self.size.width))

    def _line(self, width: int) -> Text:
        """The most telling line that fits ``width`` cells (see the module docstring)."""
        for level in range(8):
            text = self._build(level, width)
            if cell_len(text.plain) <= width:
                return text
        return text  # still too long: cut at the edge, with "…"

    def _build(self, level: int, width: int) -> Text:
        f = self._figures
        assert f is not None
        variables = self.app.theme_variables
        news = _news(f)
        admission = f.admission if news else ""
        label = _label(f, short=level >= 4)
        counts = Text()
        for state in TaskState:
            n = f.counts.get(state, 0)
            if n and (level < 7 or state in _ACTIVE):
                counts.append("  " if level < 2 else " ")
                counts.append(f"{STATE_SYMBOLS[state]}{' ' if level < 2 else ''}{n}",
                              style=state_colour(variables, state))
        elapsed = f"  · {format_duration(f.elapsed)}" if f.elapsed is not None else ""
        dropped = ""
        if f.dropped:
            dropped = f"  · {f.dropped:,} " + ("live lines dropped" if level < 1 else "dropped")
        head = "tek ▸ " if level < 5 else ""
        plan = f.plan
        fixed = (cell_len(head) + cell_len(" · ") + cell_len(label) + counts.cell_len
                 + cell_len(elapsed) + cell_len(dropped) + (cell_len("  · ⏸") if news else 0))
        if level >= 6 and fixed + cell_len(plan) > width:
            keep = max(4, width - fixed)
            plan = set_cell_size(plan, keep - 1) + "…" if keep < cell_len(plan) else plan
        if admission and level >= 3:
            # The reason gets what room is left, ending in "…".
            room = width - fixed - cell_len(plan) - 1
            admission = "" if room < 6 else (
                admission if cell_len(admission) <= room else set_cell_size(admission, room - 1) + "…")
        text = Text.assemble((head, "bold"), (plan, "bold"), " · ", no_wrap=True,
                             overflow="ellipsis")
        text.append(label, style="bold reverse" if f.status is RunStatus.PAUSED else "bold")
        text.append_text(counts)
        text.append(elapsed)
        if news:
            text.append(f"  · ⏸ {admission}".rstrip(), style="bold")
        text.append(dropped)
        return text


#: The counts kept when the bar has room for little else.
_ACTIVE = frozenset({TaskState.RUNNING, TaskState.RETRYING, TaskState.FAILED})


def _news(f: _Figures) -> bool:
    """The admission reason is news: a user's pause is the status itself; other
    reasons (memory, stopping) are news."""
    return bool(f.admission) and not (f.status is RunStatus.PAUSED and "user" in f.admission)


def _label(f: _Figures, *, short: bool) -> str:
    """What the run is doing, in full or short."""
    closes = "detaches" if f.attached else "closes"
    if f.status is RunStatus.PENDING:
        return "waiting (s)" if short else "waiting for start (s)"
    if f.status is RunStatus.PAUSED:
        return "paused (p)" if short else "paused (p resumes)"
    if f.done:
        return "ended (r, q)" if short else f"all tasks ended (r retries, q {closes})"
    return f.status.value
