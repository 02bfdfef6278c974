"""Fan-out of a run's events to subscribers, and the in-process client.

The engine calls :meth:`Broadcaster.publish` once per scheduler turn with
that turn's batch (after the recorder has it); publishing never awaits, so a
subscriber that stops reading can never slow the run. Each
:class:`Subscription` keeps a bounded backlog:

- ``TaskChanged``, ``Progress`` and ``PoolChanged`` coalesce: at most one is
  pending per task attempt (per task, per pool), the latest wins, and it
  keeps the place in the stream of the first one it replaced (so every
  attempt's end reaches a slow reader: retries are never folded away);
- ``OutputLines`` beyond ``max_lines`` pending lines are dropped from this
  subscriber's stream (never from the log file) and announced by one
  ``OutputDropped`` per task attempt, placed where the first drop happened;
- ``RunStarted``, ``AdmissionChanged``, ``TasksAdded`` and ``RunFinished`` are always kept.

So a subscriber's memory is bounded by the number of task attempts and pools
plus ``max_lines``, whatever it does.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from core.events import (
    Control,
    Event,
    OutputDropped,
    OutputLines,
    PoolChanged,
    Progress,
    RunFinished,
    RunSnapshot,
    TaskChanged,
    TaskState,
)

if TYPE_CHECKING:
    from core.client import RunClient

#: Default bound on output lines pending for one subscriber.
MAX_PENDING_LINES = 10_000

_PENDING, _READY = TaskState.PENDING, TaskState.READY

# Markers in a subscription's queue: (kind, key); the value lives in a dict.
_TASK = 0
_PROGRESS = 1
_POOL = 2
_DROP = 3


class Subscription:
    """One subscriber's coalescing, bounded backlog of events."""

    def __init__(self, owner: Broadcaster, max_lines: int = MAX_PENDING_LINES) -> None:
        self._owner = owner
        self.max_lines = max_lines
        self._queue: deque[Any] = deque()
        self._tasks: dict[tuple[str, int], TaskChanged] = {}
        self._progress: dict[str, Progress] = {}
        self._pools: dict[str, PoolChanged] = {}
        self._drops: dict[tuple[str, int], int] = {}
        self._lines = 0
        self._wakeup: asyncio.Event | None = None
        self.dropped_total = 0

    def push(self, events: Iterable[Event]) -> None:
        """Add a batch (never blocks; coalesces and drops as documented above)."""
        queue = self._queue
        tasks = self._tasks
        for ev in events:
            kind = type(ev)
            if kind is TaskChanged:
                # waiting to start (pending, ready) folds into the attempt to come,
                # never into the end of the one before (a retry's backoff, RetryTask)
                state, attempt = ev.state, ev.attempt  # type: ignore[union-attr]
                if state is _PENDING or state is _READY:
                    attempt += 1
                key = (ev.task_id, attempt)  # type: ignore[union-attr]
                if key not in tasks:
                    queue.append((_TASK, key))
                tasks[key] = ev  # type: ignore[assignment]
            elif kind is OutputLines:
                n = len(ev.lines)  # type: ignore[union-attr]
                if self._lines + n <= self.max_lines:
                    self._lines += n
                    queue.append(ev)
                else:
                    key = (ev.task_id, ev.attempt)  # type: ignore[union-attr]
                    if key not in self._drops:
                        queue.append((_DROP, key))
                        self._drops[key] = 0
                    self._drops[key] += n
                    self.dropped_total += n
            elif kind is Progress:
                tid = ev.task_id  # type: ignore[union-attr]
                if tid not in self._progress:
                    queue.append((_PROGRESS, tid))
                self._progress[tid] = ev  # type: ignore[assignment]
            elif kind is PoolChanged:
                name = ev.pool  # type: ignore[union-attr]
                if name not in self._pools:
                    queue.append((_POOL, name))
                self._pools[name] = ev  # type: ignore[assignment]
            elif kind is OutputDropped:
                key = (ev.task_id, ev.attempt)  # type: ignore[union-attr]
                if key not in self._drops:
                    queue.append((_DROP, key))
                    self._drops[key] = 0
                self._drops[key] += ev.count  # type: ignore[union-attr]
                self.dropped_total += ev.count  # type: ignore[union-attr]
            else:
                queue.append(ev)
        if self._wakeup is not None:
            self._wakeup.set()

    def pending(self) -> int:
        """Items waiting to be read (coalesced entries count once)."""
        return len(self._queue)

    def _pop(self) -> Event:
        item = self._queue.popleft()
        if type(item) is not tuple:
            if type(item) is OutputLines:
                self._lines -= len(item.lines)
            return item  # type: ignore[no-any-return]
        kind, key = item
        if kind == _TASK:
            return self._tasks.pop(key)
        if kind == _PROGRESS:
            return self._progress.pop(key)
        if kind == _POOL:
            return self._pools.pop(key)
        return OutputDropped(key[0], key[1], self._drops.pop(key))

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                while self._queue:
                    ev = self._pop()
                    yield ev
                    if type(ev) is RunFinished:
                        return
                self._wakeup = asyncio.Event()
                await self._wakeup.wait()
                self._wakeup = None
        finally:
            self._owner.unsubscribe(self)


class Broadcaster:
    """The set of live subscriptions of one run."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._finished: RunFinished | None = None

    def subscribe(self, max_lines: int = MAX_PENDING_LINES) -> Subscription:
        """A new subscription; after the run ended it yields just RunFinished."""
        sub = Subscription(self, max_lines)
        if self._finished is not None:
            sub.push((self._finished,))
        else:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (its iterator ended or was closed)."""
        if sub in self._subs:
            self._subs.remove(sub)

    @property
    def count(self) -> int:
        """Number of live subscriptions."""
        return len(self._subs)

    def publish(self, events: list[Event]) -> None:
        """Hand a batch to every subscription (never awaits)."""
        if not events:
            return
        if type(events[-1]) is RunFinished:
            self._finished = events[-1]
        for sub in self._subs:
            sub.push(events)


class _RunLike(Protocol):
    broadcaster: Broadcaster

    def snapshot(self) -> RunSnapshot: ...

    async def control(self, command: Control) -> None: ...


class InProcessClient:
    """A :class:`~core.client.RunClient` over a run in this process."""

    def __init__(self, run: _RunLike) -> None:
        self._run = run

    def snapshot(self) -> RunSnapshot:
        """The whole state of the run now."""
        return self._run.snapshot()

    def events(self, max_lines: int = MAX_PENDING_LINES) -> AsyncIterator[Event]:
        """Subscribe now (not on first iteration) and return the event stream.

        Args:
            max_lines: bound on output lines pending for this subscriber.
        """
        return self._run.broadcaster.subscribe(max_lines).__aiter__()

    async def control(self, command: Control) -> None:
        """Apply a control to the run; raises ControlError when it does not apply."""
        await self._run.control(command)


def _check(client: InProcessClient) -> RunClient:
    return client  # mypy proves InProcessClient satisfies the protocol
