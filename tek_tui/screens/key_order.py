"""Keys handled one at a time, in the order typed, however fast they arrive.

:class:`KeysInOrder` is mixed into :class:`~tek_tui.app.TekApp` (an app-wide
concern; it lives beside the screens whose keys it orders).

Why. Keys that arrive in one burst (SSH, a paste of commands, ``tmux
send-keys``) are all in the app's queue before the first is handled, and
Textual takes them from it faster than it handles them: it runs a priority
binding at once, passes any other key to the widget focused *at that moment*,
and runs that key's binding only once it has bubbled back up from there. So
in ``tab /`` the ``/`` (a priority binding) ran before the ``tab``, and in
``/ lint`` typed while an earlier key was still on its way, ``lint`` went to
the widget focused before the ``/`` opened the filter box.

How. A key (or paste) is passed on only once the one before it is done:
after it has gone through every widget from the one it was given to up to
the app (a callback queued behind it at each of them, in turn, says so), or
was taken by a priority binding. Keys that come meanwhile wait in arrival
order. A key whose path is cut (a widget on it was removed, its callback
never runs) frees the next within :data:`KEY_CHECK_S`; one still on its way
after :data:`KEY_WAIT_MAX_S` (an app too busy to answer) frees it too, so
nothing waits for ever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, TypeVar

from textual import events
from textual.app import App
from textual.message_pump import MessagePump

#: How often a key still on its way is checked (is the widget it waits at still there?).
KEY_CHECK_S = 0.5
#: Longest wait for a key's way up to the app before the next key goes anyway.
KEY_WAIT_MAX_S = 5.0

_Input = events.Key | events.Paste
ReturnType = TypeVar("ReturnType")


class KeysInOrder(App[ReturnType]):
    """An app that handles each key only once the key before it is done (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys_waiting: deque[_Input] = deque()
        self._key_busy = False
        """A key is on its way: the next ones wait."""
        self._key_released: _Input | None = None
        """The waiting key posted again, now that it is its turn."""
        self._key_turn = 0
        """Counts keys done: a late callback or watchdog of an earlier key is ignored."""
        self._key_at: MessagePump | None = None
        """Where the key on its way is awaited now."""

    async def on_event(self, event: events.Event) -> None:
        if not isinstance(event, _Input) or event.is_forwarded:
            await super().on_event(event)
            return
        if event is self._key_released:
            self._key_released = None  # the head of the line: its turn now
        elif self._key_busy:
            self._keys_waiting.append(event)
            return
        self._key_busy = True
        turn = self._key_turn
        try:
            await super().on_event(event)  # priority bindings, else passed to the focused widget
        finally:
            if not event.is_forwarded:
                self._next_key(turn)  # taken here (a priority binding), or failed: done
        if not event.is_forwarded:
            return
        self._follow(self.focused or self.screen, turn)
        asyncio.get_running_loop().call_later(KEY_CHECK_S, self._check_key, turn, KEY_CHECK_S)

    def _follow(self, node: MessagePump, turn: int) -> None:
        """Queue a callback behind the key at ``node``: it runs once ``node`` handled it."""
        self._key_at = node
        if not node.call_later(self._key_reached, node, turn):
            self._next_key(turn)  # closed: the key goes no further

    def _check_key(self, turn: int, waited: float) -> None:
        """The watchdog: free the next key if this one's path was cut (or it took too long)."""
        if turn != self._key_turn:
            return  # done
        node = self._key_at
        alive = node is not None and not (node._closing or node._closed)
        if alive and waited < KEY_WAIT_MAX_S:  # slow (a busy app), not lost: wait on
            asyncio.get_running_loop().call_later(
                KEY_CHECK_S, self._check_key, turn, waited + KEY_CHECK_S)
        else:
            self._next_key(turn)

    def _key_reached(self, node: MessagePump, turn: int) -> None:
        parent = node._parent
        if node is self or parent is None:
            self._next_key(turn)
        else:
            self._follow(parent, turn)

    def _next_key(self, turn: int) -> None:
        """The key of ``turn`` is done: pass on the next one waiting, if any."""
        if turn != self._key_turn:
            return  # an earlier key's late callback or watchdog
        self._key_turn += 1
        if self._keys_waiting:
            self._key_released = self._keys_waiting.popleft()
            self.post_message(self._key_released)  # still busy until it is done
        else:
            self._key_busy = False
