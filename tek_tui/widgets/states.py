"""How a task state looks: a symbol and a theme colour, never colour alone.

Symbols are single-cell characters that render in any UTF-8 terminal; colours
are the theme's ``tek-<state>`` variables (``themes/*.toml``), looked up at
paint time so a theme switch recolours everything.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text

from core.events import TaskState

#: One symbol per state (legend in the help screen and README).
STATE_SYMBOLS: Mapping[TaskState, str] = {
    TaskState.PENDING: "○",
    TaskState.READY: "◌",
    TaskState.RUNNING: "●",
    TaskState.RETRYING: "↻",
    TaskState.SUCCEEDED: "✓",
    TaskState.FAILED: "✗",
    TaskState.CANCELLED: "⊘",
    TaskState.SKIPPED: "⤼",
}


def state_colour(variables: Mapping[str, str], state: TaskState) -> str:
    """The theme colour of ``state`` (``tek-<state>``), or empty for the default."""
    return variables.get(f"tek-{state.value}", "")


def state_text(variables: Mapping[str, str], state: TaskState, *, label: bool = True) -> Text:
    """``✓ succeeded`` styled in the theme's colour for that state.

    Args:
        variables: the app's theme variables (``App.theme_variables``).
        state: the task state.
        label: add the state's name after the symbol.
    """
    body = f"{STATE_SYMBOLS[state]} {state.value}" if label else STATE_SYMBOLS[state]
    return Text(body, style=state_colour(variables, state))


def format_duration(seconds: float | None, *, tenths: bool = False) -> str:
    """``7s``, ``3m04s``, ``2h05m``; empty for None.

    Args:
        seconds: the duration, or None.
        tenths: under 10 s, say tenths (``0.3s``, and ``0.0s`` for what
            took less than 0.05 s): a table of quick tasks sorted by time
            must not read ``0s`` on every row, nor a column of times mix
            ``0s`` with ``1.0s``.
    """
    if seconds is None:
        return ""
    if tenths and seconds < 9.95:
        return f"{max(0.0, seconds):.1f}s"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
