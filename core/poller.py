"""One epoll set per event loop for many short-lived descriptors: :func:`poller`.

A shell attempt watches its output pipe, and sometimes its leader's pidfd.
``loop.add_reader`` costs about 30 us of Python per descriptor (transport
checks, a selector key lookup that raises and catches ``KeyError``, and
``remove_reader`` as much again), the largest single cost the loop paid per
short task. A :class:`Poller` is one ``select.epoll`` that the loop watches
with a single reader: adding a descriptor is one ``epoll_ctl`` and a dict
entry, and one wake-up of the loop serves every descriptor that is ready.

Level-triggered: a callback that leaves data unread is called again.
Callbacks run on the loop and must not raise (an exception is passed to the
loop's exception handler, and the descriptor is dropped).
"""

from __future__ import annotations

import asyncio
import select
import weakref
from collections.abc import Callable

_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = (
    weakref.WeakKeyDictionary()
)


class Poller:
    """Callbacks for readable descriptors, run by one reader on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._watched = False

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever ``fd`` is readable (or at end of file).

        The epoll set stays on the loop from its first use to the loop's end.
        """
        self._epoll.register(fd, select.EPOLLIN)
        self._callbacks[fd] = callback
        if not self._watched:
            self._loop.add_reader(self._epoll.fileno(), self._ready)
            self._watched = True

    def remove(self, fd: int) -> None:
        """Stop watching ``fd`` (call before closing it)."""
        if self._callbacks.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:  # already closed
                pass

    def _ready(self) -> None:
        callbacks = self._callbacks
        for fd, _ in self._epoll.poll(0):
            callback = callbacks.get(fd)
            if callback is None:  # removed by an earlier callback of this round
                continue
            try:
                callback()
            except BaseException as exc:  # keep serving the others
                self.remove(fd)
                self._loop.call_exception_handler(
                    {"message": "tek poller callback failed", "exception": exc}
                )


def poller(loop: asyncio.AbstractEventLoop) -> Poller:
    """The loop's poller, made on first use."""
    p = _pollers.get(loop)
    if p is None:
        p = _pollers[loop] = Poller(loop)
    return p
