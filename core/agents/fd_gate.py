"""Hold shell spawns back while tek is short of file descriptors.

A running shell attempt holds up to three descriptors (its output pipe, its
log file once it prints, a pidfd while it outlives its output) and a spawn
briefly four more. :func:`core.process.raise_fd_limit` lifts the soft limit
to the hard one's reach, but where the hard limit is low (a container, a
``ulimit -Hn 256`` shell) ``-j`` above it used to fail the surplus tasks with
"Too many open files". The gate instead lets at most :attr:`FdGate.capacity`
attempts have a process at once and holds the rest, oldest first, until one
ends: the tasks wait as if the pool were smaller.

The capacity is taken from the limit at the first spawn and lowered to what
was running when a spawn still failed for want of descriptors (something
else holds more than the reserve allows for), until no attempt is left; a spawn that fails so while
no other attempt runs fails its task, since waiting would free nothing.
"""

from __future__ import annotations

import asyncio
import collections
import errno
from collections.abc import Callable

from core.process import raise_fd_limit

#: Descriptors one attempt may hold while it runs and spawns.
FDS_PER_ATTEMPT = 4
#: Descriptors left to the rest of tek (journal, sockets, console) at most.
RESERVE = 64
#: Errors that say "not now": out of descriptors (ours, the system's), of processes.
SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN})

Start = Callable[[], None]


def capacity_for(limit: int) -> int:
    """Attempts that fit in a soft limit of ``limit`` open files."""
    reserve = min(RESERVE, limit // 4)
    return max(1, (limit - reserve) // FDS_PER_ATTEMPT)


def is_shortage(error: BaseException | None) -> bool:
    """True for a spawn error that a wait for another attempt's end may cure."""
    return isinstance(error, OSError) and error.errno in SHORTAGE


class FdGate:
    """Counts attempts with a process (``active``) and queues those over capacity."""

    def __init__(self) -> None:
        self.capacity = 0  # 0: not known yet (read at the first admit)
        self.active = 0
        self._held: collections.deque[tuple[asyncio.AbstractEventLoop, Start]] = (
            collections.deque()
        )

    @property
    def held(self) -> int:
        """Attempts waiting for a slot."""
        return len(self._held)

    def admit(self, loop: asyncio.AbstractEventLoop, start: Start) -> bool:
        """True: the caller may spawn now (it is active). False: ``start`` runs later."""
        if not self.capacity:
            self.capacity = capacity_for(raise_fd_limit())
        if self.active < self.capacity and not self._held:
            self.active += 1
            return True
        self._held.append((loop, start))
        return False

    def retry_later(self, loop: asyncio.AbstractEventLoop, start: Start) -> bool:
        """An active attempt's spawn lacked descriptors: hold it if another may free some.

        Returns False (the attempt should fail) when it was the only active one.
        """
        if self.active <= 1:
            return False
        self.active -= 1
        self.capacity = max(1, self.active)
        self._held.appendleft((loop, start))
        return True

    def leave(self) -> None:
        """An active attempt ended: start the oldest held one, if it fits.

        Once none is active or held, a capacity lowered by a shortage is
        forgotten: the next run (a console runs many) reads the limit again.
        """
        self.active -= 1
        if not self.active and not self._held:
            self.capacity = 0
            return
        while self._held and self.active < self.capacity:
            loop, start = self._held.popleft()
            if loop.is_closed():
                continue
            self.active += 1
            loop.call_soon_threadsafe(start)

    def drop(self, start: Start) -> None:
        """Forget a held ``start`` (its attempt was cancelled while waiting)."""
        for entry in self._held:
            if entry[1] == start:
                self._held.remove(entry)
                return


#: One gate per process: descriptors are the process's.
gate = FdGate()
