"""The log pane's lines: a ``Log`` that follows its end until the user scrolls back.

Following (``auto_scroll``) works as in ``less +F`` or k9s's logs: any move
up (``k``, ``↑``, ``PgUp``, ``Home``, ``g``, the mouse wheel, the scroll
bar dragged or clicked above its thumb) pauses it, so the next output line
does not snap the view back to the bottom; ``End``/``G`` jump to the end
and follow again (``f``, bound by :class:`~tek_tui.widgets.log_view.LogView`,
toggles). The pane's header watches ``auto_scroll`` to say which it is.

Textual's ``Log`` scrolls on new lines only when the view is already at the
bottom; once the view shrinks (the loss curve appears, the terminal is
resized) it is no longer there, and the log silently stopped following while
the header still said so. Here following always scrolls to the end: after
each write and after every resize.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding
from textual.widgets import Log

if TYPE_CHECKING:
    from textual import events
    from textual.scrollbar import ScrollTo, ScrollUp


class FollowLog(Log):
    """A ``Log`` that, while following, keeps its last line in view (see the module)."""

    # ↑ ↓ PgUp PgDn Home End come from ScrollView's bindings (Textual's, without
    # ids: the help lists them once, for every pane); their actions are below.
    BINDINGS = [
        Binding("k", "scroll_up", "Scroll up, pause", id="log-up", show=False),
        Binding("j", "scroll_down", "Scroll down", id="log-down", show=False),
        Binding("g", "scroll_home", "First line, pause", id="log-first", show=False),
        Binding("G", "scroll_end", "Last line, follow", id="log-last", show=False),
    ]

    def pause(self) -> None:
        """Stop following (a move up): new lines no longer scroll the view."""
        self.auto_scroll = False

    def follow_end(self) -> None:
        """Scroll to the last line when following (``auto_scroll``)."""
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_resize(self) -> None:
        """A new height moves the end: scroll there again once the layout settles."""
        if self.auto_scroll:
            self.scroll_end(animate=False, x_axis=False)

    # -------------------------------------------------------------- actions
    # Moves are immediate, not animated (Textual animates Home over a second):
    # the view is where the key said before the next line is written.

    def action_scroll_up(self) -> None:
        """One line up; pauses following."""
        self.pause()
        self.scroll_relative(y=-1, animate=False)

    def action_scroll_down(self) -> None:
        """One line down (following stays as it is)."""
        self.scroll_relative(y=1, animate=False)

    def action_page_up(self) -> None:
        """One page up; pauses following."""
        self.pause()
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        """One page down (following stays as it is)."""
        self.scroll_page_down(animate=False)

    def action_scroll_home(self) -> None:
        """The first line kept, at its start; pauses following."""
        self.pause()
        self.scroll_to(0, 0, animate=False)

    def action_scroll_end(self) -> None:
        """The last line; follows again."""
        self.auto_scroll = True
        self.scroll_end(animate=False, x_axis=False)

    # ---------------------------------------------------------------- mouse

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        # Runs before Widget's handler (the MRO), which does the scrolling.
        if not (event.ctrl or event.shift) and self.scroll_y > 0:
            self.pause()

    def _on_scroll_to(self, message: ScrollTo) -> None:
        # The scroll bar dragged: upward pauses, as the wheel does.
        if message.y is not None and message.y < self.scroll_y:
            self.pause()

    def _on_scroll_up(self, message: ScrollUp) -> None:
        # A click on the scroll bar above its thumb (a page up).
        self.pause()
