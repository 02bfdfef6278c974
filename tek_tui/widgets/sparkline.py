"""Tiny text gauges for the system pane: sparklines and fractional bars.

Plain functions returning strings (or Rich ``Text``), so they are cheap to
call every second for dozens of series and trivial to test. Textual's own
``Sparkline`` widget is one widget per series with its own layout pass; the
system pane draws many series inline on one line each, so it uses these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.style import Style
from rich.text import Text

LEVELS = "▁▂▃▄▅▆▇█"
"""Eight heights of a sparkline cell, lowest first."""
_PARTIAL = " ▏▎▍▌▋▊▉"


def spark_levels(values: Iterable[float | None], width: int, lo: float = 0.0, hi: float = 100.0) -> list[int]:
    """Heights (0–7, or -1 for a gap) of the last ``width`` values scaled to ``lo``..``hi``.

    Args:
        values: oldest first; ``None`` is a gap (the reading failed).
        width: most cells to return.
        lo: value drawn as the lowest bar.
        hi: value drawn as the highest bar.

    Returns:
        One level per value, at most ``width``, newest last.
    """
    tail = list(values)[-width:] if width > 0 else []
    span = hi - lo if hi > lo else 1.0
    out = []
    for value in tail:
        if value is None:
            out.append(-1)
            continue
        ratio = min(max((value - lo) / span, 0.0), 1.0)
        out.append(min(int(ratio * len(LEVELS)), len(LEVELS) - 1))
    return out


def sparkline(
    values: Sequence[float | None],
    width: int,
    low: Style,
    high: Style,
    *,
    lo: float = 0.0,
    hi: float = 100.0,
) -> Text:
    """A sparkline of the last ``width`` values; the top three heights use ``high``.

    Args:
        values: oldest first.
        width: most cells.
        low: style of ordinary cells.
        high: style of cells in the top three levels (busy, hot).
        lo: value of the lowest bar.
        hi: value of the highest bar.
    """
    text = Text()
    for level in spark_levels(values, width, lo, hi):
        if level < 0:
            text.append(" ")
        else:
            text.append(LEVELS[level], high if level >= len(LEVELS) - 3 else low)
    return text


def bar(fraction: float, width: int) -> str:
    """A left-aligned bar ``width`` cells wide, in eighths of a cell, padded with spaces."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    body = "█" * full + (_PARTIAL[part] if part and full < width else "")
    return body.ljust(width)
