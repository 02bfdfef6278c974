"""The log pane's header: one line saying which task, how it ended, attempt and follow state.

``fetch · ✗ failed: exit code 3 · attempt 2 · following · match 1/4 at line 12``

The line always fits the pane's width (:func:`fit_header`): a long reason is
shortened first (ending in ``…``), then the search note, then the task id,
so that the attempt and whether the log follows stay in view. A reason of
150 characters used to wrap onto a second line and be cut there
mid-sentence, with no ``…`` and without the attempt and follow state.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from tek_tui.widgets.log_text import escaped

#: Between the header's parts.
SEP = " · "
#: Cells a shortened part keeps at least (with its ``…``), by part: id, why, tail, extra.
_KEEP = (8, 10, 0, 12)
#: Which part gives way first: the reason, then the search note, then the id.
_SHRINK_ORDER = (1, 3, 0)


def shorten(text: str, cells: int) -> str:
    """``text`` in at most ``cells`` cells, ending in ``…`` when cut."""
    if cell_len(text) <= cells:
        return text
    if cells <= 0:
        return ""
    # set_cell_size pads with a space where a wide character would straddle the cut.
    return set_cell_size(text, cells - 1).rstrip() + "…"


def fit_header(parts: tuple[str, str, str, str], width: int) -> str:
    """The header's parts joined with `` · `` in at most ``width`` cells.

    Args:
        parts: task id, how it ended and why, ``attempt N · following``, a
            search note; empty ones are left out.
        width: the cells available; 0 or less: not laid out yet, nothing is cut.

    Returns:
        One line: parts are shortened in :data:`_SHRINK_ORDER` down to
        :data:`_KEEP` cells each, then the whole line is cut at the end.
    """
    texts = [escaped(part) for part in parts]
    line = SEP.join(t for t in texts if t)
    if width <= 0:
        return line
    over = cell_len(line) - width
    for i in _SHRINK_ORDER:
        if over <= 0:
            break
        size = cell_len(texts[i])
        give = min(over, size - _KEEP[i])
        if give > 0:
            texts[i] = shorten(texts[i], size - give)
            over -= size - cell_len(texts[i])
    return shorten(SEP.join(t for t in texts if t), width)


class LogHeader(Widget):
    """The header line, redrawn to fit whenever its parts or its width change."""

    parts: reactive[tuple[str, str, str, str]] = reactive(("", "", "", ""))
    """Task id, how it ended and why, ``attempt N · following``, search note."""

    def show(self, head: str, why: str = "", tail: str = "", extra: str = "") -> None:
        """Set the header's parts (see :attr:`parts`); the mouse shows the whole line."""
        self.parts = (head, why, tail, extra)
        self.tooltip = Text(fit_header(self.parts, 0))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Always one line (see the module docstring)."""
        return 1

    def render(self) -> Text:
        """The parts, fitted to the width now."""
        return Text(fit_header(self.parts, self.content_size.width), no_wrap=True,
                    overflow="ellipsis", end="")
