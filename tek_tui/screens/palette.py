"""What the command palette (``ctrl+p``) offers: each tek action that works now, once.

:func:`palette_commands` is :meth:`TekApp.get_system_commands
<tek_tui.app.TekApp.get_system_commands>`. Textual's own commands are left
out: its Keys panel and Maximize are not tek's (``?`` lists every key, ``z``
zooms), its theme picker offers Textual's themes (``t`` cycles tek's, and
remembers them), and its Quit and Screenshot were a second Quit and a file
written where nobody looks. So are bindings without an id (Textual's "copy
text") and keys the screen's footer hides because they have nothing to act on
now. An action bound to several keys (``home``/``g``), or two actions under
one name (``q`` and ``ctrl+q``: Quit), show once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from textual.app import App, SystemCommand
from textual.dom import DOMNode
from textual.screen import Screen


def palette_commands(app: App[Any], screen: Screen[Any]) -> Iterator[SystemCommand]:
    """The palette's commands for ``screen``: its working, described tek bindings.

    Args:
        app: the app that runs the actions.
        screen: the screen the palette was opened over.

    Returns:
        One command per action, in the order of the screen's bindings
        (focused widget first).
    """
    hides = getattr(screen, "footer_hides", None)
    seen: set[str] = set()
    for node, binding, enabled, tooltip in screen.active_bindings.values():
        if not enabled or binding.system or not binding.description or not binding.id:
            continue
        if hides is not None and hides(binding.action):
            continue
        if binding.action in seen or binding.description in seen:
            continue
        seen |= {binding.action, binding.description}
        help_text = f"{binding.tooltip or tooltip or binding.description}  [{binding.key}]"
        yield SystemCommand(binding.description, help_text,
                            _runner(app, node, binding.action))


def _runner(app: App[Any], node: DOMNode, action: str) -> Callable[[], Awaitable[Any]]:
    async def run() -> None:
        await app.run_action(action, node)

    return run
