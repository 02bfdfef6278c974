"""Pools pane under Pilot: figures, finished/s, admission line, selection and resize keys."""

from __future__ import annotations

from typing import Any

import pytest

from core.events import PoolChanged, PoolInfo, RunStarted
from tek_tui.widgets.pools_pane import PoolsPane
from tests.tui.fakes import T0, FakeClient, FrozenClock, demo_snapshot, make_app, ready, until
from tests.tui.widget_host import SIZES, run_host, screen_text


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


POOLS = [PoolInfo("shell", size=4, busy=3, queued=12, finished=0), PoolInfo("ml", size=1, busy=1)]


@pytest.mark.parametrize("size", SIZES)
async def test_shows_pools_rate_and_admission(size: tuple[int, int]) -> None:
    clock = Clock()
    async with run_host(lambda: PoolsPane(clock=clock), size) as (app, pilot, posted):
        pane = app.query_one(PoolsPane)
        assert "no pools yet" in screen_text(app)
        pane.update_pools(POOLS, False, "")
        clock.now += 2.0
        pane.update_pools([PoolInfo("shell", 4, 4, 10, finished=10), POOLS[1]], False, "")
        await pilot.pause()
        assert pane.finished_per_second("shell") == pytest.approx(5.0)
        assert pane.finished_per_second("ml") == 0.0
        text = screen_text(app)
        assert "shell" in text and "ml" in text and "5.0" in text
        assert "admission paused" not in text
        pane.update_pools(pane.pools, True, "available memory 410 MiB below floor 512 MiB")
        await pilot.pause()
        assert "⏸ admission paused: available memory 410 MiB below floor 512 MiB" in screen_text(app)
        assert posted == []


@pytest.mark.parametrize("size", SIZES)
async def test_a_pool_waiting_for_a_resource_says_so(size: tuple[int, int]) -> None:
    async with run_host(lambda: PoolsPane(clock=Clock()), size) as (app, pilot, _):
        pane = app.query_one(PoolsPane)
        pane.update_pools([PoolInfo("build", 4, busy=1, queued=10,
                                    waiting_for="cpus (2 of 2 in use)"), POOLS[1]], False, "")
        await pilot.pause()
        assert "⧗ build: 10 wait for cpus (2 of 2 in use)" in screen_text(app)
        pane.update_pools([PoolInfo("build", 4, busy=2, queued=9), POOLS[1]], False, "")
        await pilot.pause()
        assert "⧗" not in screen_text(app)


async def test_rate_window_and_counter_reset() -> None:
    clock = Clock()
    async with run_host(lambda: PoolsPane(clock=clock), (200, 50)) as (app, pilot, _):
        pane = app.query_one(PoolsPane)
        for step in range(10):  # 1 task/s for 10 s, then 10 tasks/s
            clock.now += 1.0
            pane.update_pools([PoolInfo("p", 2, finished=step)], False, "")
        for step in range(6):
            clock.now += 1.0
            pane.update_pools([PoolInfo("p", 2, finished=10 + 10 * step)], False, "")
        # Only the last ~5 s count.
        assert pane.finished_per_second("p") == pytest.approx(10.0)
        pane.update_pools([PoolInfo("p", 2, finished=0)], False, "")  # a new run
        assert pane.finished_per_second("p") == 0.0
        clock.now += 0.01  # a burst: 50 done in 10 ms is not 5000/s
        pane.update_pools([PoolInfo("p", 2, finished=50)], False, "")
        assert pane.finished_per_second("p") == pytest.approx(50.0)


