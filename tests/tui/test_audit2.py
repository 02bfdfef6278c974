"""Pilot tests for two console problems the first audit found and left.

1. ``tek tui PLAN`` showed the plan picker while PLAN loaded, so an ``enter``
   pressed during the load opened the picker's highlighted plan instead of
   PLAN. The console now shows a loading screen and shows the picker only
   when the plan cannot be run.
2. A refusal repeated (``c`` on a finished task, five times) stacked five
   identical toasts over the log pane; the same notification now replaces
   the one still showing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.widgets import Static
from textual.widgets._toast import Toast

from core.events import CancelTask, TaskState
from tek_tui.app import TekApp
from tek_tui.screens.help import HelpScreen
from tek_tui.screens.loading import LoadingScreen
from tek_tui.screens.main import MainScreen
from tek_tui.screens.picker import PickerScreen
from tests.tui.fakes import FakeClient, demo_events, demo_snapshot, make_app, ready, sizes, until

GOOD = "id,agent,command,deps\na,noop,,\nb,noop,,a\n"


class SlowLoader:
    """``core.plan_io.read_plan`` held at a gate the test opens."""

    def __init__(self, real: Callable[[Path], Any]) -> None:
        self.real = real
        self.calls: list[Path] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, path: Path) -> Any:
        self.calls.append(Path(path))
        self.entered.set()
        # Bounded: a failing test must not leave a thread behind for ever.
        self.gate.wait(timeout=10)
        return self.real(path)


@pytest.fixture
def slow_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowLoader]:
    import core.plan_io

    loader = SlowLoader(core.plan_io.read_plan)
    monkeypatch.setattr(core.plan_io, "read_plan", loader)
    try:
        yield loader
    finally:
        loader.gate.set()


def _plans(tmp_path: Path) -> tuple[Path, Path]:
    """Two good plans; the picker would highlight ``a_other.csv`` first."""
    other = tmp_path / "a_other.csv"
    other.write_text("id,agent,command\nx,noop,\n")
    wanted = tmp_path / "wanted.csv"
    wanted.write_text(GOOD)
    return other, wanted


class TestStartWithPlan:
    """``tek tui PLAN``: a loading screen, never the picker, unless PLAN has problems."""

    @sizes
    async def test_enter_during_the_load_opens_plan(
        self, tmp_path: Path, slow_loader: SlowLoader, size: tuple[int, int]
    ) -> None:
        _other, wanted = _plans(tmp_path)
        app = TekApp(plan_path=wanted, search_dirs=[tmp_path], theme="tek-dark")
        seen: list[type] = []
        async with app.run_test(size=size) as pilot:
            await until(pilot, slow_loader.entered.is_set)
            seen.append(type(app.screen))
            assert isinstance(app.screen, LoadingScreen)
            assert "wanted" in str(app.screen.query_one("#loading-text", Static).render())
            await pilot.press("enter", "down", "enter", "enter")
            slow_loader.gate.set()
            await until(pilot, lambda: isinstance(app.screen, MainScreen)
                        and app.screen.state is not None, limit=20)
            screen = app.screen
            assert isinstance(screen, MainScreen) and screen.state is not None
            assert slow_loader.calls == [wanted]
            assert screen.client.snapshot().plan_path == str(wanted)
            assert sorted(screen.state.tasks) == ["a", "b"]
            # The loading screen made way for the run: nothing to go back to.
            assert not any(isinstance(s, (PickerScreen, LoadingScreen))
                           for s in app.screen_stack)
            await pilot.press("q")  # nothing has started: no question
            await until(pilot, lambda: not app.is_running, limit=20)

    async def test_a_plan_with_problems_shows_the_picker_with_them(
        self, tmp_path: Path, slow_loader: SlowLoader
    ) -> None:
        bad = tmp_path / "bad.csv"
        bad.write_text("id,agent,command,deps\na,noop,,zz\n")
        app = TekApp(plan_path=bad, search_dirs=[tmp_path], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, slow_loader.entered.is_set)
            assert isinstance(app.screen, LoadingScreen)
            slow_loader.gate.set()
            await until(pilot, lambda: isinstance(app.screen, PickerScreen)
                        and app.screen.query_one("#plan-problems").display)
            text = str(app.screen.query_one("#plan-problems-text", Static).render())
            assert f"{bad}:2: deps" in text
            assert not any(isinstance(s, LoadingScreen) for s in app.screen_stack)

    async def test_help_open_during_the_load_makes_way_for_the_run(
        self, tmp_path: Path, slow_loader: SlowLoader
    ) -> None:
        _other, wanted = _plans(tmp_path)
        app = TekApp(plan_path=wanted, search_dirs=[tmp_path], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, slow_loader.entered.is_set)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen))
            slow_loader.gate.set()
            await until(pilot, lambda: isinstance(app.screen, MainScreen)
                        and app.screen.state is not None, limit=20)
            assert [type(s) for s in app.screen_stack][1:] == [MainScreen]

    async def test_q_while_loading_quits(self, tmp_path: Path, slow_loader: SlowLoader) -> None:
        _other, wanted = _plans(tmp_path)
        app = TekApp(plan_path=wanted, search_dirs=[tmp_path], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, slow_loader.entered.is_set)
            await pilot.press("q")
            await until(pilot, lambda: not app.is_running)
            slow_loader.gate.set()
        assert app.return_value == 0


class TestPickerLoad:
    """A plan chosen in the picker loads behind the same loading screen."""

    async def test_keys_during_the_load_do_not_open_another_plan(
        self, tmp_path: Path, slow_loader: SlowLoader
    ) -> None:
        other, _wanted = _plans(tmp_path)
        app = TekApp(search_dirs=[tmp_path], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, PickerScreen))
            await pilot.press("enter")  # a_other.csv, the first row
            await until(pilot, slow_loader.entered.is_set)
            assert isinstance(app.screen, LoadingScreen)
            await pilot.press("down", "enter")
            slow_loader.gate.set()
            await until(pilot, lambda: isinstance(app.screen, MainScreen)
                        and app.screen.state is not None, limit=20)
            screen = app.screen
            assert isinstance(screen, MainScreen)
            assert slow_loader.calls == [other.resolve()]
            assert screen.client.snapshot().plan_path == str(other.resolve())

    async def test_bad_plan_goes_back_to_the_picker(
        self, tmp_path: Path, slow_loader: SlowLoader
    ) -> None:
        (tmp_path / "bad.csv").write_text("id,agent,command,colour\na,noop,,red\n")
        app = TekApp(search_dirs=[tmp_path], theme="tek-dark")
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, PickerScreen))
            picker = app.screen
            await pilot.press("enter")
            await until(pilot, slow_loader.entered.is_set)
            slow_loader.gate.set()
            await until(pilot, lambda: app.screen is picker
                        and picker.query_one("#plan-problems").display)
            assert "colour" in str(picker.query_one("#plan-problems-text", Static).render())
            assert len(app.screen_stack) == 2  # the default screen and the picker


# --------------------------------------------------------------- notifications


def _toasts(app: TekApp, message: str) -> list[Toast]:
    return [t for t in app.screen.query(Toast) if t._notification.message == message]


class NotifyLog:
    """Every notification the app is sent, in order (a ``message_hook``)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def __call__(self, message: Message) -> None:
        if isinstance(message, Notify):
            self.sent.append(message.notification)

    def of(self, text: str) -> list[Notification]:
        return [n for n in self.sent if n.message == text]


