"""What the journal gives back: runs, tasks and attempts as frozen records.

Plain data for the history commands and the console; building them from rows
and telling a live run from a crashed one (:func:`process_alive`) lives here
so that ``core.store`` stays about reading and writing.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Run statuses a live process keeps writing; any other status is final.
LIVE_STATUSES = frozenset({"pending", "running", "paused", "cancelling"})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the journal knows it.

    ``status`` is what the run last wrote; :attr:`effective_status` says
    ``interrupted`` for a run whose process is gone without finishing.
    """

    id: str
    plan_path: str
    plan_hash: str
    options: Mapping[str, Any]
    task_count: int
    status: str
    created_ts: float
    started_ts: float | None
    ended_ts: float | None
    resumes: int
    pid: int | None
    host: str
    pid_ts: float | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    #: seconds it ran before its latest resume
    earlier_s: float = 0.0

    @property
    def is_live(self) -> bool:
        """True while the process that writes this run is still running it."""
        return self.status in LIVE_STATUSES and process_alive(self.pid, self.host, self.pid_ts or self.created_ts)

    @property
    def effective_status(self) -> str:
        """``status``, or ``interrupted`` when the writer died before finishing."""
        if self.status in LIVE_STATUSES and not self.is_live:
            return "interrupted"
        return self.status

    @property
    def duration_s(self) -> float | None:
        """Seconds it ran: from start to end (to now while live), less the time it was down.

        A resumed run counts its earlier sessions (``earlier_s``) plus the
        latest one, from its resume; the hours between a crash and the
        resume are not its duration.
        """
        since = self.session_start
        if since is None:
            return None
        end = self.ended_ts if self.ended_ts is not None else (time.time() if self.is_live else None)
        if end is None:
            return None
        return self.earlier_s + max(0.0, end - since)

    @property
    def session_start(self) -> float | None:
        """When its latest session began: its start, or its latest resume (None: never started)."""
        if self.started_ts is None:
            return None
        return self.pid_ts if self.resumes and self.pid_ts is not None else self.started_ts


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task of a run: its latest state and how many attempts it had."""

    task_id: str
    idx: int
    row_hash: str
    state: str
    attempts: int
    exit_code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of one task; ``ended_ts`` is None while it runs."""

    task_id: str
    attempt: int
    state: str
    started_ts: float
    ended_ts: float | None
    exit_code: int | None
    reason: str
    log_path: str
    pid: int | None
    cpus: float | None
    gpus: tuple[int, ...]
    memory_mb: int | None
    metrics: Mapping[str, float]

    @property
    def duration_s(self) -> float | None:
        """Seconds the attempt ran, None while it runs."""
        return None if self.ended_ts is None else max(0.0, self.ended_ts - self.started_ts)


def process_alive(pid: int | None, host: str, since_ts: float) -> bool:
    """True when ``pid`` on this host is alive and older than ``since_ts``.

    A process on another host counts as alive (tek cannot tell). The start
    time check keeps a recycled pid from passing for the run's writer.
    """
    if pid is None:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # dead, its parent has not reaped it yet
            return False
        created = float(proc.create_time())
    except Exception:  # NoSuchProcess, AccessDenied: not our live writer
        return False
    return created <= since_ts + 1.0


RUN_COLS = (
    "id, plan_path, plan_hash, options, task_count, status, created_ts, started_ts,"
    " ended_ts, resumes, pid, host, pid_ts, earlier_s"
)
ATTEMPT_COLS = (
    "task_id, attempt, state, started_ts, ended_ts, exit_code, reason, log_path, pid,"
    " cpus, gpus, memory_mb, metrics"
)


def run_from_row(row: tuple[Any, ...], counts: Mapping[str, int]) -> RunRecord:
    (rid, path, phash, options, count, status, created, started, ended, resumes, pid, host, pid_ts,
     earlier) = row
    return RunRecord(
        rid, path, phash, json.loads(options or "{}"), count, status, created, started, ended,
        resumes, pid, host or "", pid_ts, dict(counts), earlier or 0.0,
    )  # fmt: skip


def attempt_from_row(row: tuple[Any, ...]) -> AttemptRecord:
    (task_id, attempt, state, started, ended, code, reason, log, pid, cpus, gpus, mem, metrics) = row
    return AttemptRecord(
        task_id, attempt, state, started, ended, code, reason, log, pid, cpus,
        tuple(int(g) for g in gpus.split(",") if g), mem, json.loads(metrics or "{}"),
    )  # fmt: skip


def counts_by_state(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """Task counts by state of each run in ``run_ids`` (runs without tasks left out)."""
    out: dict[str, dict[str, int]] = {}
    if not run_ids:
        return out
    marks = ",".join("?" * len(run_ids))
    for run_id, state, n in conn.execute(
        f"SELECT run_id, state, count(*) FROM tasks WHERE run_id IN ({marks})"
        " GROUP BY run_id, state",
        run_ids,
    ):
        out.setdefault(run_id, {})[state] = n
    return out
