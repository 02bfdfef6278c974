"""A fake :class:`~core.client.RunClient` and a deterministic recorded run for console tests.

``FakeClient`` replays scripted events and records every control it is sent;
``demo_snapshot``/``demo_events`` describe a small, fixed run (times are fixed
offsets from :data:`T0`, no hostnames or PIDs of this machine), used by Pilot
tests and snapshots alike. ``FrozenClock`` is the app's clock in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import pytest

from core.errors import ControlError
from core.events import (
    AdmissionChanged,
    CancelRun,
    Control,
    Event,
    OutputLines,
    PoolChanged,
    PoolInfo,
    Progress,
    ResizePool,
    RunFinished,
    RunSnapshot,
    RunStarted,
    RunStatus,
    Start,
    TaskChanged,
    TaskInfo,
    TaskState,
)

T0 = 1_700_000_000.0


class FrozenClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = T0 + 65.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeClient:
    """Replays ``script`` to every subscriber, then whatever :meth:`emit` adds."""

    def __init__(self, snapshot: RunSnapshot, script: Sequence[Event] = (),
                 *, finish_on_cancel: bool = True) -> None:
        self._snapshot = snapshot
        self.script = list(script)
        self.controls: list[Control] = []
        self.refuse: dict[type, str] = {}
        self.finish_on_cancel = finish_on_cancel
        self._queues: list[asyncio.Queue[Event | None]] = []
        self.subscribed = asyncio.Event()

    def snapshot(self) -> RunSnapshot:
        return self._snapshot

    async def _stream(self, queue: asyncio.Queue[Event | None]) -> AsyncIterator[Event]:
        for scripted in self.script:
            yield scripted
        while (event := await queue.get()) is not None:
            yield event
            if isinstance(event, RunFinished):
                return

    def events(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._queues.append(queue)
        self.subscribed.set()
        return self._stream(queue)

    def emit(self, *events: Event) -> None:
        for queue in self._queues:
            for event in events:
                queue.put_nowait(event)

    async def control(self, command: Control) -> None:
        self.controls.append(command)
        if type(command) in self.refuse:
            raise ControlError(self.refuse[type(command)])
        if isinstance(command, CancelRun) and self.finish_on_cancel:
            self.emit(RunFinished("run-demo", RunStatus.CANCELLED, {}, 1.0, T0 + 70))
        if isinstance(command, Start):
            self.emit(RunStarted("run-demo", "plans/demo.csv", len(self._snapshot.tasks), T0))


def _task(task_id: str, agent: str = "shell", deps: Iterable[str] = (), tags: Iterable[str] = (),
          pool: str = "") -> TaskInfo:
    return TaskInfo(id=task_id, name=task_id.replace("_", " "), agent=agent,
                    pool=pool or agent, deps=tuple(deps), tags=tuple(tags))


DEMO_TASKS: tuple[TaskInfo, ...] = (
    _task("fetch_data", tags=("io",)),
    _task("check_schema", deps=("fetch_data",)),
    _task("build_features", deps=("check_schema",), tags=("cpu",)),
    _task("train_model", agent="ml", deps=("build_features",), tags=("gpu", "ml")),
    _task("lint", tags=("ci",)),
    _task("unit_tests", deps=("lint",), tags=("ci",)),
    _task("integration", deps=("unit_tests", "fetch_data"), tags=("ci",)),
    _task("evaluate", agent="ml", deps=("train_model",), tags=("ml",)),
    _task("report", deps=("evaluate", "integration")),
    _task("publish", deps=("report",)),
    _task("notify", agent="noop", deps=("publish",)),
    _task("cleanup", agent="noop", deps=("notify",)),
)


def demo_snapshot(status: RunStatus = RunStatus.PENDING,
                  tasks: Sequence[TaskInfo] = DEMO_TASKS) -> RunSnapshot:
    """The demo run before any event."""
    return RunSnapshot(
        run_id="run-demo",
        plan_path="plans/demo.csv",
        status=status,
        tasks=tuple(tasks),
        pools=(PoolInfo("shell", 2), PoolInfo("ml", 1), PoolInfo("noop", 4)),
    )


def demo_events() -> list[Event]:
    """A fixed run: some tasks done, one failed, two running, ML loss reported."""
    ev: list[Event] = [RunStarted("run-demo", "plans/demo.csv", len(DEMO_TASKS), T0)]

    def change(task_id: str, state: TaskState, at: float, attempt: int = 1, **kw: object) -> None:
        ev.append(TaskChanged(task_id, state, attempt, T0 + at, **kw))  # type: ignore[arg-type]

    for task_id, start, end in (("fetch_data", 0, 4), ("lint", 0, 2), ("check_schema", 4, 9),
                                ("build_features", 9, 30)):
        change(task_id, TaskState.RUNNING, start)
        ev.append(OutputLines(task_id, 1, (f"{task_id}: starting", f"{task_id}: done")))
        change(task_id, TaskState.SUCCEEDED, end, exit_code=0)
    change("unit_tests", TaskState.RUNNING, 2)
    ev.append(OutputLines("unit_tests", 1, ("collected 41 items", "FAILED test_io.py::test_bom")))
    change("unit_tests", TaskState.FAILED, 20, exit_code=1, reason="exit code 1")
    change("integration", TaskState.SKIPPED, 20, attempt=0, reason="upstream unit_tests failed")
    change("train_model", TaskState.RUNNING, 30)
    for step, loss in enumerate((2.3, 1.9, 1.4, 1.1, 0.9, 0.72, 0.61, 0.55)):
        ev.append(Progress("train_model", 1, T0 + 31 + step,
                           {"epoch": step + 1, "epochs": 20, "loss": loss}, (step + 1) / 20))
    ev.append(OutputLines("train_model", 1, ("epoch 8/20 loss 0.55",)))
    change("evaluate", TaskState.READY, 30, attempt=0)
    ev += [
        PoolChanged("shell", 2, 0, 0, 5, T0 + 30),
        PoolChanged("ml", 1, 1, 1, 0, T0 + 31),
        PoolChanged("noop", 4, 0, 0, 0, T0 + 31),
        AdmissionChanged(False, "", T0 + 31),
    ]
    return ev


def resize_of(controls: Iterable[Control]) -> list[ResizePool]:
    """The ResizePool controls among ``controls``."""
    return [c for c in controls if isinstance(c, ResizePool)]


# ------------------------------------------------------------------- helpers

SIZES = [(80, 24), (200, 50)]
#: Runs a test at each of :data:`SIZES` (``size`` argument), named ``80x24`` etc.
sizes = pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")


def make_app(client: FakeClient | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    """A console on ``client`` (default: the demo run) with a frozen clock."""
    from tek_tui.app import TekApp

    if client is None:
        client = FakeClient(demo_snapshot(), demo_events())
    kwargs.setdefault("clock", FrozenClock())
    kwargs.setdefault("theme", "tek-dark")
    # No real psutil/NVML polling in tests: one fake sample, then an hour's wait.
    kwargs.setdefault("sampler", FakeTelemetry())
    kwargs.setdefault("telemetry_s", 3600.0)
    return TekApp(client=client, **kwargs)  # type: ignore[arg-type]


async def until(pilot: Any, condition: Callable[[], object], limit: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds (bounded by ``limit`` seconds)."""
    import anyio

    with anyio.fail_after(limit):
        while not condition():
            await pilot.pause(0.02)


