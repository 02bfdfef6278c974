"""Resuming a journaled run from the console: the picker's run list and ``tek tui --resume``.

A run that died (SSH dropped, machine rebooted) or failed is resumed as
``tek run --resume`` resumes it: same run id, what succeeded stays done and
does not run again, the rest waits for ``s``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.events import RunStatus, TaskState
from core.run_options import RunOptions
from core.store import open_store
from tek_tui.app import TekApp
from tek_tui.cli import main
from tek_tui.screens.main import MainScreen
from tek_tui.widgets.states import format_duration
from tests.tui.fakes import enter_on_the_run, until


@pytest.fixture
def failed_run(tmp_path: Path) -> tuple[Path, Path, str]:
    """A plan whose `b` fails until `flag` exists, run once by `tek run` (b failed).

    Returns the plan, the file `a` appends to, and the run id.
    """
    flag, count = tmp_path / "flag", tmp_path / "a-ran"
    plan = tmp_path / "p.csv"
    plan.write_text(f"id,command,deps\na,echo a >> {count},\nb,test -f {flag},a\n")
    assert main(["run", "--plain", str(plan)]) == 1
    with open_store() as store:
        (run,) = store.list_runs()
    assert run.status == "failed"
    flag.touch()  # b will succeed now
    return plan, count, run.id


async def _resumed(pilot: object, app: TekApp, run_id: str) -> MainScreen:
    await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.state is not None)
    screen = app.screen
    assert isinstance(screen, MainScreen) and screen.state is not None
    assert screen.state.tasks["a"].state is TaskState.SUCCEEDED  # kept from the first run
    assert screen.state.tasks["b"].state is TaskState.PENDING
    assert any(f"resuming run {run_id}: 1 to run, 1 already succeeded" in str(n.message)
               for n in app._notifications)
    await pilot.press("s")  # type: ignore[attr-defined]
    await until(pilot, lambda: screen.state is not None
                and screen.state.tasks["b"].state is TaskState.SUCCEEDED, limit=20)
    return screen


def _journal_after(run_id: str, count: Path) -> None:
    with open_store() as store:
        (run,) = store.list_runs()  # the same run, not a new one
        assert run.id == run_id and run.resumes == 1
        assert [a.attempt for a in store.attempts(run_id, "b")] == [1, 2]
    assert count.read_text() == "a\n"  # a ran once, in the first run


async def test_enter_on_a_failed_run_in_the_picker_resumes_it(
    tmp_path: Path, failed_run: tuple[Path, Path, str]
) -> None:
    _plan, count, run_id = failed_run
    app = TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await enter_on_the_run(pilot, "failed")
        screen = await _resumed(pilot, app, run_id)
        assert screen.state is not None and screen.state.status is not RunStatus.FAILED
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)
    _journal_after(run_id, count)


@pytest.mark.parametrize("how", ["last", "id"])
async def test_tui_resume_opens_the_run_resumed(
    tmp_path: Path, failed_run: tuple[Path, Path, str], how: str
) -> None:
    """``tek tui PLAN --resume [RUN_ID|last]`` (the flag hands TekApp these)."""
    plan, count, run_id = failed_run
    app = TekApp(plan_path=plan, resume="last" if how == "last" else run_id, search_dirs=[tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await _resumed(pilot, app, run_id)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)
    _journal_after(run_id, count)


def test_tui_resume_without_a_journal_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tek_tui.commands.tui._need_terminal", lambda: None)
    assert main(["tui", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tek: ") and "journal" in err


async def test_a_resumed_run_shows_how_long_the_tasks_done_before_took(
    tmp_path: Path, failed_run: tuple[Path, Path, str]
) -> None:
    """The time column was blank for the tasks that had succeeded in the first run."""
    plan, _count, run_id = failed_run
    with open_store() as store:
        (first,) = store.attempts(run_id, "a")
    app = TekApp(plan_path=plan, resume=run_id, search_dirs=[tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None and app.screen.table.row_count == 2)
        screen = app.screen
        assert isinstance(screen, MainScreen) and screen.state is not None
        a = screen.state.tasks["a"]
        assert (a.started_ts, a.finished_ts) == (first.started_ts, first.ended_ts)
        took = format_duration(first.ended_ts - first.started_ts, tenths=True)
        assert took.endswith("s") and screen.table.cell_values("a")["duration"] == took
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)


def _journal_state(run_id: str) -> tuple[object, ...]:
    with open_store() as store:
        run, tasks, attempts = store.read_run(run_id)
    return (run.status, run.resumes, run.ended_ts, [(t.task_id, t.state) for t in tasks],
            [(a.task_id, a.attempt, a.state) for a in attempts])


async def test_a_resume_left_before_s_leaves_the_run_as_it_was(
    tmp_path: Path, failed_run: tuple[Path, Path, str]
) -> None:
    """Looking at a failed run in the console (enter in the picker), then leaving."""
    plan, _count, run_id = failed_run
    before = _journal_state(run_id)
    app = TekApp(plan_path=plan, resume=run_id, search_dirs=[tmp_path])
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None and app.screen.table.row_count == 2)
        await pilot.press("x")  # a control before the start changes nothing either
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)
    assert _journal_state(run_id) == before


async def test_an_edited_resume_is_still_a_resume_of_the_same_run(
    tmp_path: Path, failed_run: tuple[Path, Path, str]
) -> None:
    """Edit a task of the resumed plan, save, start: the same run goes on, with the edit."""
    plan, count, run_id = failed_run
    app = TekApp(plan_path=plan, resume=run_id, search_dirs=[tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None and app.screen.table.row_count == 2)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.table.select("b")
        await until(pilot, lambda: screen.selected == "b")
        await pilot.press("e")
        form = app.screen
        form.field("command").value = f"test -f {tmp_path / 'flag'} && echo edited"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("w", "s")
        await until(pilot, lambda: screen.state is not None and screen.state.run_id == run_id
                    and screen.state.tasks["b"].state is TaskState.SUCCEEDED, limit=20)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, limit=20)
    _journal_after(run_id, count)  # same run, resumed once; `a` did not run again


def _wait_for_line(path: Path, line: str) -> None:
    """Poll ``path`` until it holds ``line`` (at most 30 s)."""
    import time

    deadline = time.monotonic() + 30
    while not path.exists() or line not in path.read_text().splitlines():
        assert time.monotonic() < deadline, f"no {line!r} in {path}"
        time.sleep(0.05)


def _killed_mid_task(tmp_path: Path) -> tuple[Path, Path]:
    """A `tek run` SIGKILLed while its task runs (the task lives on); the plan and its events."""
    import os
    import signal
    import subprocess
    import sys

    events = tmp_path / "events"
    plan = tmp_path / "p.csv"
    plan.write_text(
        "id,command\n"
        f"t,\"trap 'echo TERM $TEK_ATTEMPT >> {events}; exit 143' TERM; "
        f"echo start $TEK_ATTEMPT >> {events}; sleep 30 & wait\"\n")
    proc = subprocess.Popen([sys.executable, "-m", "tek_tui", "run", "--plain", str(plan)],
                            env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for_line(events, "start 1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return plan, events


async def test_a_console_resume_stops_the_crashed_runs_leftovers_before_its_tasks_start(
    tmp_path: Path,
) -> None:
    """The orphan of the killed run is stopped at `s`, before the rerun of its task starts
    (it was stopped at the first journal write, after the rerun had started beside it)."""
    import anyio
    import anyio.to_thread

    from core.events import CancelRun
    from core.plan_io import read_plan
    from tek_tui.console_runs import resumed_run

    plan, events = await anyio.to_thread.run_sync(_killed_mid_task, tmp_path)
    built = await resumed_run(read_plan(plan), RunOptions(), "last")
    run = built.run
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.run)
            run.request_start()
            await anyio.to_thread.run_sync(_wait_for_line, events, "start 2")
            await run.client().control(CancelRun())
    assert built.journal is not None
    built.journal.close()
    lines = events.read_text().splitlines()
    assert lines.index("TERM 1") < lines.index("start 2"), lines
