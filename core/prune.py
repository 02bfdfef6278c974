"""Pruning history: which recorded runs to forget, and forgetting them with their logs.

A journal and its log folders grow by one run per ``tek run``; a nightly
plan leaves hundreds. :func:`select_runs` picks what ``tek prune`` removes
(keep rules, as backup tools have them: a run is kept when it is one of the
``keep`` newest *or* newer than ``older_than_days``; a live run is always
kept), and :func:`prune_runs` removes each run's rows (one transaction per
run) and then its log folder.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from core.paths import run_dir

if TYPE_CHECKING:
    from core.store import RunRecord, Store


def select_runs(
    runs: Sequence[RunRecord],
    keep: int | None = None,
    older_than_days: float | None = None,
    now: float | None = None,
) -> list[RunRecord]:
    """The runs to prune of ``runs`` (newest first, as ``Store.list_runs`` gives them).

    Args:
        runs: candidate runs, newest first.
        keep: keep this many newest runs (None: no count rule).
        older_than_days: keep runs created within this many days (None: no age rule).
        now: the current time (default: ``time.time()``).

    Returns:
        The runs to remove, newest first; never a live one. With neither
        rule, none.
    """
    if keep is None and older_than_days is None:
        return []
    now = time.time() if now is None else now
    cutoff = None if older_than_days is None else now - older_than_days * 86400
    chosen = []
    for rank, run in enumerate(runs):
        if keep is not None and rank < keep:
            continue
        if cutoff is not None and run.created_ts >= cutoff:
            continue
        if run.is_live:
            continue
        chosen.append(run)
    return chosen


def folder_bytes(folder: Path) -> int:
    """Bytes of the files in ``folder`` and below (0 when it is missing)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def prune_runs(store: Store, runs: Sequence[RunRecord], sizes: Mapping[str, int] | None = None) -> int:
    """Remove ``runs`` from the journal, then their log folders; returns the bytes freed.

    A run's rows go first (one transaction each), so a crash in between
    leaves at worst a folder of logs that no run names, never a run whose
    logs are gone. ``sizes`` (run id -> bytes of its folder) spares
    measuring the folders again when the caller has.
    """
    freed = 0
    for run in runs:
        store.delete_run(run.id)
        folder = run_dir(run.id)
        size = sizes[run.id] if sizes is not None else folder_bytes(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            freed += size
    return freed