async def burst(pilot: Any, *keys: str) -> None:
    """Send ``keys`` in one burst, as a terminal does when they arrive together (SSH,
    ``tmux send-keys``), then let the app handle them.

    ``pilot.press`` waits for the app to go idle after every key, so it
    never shows what keys queued behind one another do: here every key is
    in the app's queue before the first is handled. Returns once the app
    has taken them all (a callback queued behind them has run) and has none
    on its way (``KeysInOrder``).
    """
    from textual import events
    from textual.keys import _character_to_key

    app = pilot.app
    for key in keys:
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        char = key if len(key) == 1 else {"slash": "/", "enter": "\r"}.get(key)
        event = events.Key(name, char)
        event.set_sender(app)
        app.post_message(event)
    taken = asyncio.Event()
    app.call_later(taken.set)
    await until(pilot, taken.is_set)
    await until(pilot, lambda: not getattr(app, "_key_busy", False))
    await pilot.pause()  # focus messages queued behind the last key


async def enter_on_the_run(pilot: Any, status: str) -> None:
    """In the picker, wait for its one recent run to read ``status``, then press enter on it."""
    from textual.widgets import DataTable

    from tek_tui.screens.picker import PickerScreen

    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, PickerScreen))
    runs = app.screen.query_one("#run-list", DataTable)
    await until(pilot, lambda: runs.row_count == 1 and runs.get_row_at(0)[1] == status)
    runs.focus()
    await pilot.press("enter")


async def ready(pilot: Any) -> Any:
    """Wait until the main screen has the demo script painted; return the screen."""
    from tek_tui.screens.main import MainScreen

    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.state is not None)
    screen = app.screen
    await until(pilot, lambda: not screen.state._dirty.tasks and screen.table.row_count > 0)
    return screen


class FakeGpu:
    """No NVIDIA GPU, as on CI."""

    available = False
    reason = "no NVIDIA GPU (NVML not found)"

    def sample(self) -> list:  # type: ignore[type-arg]
        return []


class FakeTelemetry:
    """A deterministic ``core.telemetry.TelemetrySource``: fixed figures, no real PIDs."""

    def __init__(self) -> None:
        self.gpu = FakeGpu()
        self.calls = 0

    def sample_system(self):  # type: ignore[no-untyped-def]
        from core.telemetry import SystemSample

        self.calls += 1
        return SystemSample(
            ts=T0 + 65, cpu_percent=(37.5, 81.0, 12.0, 55.0),
            memory_total=16 * 2**30, memory_available=9 * 2**30, memory_percent=43.8,
            load_avg=(1.5, 1.2, 0.9),
        )

    def sample_processes(self, pids):  # type: ignore[no-untyped-def]
        from core.telemetry import ProcSample

        return {task_id: ProcSample(pid=pid, cpu_percent=98.0, rss=512 * 2**20, processes=3)
                for task_id, pid in pids.items()}
