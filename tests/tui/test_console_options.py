"""The console's runs take ``tek run``'s options: its flags, config's ``run_*`` keys,
and on a resume the run's recorded ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from core.plan_io import read_plan
from core.run_options import RunOptions
from core.store import open_store
from tek_tui.app import TekApp
from tek_tui.cli import build_parser
from tek_tui.commands.run import given_options, options_from_args
from tek_tui.screens.main import MainScreen
from tek_tui.screens.picker import PickerScreen
from tests.tui.fakes import until

GPU_PLAN = "id,command,gpus\ng,echo gpu $CUDA_VISIBLE_DEVICES,1\n"


def tui_args(*argv: str) -> tuple[RunOptions, set[str]]:
    args = build_parser().parse_args(["tui", *argv])
    return options_from_args(args), given_options(args)


def test_tek_tui_takes_tek_run_s_options() -> None:
    options, given = tui_args("p.csv", "--gpus", "1", "-j", "3", "--pool", "io=2", "--fail-fast",
                              "--grace", "0.5")
    assert (options.gpus, options.jobs, options.pool_sizes, options.fail_fast, options.grace_s) \
        == (1, 3, {"io": 2}, True, 0.5)
    assert given == {"gpus", "jobs", "pool_sizes", "fail_fast", "grace_s"}


def test_tek_tui_takes_config_s_run_keys(tek_home: Path) -> None:
    (tek_home / "config.toml").write_text("run_gpus = 1\nrun_jobs = 2\n")
    options, given = tui_args("p.csv")
    assert (options.gpus, options.jobs, given) == (1, 2, set())


@pytest.mark.parametrize("gpus", [0, 1])
async def test_a_plan_needing_a_gpu_opens_when_the_options_give_one(tmp_path: Path, gpus: int) -> None:
    plan = tmp_path / "gpu.csv"
    plan.write_text(GPU_PLAN)
    app = TekApp(plan_path=plan, search_dirs=[tmp_path], theme="tek-dark",
                 options=RunOptions(gpus=gpus))
    async with app.run_test(size=(80, 24)) as pilot:
        if gpus:
            await until(pilot, lambda: isinstance(app.screen, MainScreen), limit=20)
        else:  # refused, naming the flag that would fix it (tek tui has it now)
            await until(pilot, lambda: isinstance(app.screen, PickerScreen), limit=20)


async def test_a_console_resume_keeps_the_run_s_options_but_those_given(tmp_path: Path) -> None:
    from tek_tui.console_runs import resumed_run

    plan = tmp_path / "p.csv"
    plan.write_text("id,command\nbad,exit 3\nlater,true\n")
    argv = [sys.executable, "-m", "tek_tui.cli", "run", str(plan), "-j", "1", "--fail-fast",
            "--grace", "0.5"]
    await anyio.to_thread.run_sync(lambda: subprocess.run(argv, capture_output=True, timeout=60))
    built = await resumed_run(read_plan(plan), RunOptions(jobs=4), "last", given={"jobs"})
    options = built.run.options
    assert (options.fail_fast, options.grace_s, options.jobs) == (True, 0.5, 4)
    assert options.wait_for_start and options.stay_open  # as every console run
    assert built.journal is not None and built.journal.reopen is not None
    built.journal.reopen()  # what `s` does: the run is the resume's from then on
    built.journal.close()
    with open_store() as store:
        recorded = store.get_run(store.resolve_run("last")).options
    assert (recorded["fail_fast"], recorded["grace_s"], recorded["jobs"]) == (True, 0.5, 4)
    assert json.dumps(recorded)  # plain JSON, for the next resume
