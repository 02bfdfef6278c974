"""``tek prune``: forgetting old runs and their logs, never a live one."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from core.paths import default_store_path, run_log_path
from core.store import open_store
from tek_tui.cli import main
from tests.core.journal_helpers import chain_plan

DAY = 86400.0


def _runs(ages_days: list[float], live: int | None = None) -> list[str]:
    """Runs created ``ages_days`` ago (newest first), each with a 1000-byte log.

    The run at index ``live`` is recorded as running in this (live) process.
    """
    ids = [f"2026010{i}-000000-aaaa" for i in range(len(ages_days))]
    with open_store() as store:
        for rid in ids:
            store.begin_run(rid, chain_plan(1))
            log = run_log_path(rid, "t0", 1)
            log.parent.mkdir(parents=True)
            log.write_bytes(b"x" * 1000)
    conn = sqlite3.connect(default_store_path())
    now = time.time()
    for rid, age in zip(ids, ages_days, strict=True):
        conn.execute("UPDATE runs SET created_ts = ?, status = 'succeeded' WHERE id = ?",
                     (now - age * DAY, rid))
    if live is not None:
        conn.execute("UPDATE runs SET status = 'running', pid = ?, pid_ts = ?, host = ? WHERE id = ?",
                     (os.getpid(), now, socket.gethostname(), ids[live]))
    conn.commit()
    conn.close()
    return ids


def _left() -> list[str]:
    with open_store() as store:
        return [r.id for r in store.list_runs()]


def test_keep_n_newest_removes_the_rest_and_their_logs(capsys: pytest.CaptureFixture[str]) -> None:
    ids = _runs([0, 1, 2, 3, 4])
    assert main(["prune", "--keep", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"pruned": ids[2:], "kept": 2, "freed_bytes": 3000, "dry_run": False}
    assert _left() == ids[:2]
    assert [run_log_path(r, "t0", 1).exists() for r in ids] == [True, True, False, False, False]


def test_older_than_and_keep_both_protect(capsys: pytest.CaptureFixture[str]) -> None:
    """Kept when one of the N newest *or* newer than DAYS (backup tools' keep rules)."""
    ids = _runs([0, 5, 20, 40])
    assert main(["prune", "--older-than", "10"]) == 0
    assert _left() == ids[:2]
    assert "pruned 2 run(s), 0.0 MB of logs; kept 2" in capsys.readouterr().out
    assert main(["prune", "--older-than", "1", "--keep", "2"]) == 0
    assert _left() == ids[:2]


def test_dry_run_changes_nothing_and_a_live_run_is_never_pruned(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = _runs([0, 1, 2], live=2)
    before = Path(default_store_path()).read_bytes()
    assert main(["prune", "--keep", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out[:-1]] == ids[:2]  # "would prune RUN ..."
    assert out[-1] == "would prune 2 run(s), 0.0 MB of logs; kept 1"
    assert Path(default_store_path()).read_bytes() == before
    assert main(["prune", "--keep", "0"]) == 0
    assert _left() == [ids[2]]  # the live one
    assert run_log_path(ids[2], "t0", 1).exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["prune"], "say which runs to prune: --keep N and/or --older-than DAYS"),
    (["prune", "--keep", "-1"], "--keep must be 0 or more (got -1)"),
    (["prune", "--older-than", "nan"], "--older-than must be 0 or more days (got nan)"),
])
def test_bad_prune_flags_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _runs([0])
    assert main(argv) == 2
    assert capsys.readouterr().err == f"tek: {message}\n"
    assert len(_left()) == 1


def test_prune_shows_a_run_started_when_tek_runs_does(capsys: pytest.CaptureFixture[str]) -> None:
    # A console run is created when its plan opens and started at `s`: one time for both lists.
    (rid,) = _runs([3])
    conn = sqlite3.connect(default_store_path())
    conn.execute("UPDATE runs SET started_ts = created_ts + 600 WHERE id = ?", (rid,))
    conn.commit()
    conn.close()
    assert main(["runs"]) == 0
    started = capsys.readouterr().out.splitlines()[1].split()[2:4]
    assert main(["prune", "--keep", "0", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[4:6] == started
