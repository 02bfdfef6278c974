"""The pools pane: each worker pool's size, load and throughput, and admission.

Fed by :meth:`PoolsPane.update_pools` from the run protocol (``PoolInfo``s
and the admission flag). Throughput (finished tasks per second) is the rate
of change of each pool's ``finished`` counter over the last
:data:`RATE_WINDOW_S` seconds up to now (over at least one second, so a burst
of updates does not spike), measured with the pane's clock (monotonic,
injectable for tests and snapshots: ``PoolsPane(clock=...)``). A counter
holds its last reported value until the next report, so the rate falls to
0.0 within the window once nothing finishes (the pane repaints every
second while a rate shows). When admission is paused a line says so
and why, in the warning colour and with a ``⏸`` sign; a pool whose queued
tasks wait for CPUs, GPUs or memory while it has free slots gets a ``⧗``
line naming the resource (growing that pool would not help).

The pane never resizes a pool itself: up/down select a pool and ``+``/``-``
post :class:`PoolsPane.ResizeRequested` (``=`` posts :class:`PoolsPane.SizeAsked`,
for the screen's dialog); the screen turns that into a
``ResizePool`` control, and the new size shows when the run reports it.
Repeated presses before that report build on the last requested size; a
request the run refuses is dropped (:meth:`PoolsPane.drop_request`). Once
the run has finished (``update_pools(..., ended=True)``) the resize keys
leave the footer and do nothing here, and finished/s reads 0.0: nothing runs.
(While a run whose tasks have all ended stays open for retries, the screen
keeps the keys out of its footer but they still resize: a retry runs in the
pool at the size set.)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from rich.cells import set_cell_size
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.widget import Widget

from core.events import PoolInfo

RATE_WINDOW_S = 5.0
"""Finished/s is measured over this many seconds up to now."""
REPAINT_S = 1.0
"""How often a shown rate is repainted, so that it falls while nothing finishes."""


class PoolsPane(Widget, can_focus=True):
    """Worker pools with size, busy, queued and finished per second."""

    COMPONENT_CLASSES = {
        "pools-pane--header",
        "pools-pane--cursor",
        "pools-pane--paused",
        "pools-pane--busy",
        "pools-pane--idle",
    }

    DEFAULT_CSS = """
    PoolsPane { height: auto; min-height: 3; }
    PoolsPane > .pools-pane--header { text-style: bold; color: $text-muted; }
    PoolsPane > .pools-pane--cursor { text-style: reverse; }
    PoolsPane > .pools-pane--paused { color: $warning; text-style: bold; }
    PoolsPane > .pools-pane--busy { color: $tek-running; }
    PoolsPane > .pools-pane--idle { color: $text-muted; }
    """

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Previous pool", show=False, id="pool-cursor-up"),
        Binding("down,j", "cursor(1)", "Next pool", show=False, id="pool-cursor-down"),
        Binding("plus", "resize(1)", "Grow pool", id="pool-grow"),
        Binding("minus", "resize(-1)", "Shrink pool", id="pool-shrink"),
        # Same key as the screen's "type a size", but for the pool selected
        # here, as `+`/`-` are (it was the selected task's pool).
        Binding("equals_sign", "ask_size", "Pool size", id="pool-resize-selected"),
    ]

    class _PoolMessage(Message):
        """A message about one pool and a size."""

        def __init__(self, pools_pane: PoolsPane, pool: str, size: int) -> None:
            super().__init__()
            self.pools_pane = pools_pane
            self.pool = pool
            self.size = size

        @property
        def control(self) -> PoolsPane:
            return self.pools_pane

    class ResizeRequested(_PoolMessage):
        """The user asked for ``pool`` to run ``size`` tasks at once."""

    class SizeAsked(_PoolMessage):
        """The user wants to type a new size for ``pool`` (now ``size``)."""

    cursor: var[int] = var(0)
    """Index of the selected pool."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._clock = clock
        self.pools: list[PoolInfo] = []
        self.admission_paused = False
        self.admission_reason = ""
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._requested: dict[str, int] = {}
        self.ended = False
        """The run has finished: no pool can be resized, nothing finishes any more."""
        self._painted_rates: dict[str, str] = {}

    def on_mount(self) -> None:
        self.set_interval(REPAINT_S, self._repaint_rates, name="pool rates")

    def _repaint_rates(self) -> None:
        """Repaint when a rate shown has changed: it falls as its window moves past the
        last finish, with no update from the run."""
        if self._rates() != self._painted_rates:
            self.refresh()

    def _rates(self) -> dict[str, str]:
        """Each pool's finished/s as shown (one decimal)."""
        return {pool.name: f"{self.finished_per_second(pool.name):.1f}" for pool in self.pools}

    @property
    def selected_pool(self) -> str | None:
        """Name of the selected pool, if any."""
        return self.pools[self.cursor].name if self.pools else None

    def update_pools(self, pools: Sequence[PoolInfo], admission_paused: bool, reason: str,
                     *, ended: bool = False) -> None:
        """Show the pools' latest figures and the admission state.

        Args:
            pools: every pool, in the order to show them.
            admission_paused: True while the run admits no new tasks.
            reason: why admission is paused (shown as given).
            ended: the run has finished (resize keys hidden, no pending sizes).
        """
        now = self._clock()
        if ended != self.ended:
            self.ended = ended
            self.refresh_bindings()
        if ended:
            self._requested.clear()
        keep = self.selected_pool
        self.pools = list(pools)
        self.admission_paused = admission_paused
        self.admission_reason = reason
        for pool in self.pools:
            history = self._history.setdefault(pool.name, deque())
            if history and pool.finished < history[-1][1]:
                history.clear()  # a new run: the counter started again
            history.append((now, pool.finished))
            while len(history) > 2 and now - history[1][0] >= RATE_WINDOW_S:
                history.popleft()
            if self._requested.get(pool.name) == pool.size:
                del self._requested[pool.name]
        names = [p.name for p in self.pools]
        self.cursor = names.index(keep) if keep in names else min(self.cursor, max(len(names) - 1, 0))
        self.refresh(layout=True)

    def drop_request(self, pool: str) -> None:
        """Forget the size asked for ``pool`` (the run refused it): show its real size."""
        if self._requested.pop(pool, None) is not None:
            self.refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No resizing once the run has ended (the keys leave the footer too)."""
        if self.ended and action in ("resize", "ask_size"):
            return False
        return True

    def finished_per_second(self, pool: str) -> float:
        """Tasks the pool finished per second over the last :data:`RATE_WINDOW_S`
        seconds up to now (0.0 until two updates, and once the run has ended).

        The counter keeps its last reported value until now: measured from
        the last update at or before the window's start, a pool that
        finished nothing for the whole window reads 0.0, however fast it
        went before (a run whose tasks have all ended, open for retries).
        """
        history = self._history.get(pool)
        if self.ended or not history or len(history) < 2:
            return 0.0
        now = self._clock()
        t0, f0 = history[0]
        for t, f in history:
            if now - t < RATE_WINDOW_S:
                break
            t0, f0 = t, f
        # At least a second in the denominator: a burst of updates (a console
        # joining late, a replay) must not read as thousands per second.
        return (history[-1][1] - f0) / max(now - t0, 1.0)

    def watch_cursor(self) -> None:
        self.refresh()

    def action_cursor(self, step: int) -> None:
        """Select the previous or next pool."""
        if self.pools:
            self.cursor = (self.cursor + step) % len(self.pools)

    def action_resize(self, delta: int) -> None:
        """Ask for the selected pool to grow or shrink by ``delta`` (never below 1)."""
        if not self.pools or self.ended:
            return
        pool = self.pools[self.cursor]
        size = max(1, self._requested.get(pool.name, pool.size) + delta)
        if size == self._requested.get(pool.name, pool.size):
            return
        self._requested[pool.name] = size
        self.refresh()
        self.post_message(self.ResizeRequested(self, pool.name, size))

    def action_ask_size(self) -> None:
        """Ask the screen for a dialog to type the selected pool's size."""
        if self.pools:
            pool = self.pools[self.cursor]
            size = self._requested.get(pool.name, pool.size)
            self.post_message(self.SizeAsked(self, pool.name, size))

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        waiting = sum(1 for p in self.pools if p.waiting_for)
        return max(1, 1 + len(self.pools) + waiting + (1 if self.admission_paused else 0))

    def render(self) -> Text:
        compact = self.size.width < 50
        style = self.get_component_rich_style
        name_w = max([4, *(len(p.name) for p in self.pools)])
        name_w = min(name_w, 10 if compact else 24)
        text = Text(no_wrap=True, overflow="ellipsis")
        if compact:
            text.append(f"  {'pool':<{name_w}} size busy que  /s\n", style("pools-pane--header"))
        else:
            head = f"  {'pool':<{name_w}}  size  busy  queued  finished/s  load\n"
            text.append(head, style("pools-pane--header"))
        if not self.pools:
            text.append("  no pools yet\n", style("pools-pane--idle"))
        rates = self._painted_rates = self._rates()
        for i, pool in enumerate(self.pools):
            rate = float(rates[pool.name])
            requested = self._requested.get(pool.name)
            size = f"{pool.size}→{requested}" if requested is not None else str(pool.size)
            marker = "▶ " if i == self.cursor else "  "
            label = set_cell_size(pool.name, name_w)
            if compact:
                row = f"{marker}{label} {size:>4} {pool.busy:>4} {pool.queued:>3} {rate:>4.1f}"
            else:
                row = f"{marker}{label}  {size:>4}  {pool.busy:>4}  {pool.queued:>6}  {rate:>10.1f}  "
            line = Text(row, style("pools-pane--cursor") if i == self.cursor and self.has_focus else "")
            if not compact:
                cells = min(pool.size, 20) or 1
                used = min(cells, round(cells * pool.busy / pool.size)) if pool.size else 0
                line.append("█" * used, style("pools-pane--busy"))
                line.append("░" * (cells - used), style("pools-pane--idle"))
            text.append_text(line)
            text.append("\n")
        for pool in self.pools:
            if pool.waiting_for:  # slots free, yet nothing starts: growing the pool won't help
                text.append(f"⧗ {pool.name}: {pool.queued} wait for {pool.waiting_for}\n",
                            style("pools-pane--paused"))
        if self.admission_paused:
            why = f": {self.admission_reason}" if self.admission_reason else ""
            text.append(f"⏸ admission paused{why}\n", style("pools-pane--paused"))
        text.rstrip()
        return text
