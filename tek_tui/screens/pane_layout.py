"""Pane layout of the run screen: which panes show, which has the focus, zoom and tabs.

:class:`PaneLayoutScreen` sits between :class:`~tek_tui.screens.plan_editing.PlanEditScreen`
and :class:`~tek_tui.screens.main.MainScreen`, which composes the panes (``#pane-<id>``
containers) and paints them (:meth:`PaneLayoutScreen._flush`).

A grid of five panes at large sizes. Below 100×28 the screen becomes
``-narrow``: the task table plus one other pane, ``tab`` switching which.
``z`` zooms the focused pane to the whole screen; focusing another pane while
zoomed (``tab``, ``l``, ``/``) zooms that one instead.

Which pane is active always follows the screen's focus *now*. Focus moves at
once (``Screen.set_focus``), but its ``DescendantFocus`` events arrive later,
each after a climb through its widget's ancestors: after a burst of keys
(SSH, ``tmux send-keys``; the app takes them in order, see
:mod:`~tek_tui.screens.key_order`) the event of the first ``tab`` (the log
pane's, deeper in the tree) came after the second's, and taking the pane
from it made ``tab tab z`` zoom the log (and ``/`` search it) while the focus
was on the DAG.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.events import DescendantFocus, Resize
from textual.widget import Widget

from tek_tui.screens.plan_editing import PlanEditScreen

#: Panes in ``tab`` order: (pane id, title).
PANES: tuple[tuple[str, str], ...] = (
    ("tasks", "Tasks"),
    ("log", "Log"),
    ("dag", "DAG"),
    ("pools", "Pools"),
    ("system", "System"),
)
#: Below either size the screen shows the table plus one pane at a time.
NARROW_WIDTH, NARROW_HEIGHT = 100, 28


class PaneLayoutScreen(PlanEditScreen):
    """A run screen made of the :data:`PANES`, one focused, maybe one zoomed."""

    BINDINGS = [
        Binding("z", "zoom", "Zoom", id="pane-zoom", tooltip="Zoom the focused pane"),
        Binding("tab", "next_pane", "Next pane", id="pane-next", show=False),
        Binding("shift+tab", "next_pane(-1)", "Previous pane", id="pane-prev", show=False),
    ]

    active_pane = "tasks"
    """Pane holding the focus."""
    shown_pane = "log"
    """Pane shown beside the table on a narrow screen."""
    zoomed: str | None = None
    """Pane zoomed to the whole screen, or None."""

    def _flush(self) -> None:
        """Paint what changed (the main screen's); panes shown again catch up here."""

    def pane_title(self, pane_id: str, title: str) -> str:
        """The border title of a pane shown whole (the main screen adds the task filter)."""
        return title

    def pane(self, pane_id: str) -> Widget:
        """The container of pane ``pane_id``."""
        return self.query_one(f"#pane-{pane_id}")

    def pane_visible(self, pane_id: str) -> bool:
        """Whether a pane is on screen (not hidden by zoom or the narrow layout)."""
        if self.zoomed is not None:
            return pane_id == self.zoomed
        if self.has_class("-narrow"):
            return pane_id in ("tasks", self.shown_pane)
        return True

    def action_zoom(self) -> None:
        """Zoom the focused pane to the whole screen, or back."""
        self.zoomed = None if self.zoomed else self.active_pane
        self._apply_layout()

    def action_next_pane(self, step: int = 1) -> None:
        """Focus the next (or previous) pane."""
        ids = [pane_id for pane_id, _ in PANES]
        target = ids[(ids.index(self.active_pane) + step) % len(ids)]
        if target != "tasks":
            self.shown_pane = target
        self._focus_pane(target)

    def _focus_pane(self, pane_id: str, *, focus: bool = True) -> None:
        self.active_pane = pane_id
        if self.zoomed is not None:
            self.zoomed = pane_id  # a hidden pane must not take the keys
        self._apply_layout()
        if not focus:
            return
        pane = self.pane(pane_id)
        target = next((w for w in pane.query("*") if w.focusable and w.display), None)
        if target is not None:
            # Synchronous, unlike Widget.focus: keys already queued behind this
            # one (a burst of tab presses) must see the new focus.
            self.set_focus(target)

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        """Track which pane holds the focus (mouse clicks included).

        The pane is taken from the focus as it is now, not from the event's
        widget: in a burst of keys the event may be about a focus that has
        moved on since (see the module docstring).
        """
        node: Any = self.focused
        while node is not None and node is not self:
            if isinstance(node, Widget) and node.id and node.id.startswith("pane-"):
                self.active_pane = node.id.removeprefix("pane-")
                if self.active_pane != "tasks":
                    self.shown_pane = self.active_pane
                break
            node = node.parent
        for pane_id, _ in PANES:
            self.pane(pane_id).set_class(pane_id == self.active_pane, "-active")
        self.refresh_bindings()  # a key may say another thing here (`/`: Filter, Search)

    def on_resize(self, event: Resize) -> None:
        """Switch between the grid and the narrow (tabbed) layout."""
        narrow = event.size.width < NARROW_WIDTH or event.size.height < NARROW_HEIGHT
        self.set_class(narrow, "-narrow")
        self._apply_layout()

    def _apply_layout(self) -> None:
        for pane_id, title in PANES:
            pane = self.pane(pane_id)
            pane.display = self.pane_visible(pane_id)
            if self.has_class("-narrow") and pane_id != "tasks":
                others = " ".join(
                    f"[reverse] {t} [/]" if p == pane_id else t for p, t in PANES if p != "tasks"
                )
                pane.border_title = f"{others}  (tab)"
            else:
                pane.border_title = self.pane_title(pane_id, title)
        self.set_class(self.zoomed is not None, "-zoom")
        # Panes that were hidden catch up now.
        self._flush()

