"""The ``ml`` agent through the real engine: plan import checks, the sample pipeline, timeouts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import polars as pl
import pytest

from core.engine import RunOptions, RunSummary, create_run
from core.errors import PlanError
from core.events import Event, Progress, TaskChanged, TaskState
from core.ml import registry
from core.paths import runs_dir
from core.plan import Plan, Task
from core.plan_io import read_plan
from tests.conftest import REPO
from tests.core.ml_helpers import pid_gone

PIPELINE = REPO / "sample_plans" / "ml_pipeline.csv"


async def _run(plan: Plan, options: RunOptions) -> tuple[RunSummary, list[Event]]:
    run = create_run(plan, options)
    events: list[Event] = []
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            stream = run.client().events()

            async def collect() -> None:
                async for event in stream:
                    events.append(event)

            tg.start_soon(collect)
            summary = await run.run()
    return summary, events


def test_bad_ml_commands_fail_at_import_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "plan.csv"
    path.write_text(
        "id,agent,command\n"
        "ok,ml,train model=mlp data=moons\n"
        "b,ml,train model=mlp data=moons epochs=zero\n"
        "c,ml,fit x=1\n"
        'd,ml,"infer model=../up data=moons out=p.csv"\n'
    )
    with pytest.raises(PlanError) as info:
        read_plan(path)
    problems = info.value.problems
    assert problems[0] == f"{path}:3: command: epochs: expected a whole number (got 'zero')"
    assert problems[1].startswith(f"{path}:4: command: unknown op 'fit'")
    assert problems[2].startswith(f"{path}:5: command: model: model names are")


@pytest.mark.slow
async def test_sample_pipeline_runs_end_to_end() -> None:
    plan = read_plan(PIPELINE)
    started = time.monotonic()
    summary, events = await _run(plan, RunOptions(pool_sizes={"ml": 3}, cpus=3))
    assert summary.status.value == "succeeded", summary.to_json()
    assert time.monotonic() - started < 120
    # The three variants trained at the same time.
    spans: dict[str, list[float]] = {}
    for ev in events:
        if isinstance(ev, TaskChanged) and ev.task_id.startswith("train_"):
            if ev.state is TaskState.RUNNING:
                spans.setdefault(ev.task_id, [ev.ts])
            elif ev.state is TaskState.SUCCEEDED:
                spans[ev.task_id].append(ev.ts)
    assert len(spans) == 3 and max(s[0] for s in spans.values()) < min(s[1] for s in spans.values())
    epochs = [ev for ev in events if isinstance(ev, Progress) and ev.task_id == "train_mlp_wide"]
    assert epochs and {"epoch", "loss", "val_accuracy", "samples_per_s"} <= set(epochs[-1].values)
    assert epochs[-1].fraction == 1.0
    finished = {
        ev.task_id: ev
        for ev in events
        if isinstance(ev, TaskChanged) and ev.state is TaskState.SUCCEEDED
    }
    assert finished["eval_mlp"].metrics["eval_accuracy"] > 0.85
    # The best by test accuracy was chosen, with its lineage.
    best = registry.resolve("moons_best")
    scores = best.meta["selection"]["candidates"]
    assert best.meta["parent"] == max(scores, key=scores.get)
    assert best.meta["task_id"] == "select_best" and best.meta["run_id"] == summary.run_id
    artifacts = runs_dir() / summary.run_id
    predictions = pl.read_parquet(artifacts / "predictions.parquet")
    assert predictions.height == 2000 and "prediction" in predictions.columns
    assert (artifacts / "moons_best.onnx").stat().st_size > 0


async def test_timeout_kills_the_worker_and_fails_the_task(tmp_path: Path) -> None:
    task = Task(
        id="slow",
        agent="ml",
        command="train model=mlp data=moons n=2000 epochs=5000 save=slow",
        timeout_s=4,
    )
    plan = Plan((task,), path=tmp_path / "plan.csv")
    summary, events = await _run(plan, RunOptions())
    result = summary.tasks["slow"]
    assert result.state is TaskState.FAILED and "timed out" in result.reason
    pids = [ev.pid for ev in events if isinstance(ev, TaskChanged) and ev.pid]
    assert pids and pid_gone(pids[0]) and pids[0] != os.getpid()
    assert registry.versions("slow") == []


async def test_engine_process_never_imports_torch() -> None:
    code = (
        "import anyio, sys\n"
        "from core.engine import create_run, RunOptions\n"
        "from core.plan import Plan, Task\n"
        "t = Task(id='d', agent='ml', command='dataset kind=moons n=20 out=d.csv')\n"
        "s = anyio.run(create_run(Plan((t,)), RunOptions()).run)\n"
        "print(s.status.value, 'torch' in sys.modules)\n"
    )
    with anyio.fail_after(60):
        result = await anyio.run_process([sys.executable, "-c", code], cwd=os.environ["TEK_HOME"])
    assert result.stdout.decode().split() == ["succeeded", "False"]
