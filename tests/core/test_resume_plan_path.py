"""A run's plan file in the journal: recorded as given (symlinks kept), found by any path to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.errors import StoreError
from core.journal import find_resume
from core.plan_io import read_plan
from core.store import Store, open_store


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """``real/plan.csv`` and ``linkdir/plan.csv``, a symlink to it."""
    (tmp_path / "real").mkdir()
    (tmp_path / "linkdir").mkdir()
    real = tmp_path / "real" / "plan.csv"
    real.write_text("id,command\nw,pwd\n")
    link = tmp_path / "linkdir" / "plan.csv"
    link.symlink_to(real)
    return real, link


def _ended_run(store: Store, plan_file: Path) -> str:
    rid = store.begin_run(None, read_plan(plan_file))
    with store.write() as conn:  # its process is done with it: a resume may take it
        conn.execute("UPDATE runs SET status = 'failed', started_ts = 1, ended_ts = 2 WHERE id = ?",
                     (rid,))
    return rid


def test_a_run_records_its_plan_as_given_and_runs_of_it_are_found_by_any_path(
    tmp_path: Path, linked: tuple[Path, Path]
) -> None:
    real, link = linked
    with open_store(tmp_path / "j.db") as store:
        rid = _ended_run(store, link)
        assert store.get_run(rid).plan_path == str(link)  # the symlink's folder is where it ran
        for path in (link, real, real.resolve(), tmp_path / "linkdir" / ".." / "linkdir" / "plan.csv"):
            assert [r.id for r in store.list_runs(plan_path=str(path))] == [rid]
            assert store.resolve_run("last", plan_path=str(path)) == rid
        other = tmp_path / "other.csv"
        other.write_text("id,command\nw,pwd\n")
        assert store.list_runs(plan_path=str(other)) == []
        with pytest.raises(StoreError, match=f"no run of {other} in the journal"):
            store.resolve_run("last", plan_path=str(other))


def test_runs_an_older_tek_recorded_by_the_resolved_path_are_found_through_the_link(
    tmp_path: Path, linked: tuple[Path, Path]
) -> None:
    real, link = linked
    db = tmp_path / "j.db"
    with open_store(db) as store:
        rid = _ended_run(store, real)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET plan_path = ?", (str(real.resolve()),))
    with open_store(db) as store:
        assert [r.id for r in store.list_runs(plan_path=str(link))] == [rid]
        target = find_resume(read_plan(link), store=store, resume="last")
        assert target.run.id == rid and target.decision.rerun == {"w"}


def test_a_recorded_plan_that_is_gone_is_found_by_its_name_only(
    tmp_path: Path, linked: tuple[Path, Path]
) -> None:
    real, link = linked
    with open_store(tmp_path / "j.db") as store:
        rid = _ended_run(store, link)
        link.unlink()
        real.rename(tmp_path / "moved.csv")
        assert [r.id for r in store.list_runs(plan_path=str(link))] == [rid]
        assert store.list_runs(plan_path=str(tmp_path / "moved.csv")) == []
