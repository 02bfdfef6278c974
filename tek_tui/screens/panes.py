"""Pane widgets built by another part of the console, with stand-ins until they exist.

The DAG, pools and system panes live in ``tek_tui.widgets.{dag_view,pools_pane,
system_pane}``. They are imported here, once, so the main screen composes
either the real widget or a :class:`PanePlaceholder` that accepts the same
calls and shows a one-line notice (keeps the console running while a pane is
missing or fails to import).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import Static


class PanePlaceholder(Static, can_focus=True):
    """Stand-in for a missing pane: accepts every update call and ignores it."""

    def __init__(self, what: str, **kwargs: Any) -> None:
        super().__init__(f"{what}: not available in this build", **kwargs)

    def set_tasks(self, *args: Any) -> None:
        """Ignored (DagView's call)."""

    def update_states(self, *args: Any) -> None:
        """Ignored (DagView's call)."""

    def select(self, *args: Any) -> None:
        """Ignored (DagView's call)."""

    def update_pools(self, *args: Any, **kwargs: Any) -> None:
        """Ignored (PoolsPane's call)."""

    def set_task_pids(self, *args: Any) -> None:
        """Ignored (SystemPane's call)."""


def make_dag_view(**kwargs: Any) -> Any:
    """A ``DagView``, or a placeholder."""
    try:
        from tek_tui.widgets.dag_view import DagView
    except ImportError:
        return PanePlaceholder("DAG view", **kwargs)
    return DagView(**kwargs)


def make_pools_pane(clock: Callable[[], float] | None = None, **kwargs: Any) -> Any:
    """A ``PoolsPane`` (rates measured with ``clock`` when given), or a placeholder."""
    try:
        from tek_tui.widgets.pools_pane import PoolsPane
    except ImportError:
        return PanePlaceholder("Pools pane", **kwargs)
    if clock is not None:
        return PoolsPane(clock=clock, **kwargs)
    return PoolsPane(**kwargs)


def make_system_pane(sampler: Any = None, interval: float = 1.0, **kwargs: Any) -> Any:
    """A ``SystemPane`` (with an injected telemetry sampler when given), or a placeholder."""
    try:
        from tek_tui.widgets.system_pane import SystemPane
    except ImportError:
        return PanePlaceholder("System pane", **kwargs)
    return SystemPane(sampler=sampler, interval=interval, **kwargs)
