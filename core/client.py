"""The run protocol's front-end interface: :class:`RunClient`.

A front end (console, ``tek run``'s live view, a socket client) holds a
RunClient and nothing else of the run: ``snapshot()`` for the whole state,
``events()`` for what changes after, ``control()`` to act. The in-process
implementation over a :class:`core.engine.Run` lives in ``core.engine``;
tests use fakes that replay scripted events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from core.events import Control, Event, RunSnapshot


@runtime_checkable
class RunClient(Protocol):
    """What every front end may ask of a run."""

    def snapshot(self) -> RunSnapshot:
        """The whole state of the run now."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """A new subscription: every event from now on, ending after RunFinished.

        A subscriber that reads slowly never slows the run: task state
        changes are coalesced (latest state per task wins) and output lines
        past a bound are dropped and counted in an ``OutputDropped`` event.
        """
        ...

    async def control(self, command: Control) -> None:
        """Apply one control.

        Raises:
            ControlError: unknown task or pool, or the control does not apply now.
        """
        ...
