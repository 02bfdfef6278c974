"""The run protocol's messages: events, controls and the snapshot.

Every front end (console, ``tek run``, a socket client) sees a run only
through these frozen dataclasses (DESIGN.md, "The run protocol"). Each one
turns into a JSON-ready dict with :func:`to_json` and back with
:func:`from_json`; the dict carries ``"v"`` (:data:`PROTOCOL_VERSION`) and
``"type"`` (the class name). Times are Unix seconds (``time.time()``) so a
console in another process can show durations.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from core.errors import ProtocolError

#: 2: :class:`TasksAdded` (a sub-plan's tasks join a run's stream).
PROTOCOL_VERSION = 2


class TaskState(StrEnum):
    """Where a task is in its life (DESIGN.md, "Task states")."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        """True once the task will not change again unless retried by hand."""
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED}
)


class RunStatus(StrEnum):
    """Where the run as a whole is."""

    PENDING = "pending"  # built, waiting for Start
    RUNNING = "running"
    PAUSED = "paused"  # dispatch paused by a user; running tasks go on
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


# --------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run began dispatching."""

    run_id: str
    plan_path: str
    task_count: int
    ts: float


@dataclass(frozen=True, slots=True)
class TaskChanged:
    """A task moved to a new state.

    ``reason`` says why in words a person reads (``"exit code 3"``,
    ``"timed out after 5s"``, ``"upstream build failed"``, ``"cancelled by
    user"``). ``metrics`` holds an ending attempt's numbers (Outcome.metrics),
    for the journal. ``pid`` is the process (group leader) of a running attempt, when
    it has one, so telemetry can sum its process tree. ``gpus`` are the device
    indices given to a running attempt. ``started_ts``, on the change that
    ends an attempt, is when that attempt started: a reader whose stream
    folded the RUNNING into the end still knows how long it took.
    """

    task_id: str
    state: TaskState
    attempt: int
    ts: float
    exit_code: int | None = None
    reason: str = ""
    pid: int | None = None
    gpus: tuple[int, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    started_ts: float | None = None


@dataclass(frozen=True, slots=True)
class OutputLines:
    """Lines a task printed (stdout and stderr, in arrival order)."""

    task_id: str
    attempt: int
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OutputDropped:
    """Live output lines left out of the stream for a slow consumer.

    They are still in the attempt's log file; ``count`` is how many.
    """

    task_id: str
    attempt: int
    count: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of a long attempt (ML epochs and steps, or any agent's).

    ``values`` holds numbers and short strings, e.g. ``epoch``, ``epochs``,
    ``step``, ``steps``, ``loss``, ``val_loss``, ``val_accuracy``,
    ``samples_per_s``; ``fraction`` (0..1) when the agent knows it.
    """

    task_id: str
    attempt: int
    ts: float
    values: Mapping[str, float | int | str] = field(default_factory=dict)
    fraction: float | None = None


@dataclass(frozen=True, slots=True)
class PoolChanged:
    """A pool's size or load changed (sent at most a few times a second).

    ``waiting_for`` is set while the pool has free slots but its queued
    tasks wait for a resource, e.g. ``"cpus (4 of 4 in use)"``: growing the
    pool would not help.
    """

    pool: str
    size: int
    busy: int
    queued: int
    finished: int
    ts: float
    waiting_for: str = ""


@dataclass(frozen=True, slots=True)
class AdmissionChanged:
    """Dispatch of new tasks was paused or resumed, and why.

    ``reason`` is empty when running, else e.g. ``"paused by user"`` or
    ``"available memory 410 MiB below floor 512 MiB"``.
    """

    paused: bool
    reason: str
    ts: float


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended; nothing follows this event."""

    run_id: str
    status: RunStatus
    counts: Mapping[str, int]
    wall_s: float
    ts: float


@dataclass(frozen=True, slots=True)
class TasksAdded:
    """Tasks joined the run: the sub-plan of ``plan`` task ``task_id`` started.

    Sent when attempt ``attempt`` of the plan task builds its nested run, before
    any of that run's events; ``tasks`` are its tasks as :class:`TaskInfo`
    (ids and deps ``<task_id>/<sub-task>``, each sub-task's own agent and
    pool, state pending), as the run's snapshot shows them from then on. A
    front end adds them (or, for a retried plan task, starts them afresh).
    ``tasks`` is empty when the attempt found no sub-plan it could run: then no
    sub-task event follows. A sub-plan's own sub-plans send theirs, re-keyed
    (``build/lib/...``).
    """

    task_id: str
    attempt: int
    tasks: tuple[TaskInfo, ...] = ()


Event: TypeAlias = (
    RunStarted
    | TasksAdded
    | TaskChanged
    | OutputLines
    | OutputDropped
    | Progress
    | PoolChanged
    | AdmissionChanged
    | RunFinished
)

# ------------------------------------------------------------------- controls


@dataclass(frozen=True, slots=True)
class Start:
    """Start a run that was built waiting (``RunStatus.PENDING``)."""


@dataclass(frozen=True, slots=True)
class Pause:
    """Stop dispatching new tasks; running ones go on."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Dispatch again after :class:`Pause`."""


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Cancel one task: stop it if running, else never start it."""

    task_id: str


@dataclass(frozen=True, slots=True)
class RetryTask:
    """Run a failed or cancelled task again; its skipped downstream re-enables."""

    task_id: str


@dataclass(frozen=True, slots=True)
class SkipTask:
    """Mark a task that has not run as skipped (its downstream still runs)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class CancelRun:
    """Stop dispatching, terminate running tasks, end the run as cancelled."""


@dataclass(frozen=True, slots=True)
class ResizePool:
    """Change how many tasks a pool runs at once."""

    pool: str
    size: int


Control: TypeAlias = (
    Start | Pause | Resume | CancelTask | RetryTask | SkipTask | CancelRun | ResizePool
)

# ------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One task as a front end sees it: plan fields plus live state."""

    id: str
    name: str
    agent: str
    pool: str
    deps: tuple[str, ...]
    tags: tuple[str, ...] = ()
    command: str = ""
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    started_ts: float | None = None
    finished_ts: float | None = None
    exit_code: int | None = None
    reason: str = ""
    pid: int | None = None
    progress: Mapping[str, float | int | str] = field(default_factory=dict)
    fraction: float | None = None


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """One pool's size and load (``waiting_for``: as in :class:`PoolChanged`)."""

    name: str
    size: int
    busy: int = 0
    queued: int = 0
    finished: int = 0
    waiting_for: str = ""


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """The whole state of a run, for a client that joins late."""

    run_id: str
    plan_path: str
    status: RunStatus
    tasks: tuple[TaskInfo, ...]
    pools: tuple[PoolInfo, ...] = ()
    started_ts: float | None = None
    finished_ts: float | None = None
    admission_paused: bool = False
    admission_reason: str = ""
    dropped_lines: int = 0


Message: TypeAlias = Event | Control | RunSnapshot | TaskInfo | PoolInfo

# ---------------------------------------------------------------------- codec

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        TasksAdded,
        TaskChanged,
        OutputLines,
        OutputDropped,
        Progress,
        PoolChanged,
        AdmissionChanged,
        RunFinished,
        Start,
        Pause,
        Resume,
        CancelTask,
        RetryTask,
        SkipTask,
        CancelRun,
        ResizePool,
        TaskInfo,
        PoolInfo,
        RunSnapshot,
    )
}


def to_json(message: Message) -> dict[str, Any]:
    """Turn a protocol message into a JSON-ready dict with version and type."""
    out: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": type(message).__name__}
    for f in dataclasses.fields(message):
        out[f.name] = _encode(getattr(message, f.name))
    return out


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(value)  # type: ignore[arg-type]
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def from_json(data: Mapping[str, Any]) -> Any:
    """Rebuild a protocol message from :func:`to_json`'s dict.

    Raises:
        ProtocolError: unknown type, newer protocol version or bad fields.
    """
    try:
        version = data["v"]
        cls = _TYPES[data["type"]]
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"not a tek protocol message: {exc}") from None
    if not isinstance(version, int) or version > PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r} is newer than {PROTOCOL_VERSION}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _decode(data[f.name], hints[f.name])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad {cls.__name__} message: {exc}") from None


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _decode(value: Any, hint: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            return _decode(value, arg)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_json(value)
    if origin is tuple:
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_decode(v, inner) for v in value)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return dict(value)
    return value
