"""``tek tui --attach``: the console on a run that a ``tek run`` process runs.

The run lives in a real ``tek run`` subprocess; the console attaches over its
socket, steers it, and detaches with ``q`` while the run goes on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from core.events import TaskState
from core.run_socket import find_served
from tek_tui.app import TekApp
from tek_tui.cli import main
from tek_tui.screens.main import MainScreen
from tek_tui.screens.picker import PickerScreen
from tek_tui.widgets.run_bar import RunBar
from tests.tui.fakes import enter_on_the_run, until


@pytest.mark.parametrize("how", ["flag", "picker"])
async def test_attach_steer_and_detach_while_the_run_goes_on(
    tmp_path: Path, served_run: tuple[subprocess.Popen[bytes], Path], how: str
) -> None:
    """``tek tui --attach``, or enter on the running run in the picker's recent runs."""
    proc, path = served_run
    app = TekApp(attach=path) if how == "flag" else TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(100, 30)) as pilot:
        if how == "picker":
            await enter_on_the_run(pilot, "running")
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None
                    and app.screen.state.counts.get(TaskState.RUNNING) == 2, limit=20)
        screen = app.screen
        assert isinstance(screen, MainScreen) and screen.attached
        assert str(screen.query_one(RunBar).render()).startswith("tek ▸ long (attached) · running")
        def footer() -> str:
            return " ".join(k.description for k in app.screen.query("FooterKey"))  # type: ignore[attr-defined]

        await until(pilot, lambda: "Detach" in footer())  # q detaches: it does not quit the run
        assert "Quit" not in footer()
        assert screen.selected == "nap1"
        await pilot.press("c")  # cancel nap1, in the other process
        await until(pilot, lambda: screen.state is not None
                    and screen.state.tasks["nap1"].state is TaskState.CANCELLED, limit=20)
        await pilot.press("q")  # detach: no question, the run is not ours to stop
        await until(pilot, lambda: not app.is_running)
    assert app.return_value == 0
    await anyio.sleep(0.3)
    assert proc.poll() is None  # still running nap2
    assert find_served("last") == path


def test_attach_with_nothing_running_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tek_tui.commands.tui._need_terminal", lambda: None)
    assert main(["tui", "--attach"]) == 2
    err = capsys.readouterr().err
    assert err == "tek: no run is being served: nothing is running now (`tek runs` lists finished runs; start one with `tek run PLAN`)\n"


async def test_a_consoles_own_run_is_served_to_other_consoles(tmp_path: Path) -> None:
    """A second SSH session can attach to the run a console started (`tek tui PLAN`)."""
    from core.events import Start
    from core.run_socket import SocketClient

    plan = tmp_path / "p.csv"
    plan.write_text("id,command\nnap,sleep 60\n")
    app = TekApp(plan_path=plan, search_dirs=[tmp_path])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.state is not None)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        other = await SocketClient.connect(find_served("last"))
        assert [t.id for t in other.snapshot().tasks] == ["nap"]
        events = other.events()

        async def read() -> None:
            async for _ in events:
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)  # control replies arrive on the event stream
            await other.control(Start())  # the other console starts it
            await until(pilot, lambda: screen.state is not None
                        and screen.state.tasks["nap"].state is TaskState.RUNNING, limit=20)
            await other.aclose()
            tg.cancel_scope.cancel()
        await pilot.press("q", "y")  # this console owns the run: it asks, then stops it
        await until(pilot, lambda: not app.is_running, limit=30)


async def test_enter_on_a_live_run_nobody_serves_never_starts_a_second_one(tmp_path: Path) -> None:
    from textual.widgets import Static

    from core.store import open_store
    from tests.core.journal_helpers import chain_plan

    with open_store() as store:
        run_id = store.begin_run(None, chain_plan(1))  # live (this process), not served
    app = TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(100, 30)) as pilot:
        await enter_on_the_run(pilot, "pending")
        problems = app.screen.query_one("#plan-problems-text", Static)
        await until(pilot, lambda: problems.display)
        assert f"run {run_id} is running in another process that does not serve it" in str(
            problems.render())
        assert isinstance(app.screen, PickerScreen)
