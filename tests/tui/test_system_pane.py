"""System pane under Pilot, fed by deterministic fake telemetry; gauges as plain functions."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import anyio
import pytest
from rich.style import Style
from textual.pilot import Pilot

from core.telemetry import GpuProcess, GpuSample, ProcSample, SystemSample
from tek_tui.widgets.sparkline import bar, spark_levels, sparkline
from tek_tui.widgets.system_pane import SystemPane
from tests.tui.widget_host import SIZES, run_host, screen_text

GIB = 1024**3


class FakeGpu:
    """A GPU monitor that is there (``present``) or not."""

    def __init__(self, present: bool) -> None:
        self.available = present
        self.reason = "" if present else "no NVIDIA driver"
        self.calls = 0

    def sample(self) -> list[GpuSample]:
        self.calls += 1
        util = float(self.calls * 10 % 100)
        return [
            GpuSample(0, "Fake H100", util, 20 * GIB, 80 * GIB, 61.0, 250.0, (GpuProcess(4242, GIB),)),
            GpuSample(1, "Fake T4", None, None, None, None, None),
        ]


class FakeTelemetry:
    """Scripted readings; counts calls and how many run at once."""

    def __init__(self, gpu: bool = False, fail_at: int = 0, hold_at: int = 0) -> None:
        self.gpu = FakeGpu(gpu)
        self.calls = 0
        self.fail_at = fail_at
        self.hold_at = hold_at
        self.release = threading.Event()
        self.running = 0
        self.most_at_once = 0
        self.seen_pids: list[dict[str, int]] = []
        self._lock = threading.Lock()

    def sample_system(self) -> SystemSample:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            calls = self.calls
        try:
            if calls == self.hold_at:  # block this poll until the test lets go
                self.release.wait(10)
            if calls == self.fail_at:
                raise OSError("proc is gone")
            return SystemSample(
                ts=1.0,
                cpu_percent=(10.0, 95.0, 50.0, 0.0),
                memory_total=16 * GIB,
                memory_available=6 * GIB,
                memory_percent=62.5,
                load_avg=(1.5, 1.25, 0.75),
            )
        finally:
            with self._lock:
                self.running -= 1

    def sample_processes(self, pids: Mapping[str, int]) -> dict[str, ProcSample]:
        self.seen_pids.append(dict(pids))
        return {t: ProcSample(pid, 150.0 if t == "train" else 3.0, GIB + pid, 2) for t, pid in pids.items()}


async def wait_samples(pilot: Pilot[None], pane: SystemPane, count: int) -> None:
    """Let the app run until the pane has painted ``count`` polls (bounded)."""
    with anyio.fail_after(20):
        while pane.samples < count:
            await pilot.pause(0.01)


@pytest.mark.parametrize("size", SIZES)
async def test_no_gpu_said_plainly(size: tuple[int, int]) -> None:
    fake = FakeTelemetry(gpu=False)
    async with run_host(lambda: SystemPane(fake, interval=0.01), size) as (app, pilot, _):
        pane = app.query_one(SystemPane)
        await wait_samples(pilot, pane, 2)
        text = screen_text(app)
        assert "no NVIDIA GPU (no NVIDIA driver)" in text
        assert "cpu   39%" in text  # mean of the four cores
        assert "mem   62% 10.0/16.0 GiB" in text
        assert "load 1.50 1.25 0.75" in text
        assert fake.gpu.calls == 0  # never asks an absent GPU
        if size[0] >= 60:
            assert " 95%" in text and "  1 " in text  # one bar per core, labelled
        else:
            assert "▁█▅▁" in text  # one block per core when narrow
        await pilot.resize_terminal(50, 24)  # redrawn for the new width at once
        await pilot.pause()
        assert "▁█▅▁" in screen_text(app)


@pytest.mark.parametrize("size", SIZES)
async def test_gpus_with_sparklines(size: tuple[int, int]) -> None:
    fake = FakeTelemetry(gpu=True)
    async with run_host(lambda: SystemPane(fake, interval=0.01, history=5), size) as (app, pilot, _):
        pane = app.query_one(SystemPane)
        await wait_samples(pilot, pane, 8)
        text = screen_text(app)
        assert "GPU 0 Fake H100" in text and "GPU 1 Fake T4" in text
        assert "20.0/80.0 GiB" in text and "61°C" in text and "250 W" in text
        assert "?/? GiB" in text and "—" in text  # unsupported fields, not a crash
        assert "4242: 1.0 GiB" in text
        assert "no NVIDIA GPU" not in text
        # Histories are bounded.
        assert len(pane.gpu_history[(0, "util")]) == 5
        assert len(pane.cpu_history) == 5
        assert list(pane.gpu_history[(1, "temp")]) == [None] * 5


async def test_task_trees_and_pids() -> None:
    fake = FakeTelemetry()
    async with run_host(lambda: SystemPane(fake, interval=0.01), (200, 50)) as (app, pilot, _):
        pane = app.query_one(SystemPane)
        pane.set_task_pids({"prep": 100, "train": 200})
        done = pane.samples
        await wait_samples(pilot, pane, done + 2)
        text = screen_text(app)
        assert fake.seen_pids[-1] == {"prep": 100, "train": 200}
        lines = [line for line in text.splitlines() if line.startswith(("train", "prep"))]
        assert lines[0].split()[:2] == ["train", "150%"]  # busiest first
        assert "1.0 GiB" in lines[0]
        pane.set_task_pids({})
        await wait_samples(pilot, pane, pane.samples + 2)
        assert "train" not in screen_text(app)


async def test_polls_never_overlap_and_errors_do_not_stop_them() -> None:
    fake = FakeTelemetry(fail_at=3, hold_at=4)
    async with run_host(lambda: SystemPane(fake, interval=0.0), (80, 24)) as (app, pilot, _):
        pane = app.query_one(SystemPane)
        await wait_samples(pilot, pane, 3)
        assert "telemetry failed: proc is gone" in screen_text(app)
        with anyio.fail_after(10):  # the next poll starts (and is held): errors do not stop polling
            while fake.calls < 4:
                await pilot.pause(0.01)
        fake.release.set()
        await wait_samples(pilot, pane, 12)
        assert fake.most_at_once == 1
        assert "telemetry failed" not in screen_text(app)


async def test_real_telemetry_here() -> None:
    async with run_host(lambda: SystemPane(interval=0.05), (80, 24)) as (app, pilot, _):
        pane = app.query_one(SystemPane)
        await wait_samples(pilot, pane, 2)
        text = screen_text(app)
        assert "cpu" in text and "mem" in text and "load" in text
        assert "no NVIDIA GPU (" in text  # this machine has no NVIDIA driver


def test_gauges() -> None:
    assert spark_levels([0, 50, 100, None, 200], 10) == [0, 4, 7, -1, 7]
    assert spark_levels(range(100), 3, hi=99) == [7, 7, 7]
    low, high = Style(bold=True), Style(italic=True)
    line = sparkline([0.0, 100.0], 5, low, high)
    assert line.plain == "▁█" and line.spans[-1].style == high
    assert bar(0.5, 4) == "██  "
    assert bar(0.5, 1) == "▌"
    assert bar(0.25, 2) == "▌ "
    assert bar(2.0, 3) == "███"
    assert bar(0.0, 3) == "   "


@pytest.mark.parametrize("theme", ["tek-dark", "tek-light", "tek-contrast", "textual-dark"])
async def test_every_theme_styles_all_three_widgets(theme: str) -> None:
    """Every tek theme, and a Textual one (tek colours from defaults), styles the widgets."""
    from core.events import PoolInfo, TaskInfo, TaskState
    from tek_tui.widgets.dag_view import DagView
    from tek_tui.widgets.pools_pane import PoolsPane

    fake = FakeTelemetry(gpu=True)
    async with run_host(lambda: SystemPane(fake, interval=0.01), (80, 24), theme=theme) as (app, pilot, _):
        pane = app.query_one(SystemPane)
        await wait_samples(pilot, pane, 2)
        await app.screen.mount(dag := DagView(), pools := PoolsPane())
        dag.set_tasks([TaskInfo("a", "a", "noop", "noop", ()), TaskInfo("b", "b", "noop", "noop", ("a",))])
        dag.update_states({"a": TaskState.FAILED})
        pools.update_pools([PoolInfo("noop", 2, 1)], True, "paused by user")
        await pilot.pause()
        assert app.theme == theme
        failed = dag.get_component_rich_style("dag-view--failed")
        assert failed.color is not None
        assert pools.get_component_rich_style("pools-pane--paused").color is not None
        assert pane.get_component_rich_style("system-pane--spark-high").color is not None
        text = screen_text(app)
        assert "GPU 0" in text and "✗ a" in text and "admission paused" in text
