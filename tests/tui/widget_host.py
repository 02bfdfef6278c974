"""A minimal host app for testing one console widget on its own.

It registers tek's themes from ``themes/`` (so ``$tek-*`` variables exist, as
in the real app), mounts the widget built by a factory, focuses it, and keeps
every message of the widget's own classes that it posts (via the app's
``message_hook`` in :func:`run_host`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from textual.app import App, ComposeResult
from textual.message import Message
from textual.pilot import Pilot
from textual.widget import Widget

from tek_tui.themes import DEFAULT_THEME, load_themes, tek_variable_defaults

SIZES = [(80, 24), (200, 50)]


class WidgetHost(App[None]):
    """Shows one widget full screen."""

    def __init__(self, factory: Callable[[], Widget], theme: str = DEFAULT_THEME) -> None:
        self._tek_themes = load_themes().themes
        super().__init__()
        for tek_theme in self._tek_themes.values():
            self.register_theme(tek_theme)
        self.theme = theme
        self._factory = factory
        self.widget: Widget | None = None

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return tek_variable_defaults(getattr(self, "_tek_themes", {}))

    def compose(self) -> ComposeResult:
        self.widget = self._factory()
        yield self.widget

    def on_mount(self) -> None:
        assert self.widget is not None
        self.widget.focus()


@asynccontextmanager
async def run_host(
    factory: Callable[[], Widget], size: tuple[int, int], **kwargs: Any
) -> AsyncIterator[tuple[WidgetHost, Pilot[None], list[Message]]]:
    """Run a :class:`WidgetHost`; yields (app, pilot, messages posted by the widget)."""
    app = WidgetHost(factory, **kwargs)
    posted: list[Message] = []

    def hook(message: Message) -> None:
        # Only the widget's own message classes (nested in it), not Textual's internals.
        widget = app.widget
        # A bubbling message reaches the hook once per node it visits: keep it once.
        if widget is not None and type(message).__qualname__.startswith(type(widget).__name__ + "."):
            if not any(m is message for m in posted):
                posted.append(message)

    async with app.run_test(size=size, message_hook=hook) as pilot:
        await pilot.pause()
        yield app, pilot, posted


def screen_text(app: App[Any]) -> str:
    """The screen as plain text, one line per row (what a person would read)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)
