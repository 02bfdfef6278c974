"""Run options and results: :class:`RunOptions`, :class:`RunSummary`, run ids.

Plain data shared by the engine, ``tek run`` and the journal; re-exported by
:mod:`core.engine`, which is where callers import them from.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from core.errors import TekError
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


#: Options a resume takes from the run's journal when they are not given again:
#: how the run was asked to run. ``wait_for_start`` and ``stay_open`` say how a
#: front end drives a run (the console's), not how it runs its tasks.
RECORDED: tuple[str, ...] = (
    "jobs", "pool_sizes", "cpus", "gpus", "memory_mb", "fail_fast", "memory_floor_mb", "grace_s",
)  # fmt: skip

#: Most GPUs a run may be given (the scheduler keeps one slot per GPU).
MAX_GPUS = 1024


def resumed_options(
    recorded: Mapping[str, Any], options: RunOptions, given: Collection[str] = (), *,
    run_id: str = "",
) -> RunOptions:
    """The options a resume runs with: ``options`` where given, else what the run recorded.

    For each field of :data:`RECORDED`: a field named in ``given`` (a flag on
    the command line) keeps its value from ``options``; else the run's
    recorded value is used, a recorded None included (``jobs`` None stays
    "the machine's CPUs", not the count of the machine that recorded it);
    a field the journal has no value for (a run of an older tek, the
    console's runs record ``jobs`` only) keeps ``options``' value (the
    config file's, else the default). Pool sizes merge: the recorded ones,
    with the given ones on top. Other fields come from ``options``.

    Args:
        recorded: the run's options as the journal holds them (JSON).
        options: the options asked for now (flags, then config, then defaults).
        given: names of the fields given explicitly (``pool_sizes`` merges
            either way: a pool named again gets its new size, the others
            keep theirs).
        run_id: names the run in messages.

    Raises:
        TekError: a recorded value that is not a valid option (a journal
            edited by hand); giving that option again overrides it.
    """
    changes: dict[str, Any] = {}
    for name in RECORDED:
        if name in recorded and name not in given:
            changes[name] = _recorded(name, recorded[name], run_id)
    if "pool_sizes" in given and "pool_sizes" in recorded:
        try:
            changes["pool_sizes"] = _recorded("pool_sizes", recorded["pool_sizes"], run_id)
        except TekError:  # given again: the pools given are all there is to go by
            pass
    if "pool_sizes" in changes:
        changes["pool_sizes"] = {**changes["pool_sizes"], **options.pool_sizes}
    return dataclasses.replace(options, **changes)


def _recorded(name: str, value: Any, run_id: str) -> Any:
    """A recorded option's value, checked as its flag would be.

    Raises:
        TekError: it is not valid.
    """

    def number(v: Any, minimum: float, maximum: float = math.inf, whole: bool = True) -> bool:
        kinds = (int,) if whole else (int, float)
        return (type(v) in kinds and math.isfinite(v) and minimum <= v <= maximum)

    ok: bool
    if name == "pool_sizes":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and k and number(v, 1) for k, v in value.items())
        value = dict(value) if ok else value
    elif name == "fail_fast":
        ok = type(value) is bool
    elif name in ("memory_floor_mb", "grace_s"):
        ok = number(value, 0, whole=name != "grace_s")
    elif value is None:
        ok = True  # the machine's (jobs, cpus, gpus, memory_mb)
    elif name == "cpus":
        ok = number(value, 0.001, whole=False)
    else:
        ok = number(value, 1 if name == "jobs" else 0, MAX_GPUS if name == "gpus" else math.inf)
    if not ok:
        of = f"run {run_id}'s" if run_id else "the run's"
        raise TekError(f"{of} recorded option {name} = {value!r} is not valid: "
                       "give that option on the command line")
    return float(value) if name in ("cpus", "grace_s") and value is not None else value


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

