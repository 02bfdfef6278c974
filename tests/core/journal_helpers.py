"""Helpers for the journal tests: small plans and scripted event sequences."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from core.events import Event, RunFinished, RunStarted, RunStatus, TaskChanged, TaskState
from core.plan import Plan, Task


def chain_plan(n: int = 3, agent: str = "noop") -> Plan:
    """``t0 -> t1 -> ... -> t{n-1}``."""
    tasks = [Task(id=f"t{i}", agent=agent, deps=(f"t{i - 1}",) if i else ()) for i in range(n)]
    return Plan(tuple(tasks))


def diamond_plan() -> Plan:
    """``a -> (b, c) -> d``, plus an independent ``e``."""
    return Plan(
        (
            Task(id="a", agent="noop"),
            Task(id="b", agent="noop", deps=("a",)),
            Task(id="c", agent="noop", deps=("a",)),
            Task(id="d", agent="noop", deps=("b", "c")),
            Task(id="e", agent="noop"),
        )
    )


def ran(task_id: str, attempt: int = 1, ts: float = 100.0, *, ok: bool = True) -> list[Event]:
    """One attempt that starts and ends (succeeded, or failed with exit 1)."""
    end = TaskState.SUCCEEDED if ok else TaskState.FAILED
    return [
        TaskChanged(task_id, TaskState.RUNNING, attempt, ts, pid=4242, gpus=(0,)),
        TaskChanged(
            task_id, end, attempt, ts + 1.5, exit_code=0 if ok else 1,
            reason="" if ok else "exit code 1", metrics={"loss": 0.25} if ok else {},
        ),
    ]  # fmt: skip


def started(run_id: str, n: int, ts: float = 99.0) -> RunStarted:
    return RunStarted(run_id, "", n, ts)


def finished(run_id: str, status: RunStatus = RunStatus.SUCCEEDED) -> RunFinished:
    return RunFinished(run_id, status, {}, 5.0, 200.0)


def flat(*parts: Iterable[Event] | Event) -> list[Event]:
    out: list[Event] = []
    for p in parts:
        if isinstance(p, Iterable):
            out.extend(p)
        else:
            out.append(p)
    return out


def foreign_sqlite(path: Path) -> None:
    """Make ``path`` an SQLite database of another application."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()


#: How far ahead of this tek's schema :func:`newer_tek` puts a journal.
NEWER_BY = 7


def newer_tek(path: Path) -> None:
    """Make ``path`` a journal written by a newer tek (schema ``NEWER_BY`` ahead)."""
    from core.store import open_store
    from core.store_schema import SCHEMA_VERSION

    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + NEWER_BY}")
    conn.commit()
    conn.close()


def damage_a_middle_page(path: Path) -> None:
    """Break the header of a b-tree leaf page half-way into the file (the file header stays good).

    VACUUM first, so every page is in use (SQLite never reads a free page),
    and nothing is left in the WAL to stand in for the damaged page.
    """
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    size = 4096
    leaves = [p for p in range(1, len(data) // size) if data[p * size] in (0x0A, 0x0D)]
    page = leaves[len(leaves) // 2] * size
    data[page + 1 : page + 7] = b"\xff" * 6  # first free block, cell count, cell area start
    path.write_bytes(bytes(data))
