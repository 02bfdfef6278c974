"""Pilot tests: every run control sends the right protocol message, at 80x24 and 200x50."""

from __future__ import annotations

import pytest

from core.events import (
    AdmissionChanged,
    CancelRun,
    CancelTask,
    Pause,
    ResizePool,
    Resume,
    RetryTask,
    RunStatus,
    SkipTask,
    Start,
)
from tek_tui.screens.confirm import ConfirmModal
from tek_tui.screens.resize import ResizeModal
from tests.tui.fakes import (
    T0,
    FakeClient,
    demo_events,
    demo_snapshot,
    make_app,
    ready,
    sizes,
    until,
)

pytestmark = sizes


async def test_start_key_sends_start(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("s")
        assert client.controls == [Start()]
        await until(pilot, lambda: app.screen.state.status is RunStatus.RUNNING)


async def test_start_flag_starts_at_once(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot())
    app = make_app(client, start=True)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await until(pilot, lambda: client.controls == [Start()])


async def test_pause_then_resume(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("p")
        assert client.controls == [Pause()]
        client.emit(AdmissionChanged(True, "paused by user", T0 + 66))
        await until(pilot, lambda: screen.state.status is RunStatus.PAUSED)
        await pilot.press("p")
        assert client.controls == [Pause(), Resume()]


@pytest.mark.parametrize(
    ("key", "control"), [("c", CancelTask), ("r", RetryTask), ("x", SkipTask)]
)
async def test_task_controls_act_on_selected_task(
    size: tuple[int, int], key: str, control: type
) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("down", "down", "down")
        await until(pilot, lambda: screen.selected == "train_model")
        await pilot.press(key)
        if key in "cx":  # five tasks downstream would be skipped: asks first
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
        await until(pilot, lambda: client.controls == [control("train_model")])


async def test_refused_control_is_a_notification(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    client.refuse[RetryTask] = "task fetch_data has not failed"
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("r")
        assert client.controls == [RetryTask("fetch_data")]
        assert any("has not failed" in str(n.message) for n in app._notifications)


async def test_cancel_run_asks_first(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmModal))
        assert client.controls == []
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: client.controls == [CancelRun()])


async def test_resize_selected_tasks_pool(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)  # cursor on fetch_data, pool "shell" of size 2
        await pilot.press("plus")
        await pilot.press("minus")
        assert client.controls == [ResizePool("shell", 3), ResizePool("shell", 1)]
        await pilot.press("equals_sign")
        await until(pilot, lambda: isinstance(app.screen, ResizeModal))
        await pilot.press("backspace", "x", "enter")  # rejected: not a number
        assert isinstance(app.screen, ResizeModal)
        await pilot.press("backspace", "7", "enter")
        await until(pilot, lambda: not isinstance(app.screen, ResizeModal))
        assert client.controls[-1] == ResizePool("shell", 7)


async def test_quit_during_run_asks_then_cancels_and_exits(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running)
    assert client.controls == [CancelRun()]
    assert app.return_value == 1  # the run was cancelled: as `tek run`, exit 1


async def test_quit_before_start_cancels_quietly(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert client.controls == [CancelRun()]


async def test_pools_pane_keys_resize_its_selected_pool(size: tuple[int, int]) -> None:
    client = FakeClient(demo_snapshot(), demo_events())
    app = make_app(client)
    async with app.run_test(size=size) as pilot:
        screen = await ready(pilot)
        await pilot.press("tab", "tab", "tab")  # tasks → log → dag → pools
        assert screen.active_pane == "pools"
        pools = screen.query_one("#pools-pane")
        await until(pilot, lambda: bool(pools.pools))
        await pilot.press("down", "plus")  # second pool: ml, size 1
        await until(pilot, lambda: bool(client.controls))
        assert client.controls == [ResizePool("ml", 2)]
