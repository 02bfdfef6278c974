"""Run options and results: :class:`RunOptions`, :class:`RunSummary`, run ids.

Plain data shared by the engine, ``tek run`` and the journal; re-exported by
:mod:`core.engine`, which is where callers import them from.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from core.events import RunStatus, TaskState


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan (the ``tek run`` flags).

    Attributes:
        jobs: default size of every pool, and the CPU capacity when ``cpus`` is None.
        pool_sizes: size of named pools (``--pool NAME=SIZE``).
        cpus: CPU capacity; None = ``jobs`` or the machine's logical CPUs.
        gpus: GPU capacity; None = NVML's count when a task needs a GPU, else 0.
        memory_mb: memory capacity in MiB; None = the machine's total memory.
        fail_fast: after the first failure cancel the rest instead of going on.
        memory_floor_mb: admission pauses while available memory is below this.
        wait_for_start: stay PENDING until a ``Start`` control (the console).
        grace_s: seconds between SIGTERM and SIGKILL of a stopped task's group.
        stay_open: keep the run open when every task has ended, so a Retry can
            still come, until ``CancelRun`` (added field; the console's use).
    """

    jobs: int | None = None
    pool_sizes: Mapping[str, int] = field(default_factory=dict)
    cpus: float | None = None
    gpus: int | None = None
    memory_mb: int | None = None
    fail_fast: bool = False
    memory_floor_mb: int = 256
    wait_for_start: bool = False
    grace_s: float = 5.0
    stay_open: bool = False


class TaskResult(NamedTuple):
    """How one task ended (a NamedTuple: a 100k-task summary builds in milliseconds)."""

    state: TaskState
    attempts: int
    exit_code: int | None
    duration_s: float | None
    reason: str


@dataclass(frozen=True)
class RunSummary:
    """What ``Run.run`` returns (and ``tek run --json`` prints)."""

    run_id: str
    status: RunStatus
    counts: dict[str, int]
    wall_s: float
    tasks: dict[str, TaskResult]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "counts": self.counts,
            "wall_s": round(self.wall_s, 6),
            "tasks": {
                tid: {
                    "state": r.state.value,
                    "attempts": r.attempts,
                    "exit_code": r.exit_code,
                    "duration_s": None if r.duration_s is None else round(r.duration_s, 6),
                    "reason": r.reason,
                }
                for tid, r in self.tasks.items()
            },
        }


def new_run_id() -> str:
    """A sortable run id: UTC time plus 4 random hex digits (``20261124-123045-ab12``).

    Two runs started in the same second may draw the same id: the journal
    (``Store.begin_run``) and the engine (:func:`unused_run_id`) draw again.
    """
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def unused_run_id() -> str:
    """A new run id whose log folder does not exist yet (runs without a journal).

    Otherwise two ``tek run --no-journal`` started in the same second could
    share a folder and write each other's task logs.
    """
    from core.paths import run_dir

    while True:
        run_id = new_run_id()
        if not run_dir(run_id).exists():
            return run_id

