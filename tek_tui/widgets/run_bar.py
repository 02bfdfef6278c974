"""The run bar: one line on top with run, status, per-state counts and elapsed time."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.widgets import Static

from core.events import RunStatus, TaskState
from tek_tui.widgets.states import STATE_SYMBOLS, format_duration, state_colour


class RunBar(Static):
    """``tek ▸ nightly · running · ✓ 12 ● 4 ✗ 1 ○ 73 · 1m04s``."""

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
        variables = self.app.theme_variables
        text = Text.assemble(("tek ▸ ", "bold"), (plan, "bold"), " · ")
        label = status.value
        if status is RunStatus.PENDING:
            label = "waiting for start (s)"
        elif status is RunStatus.PAUSED:
            label = "paused (p resumes)"
        elif done:
            label = f"all tasks ended (r retries, q {'detaches' if attached else 'closes'})"
        text.append(label, style="bold reverse" if status is RunStatus.PAUSED else "bold")
        for state in TaskState:
            n = counts.get(state, 0)
            if n:
                text.append("  ")
                text.append(f"{STATE_SYMBOLS[state]} {n}", style=state_colour(variables, state))
        if elapsed is not None:
            text.append(f"  · {format_duration(elapsed)}")
        if admission and not (status is RunStatus.PAUSED and "user" in admission):
            # A user's pause is the status itself; other reasons (memory,
            # stopping) are news.
            text.append(f"  · ⏸ {admission}", style="bold")
        if dropped:
            text.append(f"  · {dropped:,} live lines dropped")
        self.update(text)
