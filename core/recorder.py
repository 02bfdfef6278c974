"""The engine's hook for durable history: :class:`Recorder`.

The engine hands every event to its recorder, in order, and awaits
``record`` before it publishes those events to clients, so a state change is
on disk before any console shows it (DESIGN.md, "Persistence"). The engine
batches: one ``record`` call per scheduler turn, not per event. ``core.store``
provides the SQLite implementation; ``None`` means no journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.events import Event


class Recorder(Protocol):
    """Durable sink for a run's events."""

    async def record(self, events: Sequence[Event]) -> None:
        """Write these events durably, in order, before returning."""
        ...