async def _shown(pilot: Any, notification: Notification) -> None:
    """Wait until ``notification`` has its toast on the screen."""
    await until(pilot, lambda: any(t._notification is notification
                                   for t in pilot.app.screen.query(Toast)))


class TestRepeatedNotifications:
    """The same notification again replaces the one showing; others still stack."""

    @sizes
    async def test_five_refusals_show_one_toast(self, size: tuple[int, int]) -> None:
        refusal = "task fetch_data already finished"
        client = FakeClient(demo_snapshot(), demo_events())
        client.refuse[CancelTask] = refusal
        app = make_app(client)
        hook = NotifyLog()
        async with app.run_test(size=size, message_hook=hook, notifications=True) as pilot:
            screen = await ready(pilot)
            assert screen.selected == "fetch_data"
            assert screen.state.tasks["fetch_data"].state is TaskState.SUCCEEDED
            await pilot.press(*"ccccc")
            await until(pilot, lambda: len(hook.of(refusal)) == 5)
            await _shown(pilot, hook.of(refusal)[-1])
            assert client.controls == [CancelTask("fetch_data")] * 5
            assert len(_toasts(app, refusal)) == 1
            assert len([n for n in app._notifications if n.message == refusal]) == 1

    async def test_a_repeat_restarts_the_toast_timer(self) -> None:
        app = make_app()
        hook = NotifyLog()
        async with app.run_test(size=(80, 24), message_hook=hook, notifications=True) as pilot:
            await ready(pilot)
            app.notify("same", timeout=60)
            await until(pilot, lambda: len(hook.of("same")) == 1)
            await _shown(pilot, hook.of("same")[0])
            first = hook.of("same")[0]
            first.raised_at -= 30  # as if it had been showing for 30 s
            app.notify("same", timeout=60)
            await until(pilot, lambda: len(hook.of("same")) == 2)
            await _shown(pilot, hook.of("same")[1])
            (toast,) = _toasts(app, "same")
            assert toast._notification is hook.of("same")[1]
            assert toast._notification.time_left > 50

    async def test_different_messages_still_stack(self) -> None:
        app = make_app()
        hook = NotifyLog()
        async with app.run_test(size=(200, 50), message_hook=hook, notifications=True) as pilot:
            await ready(pilot)
            app.notify("one")
            app.notify("two")
            app.notify("one", severity="warning")  # same text, other severity: kept
            app.notify("one", title="refused")  # same text, other title: kept
            await until(pilot, lambda: len(hook.sent) == 4)
            await _shown(pilot, hook.sent[-1])
            assert sorted((n.title, n.message, n.severity) for n in app._notifications) == [
                ("", "one", "information"), ("", "one", "warning"),
                ("", "two", "information"), ("refused", "one", "information"),
            ]
