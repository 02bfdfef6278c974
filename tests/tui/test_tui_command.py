"""``tek tui``: option errors, plan problems in the console, the picker, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tek_tui.app import TekApp
from tek_tui.cli import main
from tek_tui.screens.main import MainScreen
from tek_tui.screens.picker import PickerScreen, find_plans
from tests.tui.fakes import until

REPO = Path(__file__).resolve().parents[2]


def test_unknown_theme_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", "--theme", "neon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tek: unknown theme 'neon' (known: ")
    assert "tek-dark" in err and "Traceback" not in err


def test_bad_jobs_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", "-j", "0"]) == 2
    assert "tek: -j 0: must be at least 1" in capsys.readouterr().err  # as tek run says it


async def test_plan_problems_show_in_the_console(tmp_path: Path) -> None:
    plan = tmp_path / "bad.csv"
    plan.write_text("id,agent,command,deps,colour\na,shell,echo,,red\nb,shell,echo,zz,\n")
    app = TekApp(plan_path=plan, search_dirs=[tmp_path])
    async with app.run_test(size=(100, 30)) as pilot:
        def problems() -> str:  # the box's text once the picker shows it
            if not isinstance(app.screen, PickerScreen):
                return ""
            box = app.screen.query("#plan-problems")
            if not box or not box.first().display:
                return ""
            return str(app.screen.query_one("#plan-problems-text").render())

        # (the box is visible before the picker's mount hides it, so wait for text)
        await until(pilot, lambda: "cannot run this plan" in problems())
        text = problems()
        assert f"{plan}:1: colour" in text
        assert f"{plan}:3: deps" in text


async def test_picker_lists_plans_and_runs_the_chosen_one(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("id,agent,command\na,noop,\nb,noop,\n")
    (tmp_path / "notes.txt").write_text("not a plan")
    assert find_plans([tmp_path, tmp_path / "missing"]) == [(tmp_path / "one.csv").resolve()]
    app = TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        runs = app.screen.query_one("#run-list")
        await until(pilot, lambda: runs.row_count == 1)
        assert "no journal yet" in str(runs.get_row_at(0)[0])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None)
        screen = app.screen
        assert screen.table.row_count == 2
        await pilot.press("s")
        await until(pilot, lambda: screen.state.counts.get("succeeded", 0) == 2, limit=20)
        await pilot.press("q")  # every task ended: no question
        await until(pilot, lambda: not app.is_running, limit=20)


def test_console_never_imports_torch() -> None:
    code = (
        "import sys, tek_tui.app, tek_tui.commands.tui, core.engine, core.plan_io;"
        "from tek_tui.app import TekApp; TekApp();"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120, check=True)
    assert out.stdout.strip() == "False"


async def test_picker_lists_journaled_runs(tmp_path: Path) -> None:
    from core.journal import create_journal
    from core.plan_io import read_plan
    from core.store import open_store

    plan_path = tmp_path / "p.csv"
    plan_path.write_text("id,agent,command\na,noop,\n")
    with open_store() as store:
        journal = create_journal(read_plan(plan_path), store=store)
    app = TekApp(search_dirs=[tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, PickerScreen))
        runs = app.screen.query_one("#run-list")
        await until(pilot, lambda: runs.row_count == 1)
        first = [str(cell) for cell in runs.get_row_at(0)]
        assert first[0].startswith(journal.run_id) and first[2] == "1"
        assert first[4].endswith("p.csv")
