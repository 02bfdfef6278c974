"""``tek tui --attach``: the console on a run that a ``tek run`` process runs.

The run lives in a real ``tek run`` subprocess; the console attaches over its
socket, steers it, and detaches with ``q`` while the run goes on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from core.errors import TekError
from core.events import TaskState
from core.run_socket import find_served
from tek_tui.app import TekApp
from tek_tui.cli import main
from tek_tui.screens.main import MainScreen
from tests.tui.fakes import until


def _served(proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 30
    while True:
        try:
            return find_served("last")
        except TekError:
            assert proc.poll() is None, "tek run ended before serving its run"
            assert time.monotonic() < deadline, "tek run never served its run"
            time.sleep(0.05)  # polling for the socket; bounded by the deadline


async def test_attach_steer_and_detach_while_the_run_goes_on(tmp_path: Path, tek_home: Path) -> None:
    plan = tmp_path / "long.csv"
    plan.write_text("id,command\nnap1,sleep 60\nnap2,sleep 61\n")
    proc = subprocess.Popen([sys.executable, "-m", "tek_tui", "run", "--plain", str(plan)],
                            env={**os.environ, "TEK_HOME": str(tek_home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        path = _served(proc)
        app = TekApp(attach=path)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, MainScreen)
                        and app.screen.state is not None
                        and app.screen.state.counts.get(TaskState.RUNNING) == 2, limit=20)
            screen = app.screen
            assert isinstance(screen, MainScreen) and screen.attached
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
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130


def test_attach_with_nothing_running_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tek_tui.commands.tui._need_terminal", lambda: None)
    assert main(["tui", "--attach"]) == 2
    err = capsys.readouterr().err
    assert err == "tek: no run is being served to attach to (start one with `tek run PLAN`)\n"
