"""The footer: Textual's key footer, always with help and quit, and no entry cut in two.

Textual's :class:`~textual.widgets.Footer` lists the focused widget's keys,
then the screen's, then the app's, and clips whatever passes the right edge.
On an 80-column terminal that hid ``? Help`` and ``q Quit`` (the two keys a
newcomer looks for) and cut the last entry mid-word (``x Sk``). This footer
always shows the :data:`PINNED` actions (after the focused pane's keys, which
still lead) and leaves out the entries that do not fit whole, the last ones
first, but the :data:`KEPT` ones (``l Log``, ``/ Filter``: the keys used most)
only once nothing else is left to drop; every key is still in the help
screen and the command palette. A screen with a
``footer_hides(action) -> bool`` method keeps the keys it names out of the
footer while they have nothing to do (the plan-editing keys during a run).
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.events import Resize
from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Actions always shown, whatever has the focus, in this order.
PINNED: tuple[str, ...] = ("help", "quit_console", "quit")
#: Actions shown in their place, before any other that would not fit is.
KEPT: tuple[str, ...] = ("open_log", "filter")


def _name(action: str) -> str:
    """An action without its parameters: ``quit_console('detach')`` -> ``quit_console``."""
    return action.partition("(")[0]


def _width(key: FooterKey) -> int:
    """Cells a key takes in the (non-compact) footer: `` k description ``."""
    width = cell_len(key.key_display) + 2
    if key.description:
        width += cell_len(key.description) + 1
    return width


class TekFooter(Footer):
    """A :class:`Footer` that always shows help and quit and drops entries that would be cut."""

    def compose(self) -> ComposeResult:
        # tek binds no binding groups, so every widget the parent composes is
        # a top-level FooterKey (none is nested in a KeyGroup).
        widgets = list(super().compose())
        keys = [w for w in widgets if isinstance(w, FooterKey)]
        palette = [k for k in keys if k.has_class("-command-palette")]
        pinned = [k for k in keys if _name(k.action) in PINNED and k not in palette]
        pinned.sort(key=lambda k: PINNED.index(_name(k.action)))
        # The focused pane's keys lead, as many as fit whole beside the
        # pinned ones; the pinned ones close the list.
        room = self.app.size.width - sum(_width(k) for k in [*palette, *pinned])
        # A screen may keep keys that do nothing now out of the footer (they
        # still answer, and help and the palette still list them).
        idle = getattr(self.screen, "footer_hides", None)
        wanted = [k for k in keys if k not in palette and k not in pinned
                  and not (idle is not None and idle(k.action))]
        # The kept keys take their room first; the others fill what is left,
        # in order, up to the first that does not fit whole.
        kept: set[FooterKey] = set()
        for key in wanted:
            if _name(key.action) in KEPT and _width(key) <= room:
                kept.add(key)
                room -= _width(key)
        shown: list[Widget] = []
        full = False
        for key in wanted:
            if key in kept:
                shown.append(key)  # in its place among the others
            elif not full and _width(key) <= room:
                room -= _width(key)
                shown.append(key)
            else:
                full = True
        others = [w for w in widgets if not isinstance(w, FooterKey)]
        yield from [*shown, *pinned, *others, *palette]

    _composed_width = 0

    def on_resize(self, event: Resize) -> None:
        """A new width may fit more (or fewer) entries."""
        if self._bindings_ready and event.size.width != self._composed_width:
            self._composed_width = event.size.width
            self.call_after_refresh(self.recompose)