@pytest.mark.parametrize("size", SIZES)
async def test_keys_select_and_request_resize(size: tuple[int, int]) -> None:
    async with run_host(PoolsPane, size) as (app, pilot, posted):
        pane = app.query_one(PoolsPane)
        pane.update_pools(POOLS, False, "")
        await pilot.pause()
        assert pane.selected_pool == "shell"
        await pilot.press("plus", "plus")
        await pilot.press("down")
        assert pane.selected_pool == "ml"
        await pilot.press("minus")  # ml is at 1: never below 1, nothing asked
        await pilot.press("plus")
        await pilot.press("up", "minus")
        await pilot.pause()
        asked = [(m.pool, m.size) for m in posted if isinstance(m, PoolsPane.ResizeRequested)]
        assert asked == [("shell", 5), ("shell", 6), ("ml", 2), ("shell", 5)]
        assert all(m.control is pane for m in posted)
        assert "4→5" in screen_text(app)  # requested, not yet applied
        pane.update_pools([PoolInfo("shell", 5, 3, 12), POOLS[1]], False, "")
        await pilot.pause()
        assert "→" not in screen_text(app).split("ml")[0]
        await pilot.press("down", "down")  # wraps round
        assert pane.selected_pool == "shell"


async def test_selection_follows_pool_name() -> None:
    async with run_host(PoolsPane, (80, 24)) as (app, pilot, _):
        pane = app.query_one(PoolsPane)
        pane.update_pools(POOLS, False, "")
        await pilot.press("down")
        pane.update_pools([PoolInfo("gpu", 1), *POOLS], False, "")
        assert pane.selected_pool == "ml"
        pane.update_pools([POOLS[0]], False, "")
        assert pane.selected_pool == "shell"
        await pilot.press("plus")
        assert pane.selected_pool == "shell"


async def test_the_rate_falls_to_zero_once_nothing_finishes() -> None:
    """A rate over the last few seconds: with no new report it falls, then reads 0.0
    (it kept the last run of finishes, `3.0`, for as long as the run stayed open)."""
    clock = Clock()
    async with run_host(lambda: PoolsPane(clock=clock), (80, 24)) as (app, pilot, _):
        pane = app.query_one(PoolsPane)
        pane.update_pools([PoolInfo("shell", 3, finished=0)], False, "")
        clock.now += 2.0
        pane.update_pools([PoolInfo("shell", 3, finished=6)], False, "")
        await pilot.pause()
        assert pane.finished_per_second("shell") == pytest.approx(3.0)
        assert "3.0" in screen_text(app)
        clock.now += 2.0  # nothing reported since: 6 finished over the last 4 s
        assert pane.finished_per_second("shell") == pytest.approx(1.5)
        clock.now += 4.0  # a whole window without a finish
        assert pane.finished_per_second("shell") == 0.0
        pane._repaint_rates()  # what its once-a-second timer does
        await pilot.pause()
        assert "3.0" not in screen_text(app) and "0.0" in screen_text(app)



async def test_a_hidden_pools_pane_keeps_counting_so_its_rate_is_right_when_shown() -> None:
    """At 80x24 one pane shows at a time: tasks that finished while Pools was
    hidden were read, once it showed again, as finished over the last 5 s."""
    client = FakeClient(demo_snapshot(), [RunStarted("run-demo", "", 4, T0),
                                          PoolChanged("shell", 2, 2, 38, 0, T0)])
    pane_clock = FrozenClock(100.0)
    app = make_app(client, pane_clock=pane_clock)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(pilot)
        pools: Any = screen.query_one("#pools-pane")
        await pilot.press("tab", "tab", "tab")  # tasks → log → dag → pools
        await until(pilot, lambda: screen.pane_visible("pools") and bool(pools.pools))
        await pilot.press("tab")
        assert not screen.pane_visible("pools")
        pane_clock.now += 2
        client.emit(PoolChanged("shell", 2, 0, 0, 40, T0 + 2))  # all 40 finish, unseen
        await until(pilot, lambda: pools.pools[0].finished == 40)
        pane_clock.now += 13  # nothing finishes afterwards
        for _ in range(4):  # round to Pools again
            await pilot.press("tab")
            if screen.pane_visible("pools"):
                break
        await pilot.pause()
        assert screen.pane_visible("pools")
        assert pools.finished_per_second("shell") == 0.0
        assert "0.0" in str(pools.render())
