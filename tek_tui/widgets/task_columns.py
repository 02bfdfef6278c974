"""How wide each task table column is, for the width the table has.

A pure function of the available width and the widest text of each column,
tested without an app. The most telling columns come first and are the last
to go: state, id, time and progress/why always show (the id shrinks, its text
ending in "…", before progress/why gets narrower than
:data:`WHY_MIN`); attempt, agent and name follow as room allows. The last
column that shows ends at the pane's edge (narrowed, its text ending in "…")
instead of being cut mid-letter; the columns after it stay beyond the edge,
reached by scrolling sideways. Room left over widens progress/why, where
long reasons (``upstream unit_tests failed``) need it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.events import TaskInfo

#: Cells of padding DataTable draws around each column (``cell_padding`` 1, both sides).
PADDING = 2
#: Column keys in order, with (minimum, preferred) widths; None = the widest text.
COLUMNS: tuple[tuple[str, int, int | None], ...] = (
    ("state", 11, 11),
    ("id", 6, None),
    ("duration", 6, 6),
    ("progress", 10, 22),
    ("attempt", 2, 2),
    ("agent", 5, None),
    ("name", 4, None),
)
#: Columns that always show, however narrow the table.
CORE = ("state", "id", "duration", "progress")
#: Cap on the widths taken from the text (a 200-character name stays findable).
MAX_TEXT = {"id": 40, "agent": 10, "name": 30}
#: progress/why keeps at least this many cells before the id shrinks below its text.
WHY_MIN = 16


def fit_widths(available: int, widest: Mapping[str, int]) -> dict[str, int]:
    """Width of every column (without padding) for a table ``available`` cells wide.

    Args:
        available: the table's width in cells, scroll bar excluded.
        widest: the longest text per column key (``id``, ``agent``, ``name``).

    Returns:
        A width for every key of :data:`COLUMNS`.
    """
    low = {key: lo for key, lo, _ in COLUMNS}
    want = {key: max(lo, min(widest.get(key, lo), MAX_TEXT.get(key, 10**6)))
            if pref is None else pref for key, lo, pref in COLUMNS}
    widths = {key: low[key] for key in CORE}
    room = available - sum(w + PADDING for w in widths.values())

    def grow(key: str, up_to: int) -> None:
        nonlocal room
        step = max(0, min(room, up_to - widths[key]))
        widths[key] += step
        room -= step

    # Progress/why first to WHY_MIN, then the id to its text, then why to its preferred width.
    grow("progress", max(WHY_MIN, low["progress"]))
    grow("id", want["id"])
    grow("progress", want["progress"])
    for key in ("attempt", "agent", "name"):
        if room >= want[key] + PADDING:
            widths[key] = want[key]
            room -= want[key] + PADDING
        elif room >= low[key] + PADDING:
            widths[key] = room - PADDING  # the last one shown ends at the edge, in "…"
            room = 0
        else:
            break
    if room > 0 and len(widths) < len(COLUMNS):
        # Columns are left beyond the edge: the last one shown fills the row.
        widths["progress"] += room
    # The rest keep their own width, beyond the edge (scroll sideways).
    return widths | {key: want[key] for key, _, _ in COLUMNS if key not in widths}


def widest_texts(tasks: Iterable[TaskInfo]) -> dict[str, int]:
    """The longest id, agent and name of ``tasks``, for :func:`fit_widths`."""
    widest = {"id": 4, "agent": 5, "name": 4}
    for task in tasks:
        widest["id"] = max(widest["id"], len(task.id))
        widest["agent"] = max(widest["agent"], len(task.agent))
        widest["name"] = max(widest["name"], len(task.name))
    return widest
