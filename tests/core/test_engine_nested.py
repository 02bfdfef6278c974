"""The ``plan`` agent: a sub-plan runs as a nested run, shown as ``task/sub-task``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.engine import Run, RunOptions, create_run
from core.errors import PlanError
from core.events import CancelTask, OutputLines, Progress, RunStatus, TaskChanged, TaskState
from core.plan_io import read_plan
from tests.core.engine_helpers import EventLog, run_collect

OPTS = RunOptions(jobs=4, memory_floor_mb=0, grace_s=0.3)


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("id,agent,command,deps\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "child.csv", [
        "a,shell,echo hello from a,",
        "b,noop,,a",
        "c,shell,echo c,b",
    ])  # fmt: skip
    return write(tmp_path / "parent.csv", [
        "prep,shell,echo prep,",
        "sub,plan,sub/child.csv,prep",
        "after,noop,,sub",
    ])  # fmt: skip


async def test_sub_plan_runs_nested_and_shows_prefixed_tasks(parent: Path) -> None:
    run = create_run(read_plan(parent), OPTS, run_id="r1")
    seen: list[str] = []

    async def watch(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(
            isinstance(e, TaskChanged) and e.task_id == "sub/a" for e in events))
        seen.extend(t.id for t in run.snapshot().tasks)

    summary, events = await run_collect(run, watch)
    assert summary.status is RunStatus.SUCCEEDED
    assert [summary.tasks[t].state for t in ("prep", "sub", "after")] == [TaskState.SUCCEEDED] * 3
    assert {"sub/a", "sub/b", "sub/c"} <= set(seen)
    final = {e.task_id: e.state for e in events if isinstance(e, TaskChanged)}
    assert final["sub/c"] is TaskState.SUCCEEDED
    lines = [ln for e in events if isinstance(e, OutputLines) and e.task_id == "sub/a"
             for ln in e.lines]
    assert lines == ["hello from a"]
    progress = [e for e in events if isinstance(e, Progress) and e.task_id == "sub"]
    assert progress and progress[-1].values["done"] == 3 and progress[-1].fraction == 1.0
    home = Path(os.environ["TEK_HOME"]) / "runs" / "r1"
    assert "[a] hello from a" in (home / "sub.1.log").read_text()
    assert (home / "sub" / "a.1.log").read_text() == "hello from a\n"
    snap = {t.id: t for t in run.snapshot().tasks}
    assert snap["sub/b"].deps == ("sub/a",)


async def test_failing_sub_plan_fails_the_task(tmp_path: Path) -> None:
    write(tmp_path / "child.csv", ["x,shell,exit 4,", "y,noop,,x"])
    p = write(tmp_path / "parent.csv", ["sub,plan,child.csv,", "after,noop,,sub"])
    summary, _ = await run_collect(create_run(read_plan(p), OPTS))
    assert summary.tasks["sub"].state is TaskState.FAILED
    assert summary.tasks["sub"].reason == "sub-plan failed: x (exit code 4); 1 failed, 1 skipped"
    assert summary.tasks["after"].state is TaskState.SKIPPED


@pytest.mark.parametrize("command", ["sleep 100", "trap '' TERM; sleep 100"],
                         ids=["sleeps", "ignores-TERM"])
async def test_cancelling_the_plan_task_stops_the_sub_run(tmp_path: Path, command: str) -> None:
    # A sub-task that ignores SIGTERM keeps the sub-run stopping it (for the
    # grace) after the plan task is cancelled: its final events must still
    # reach the parent's stream, not leave ``sub/slow`` running there.
    write(tmp_path / "child.csv", [f"slow,shell,{command},"])
    p = write(tmp_path / "parent.csv", ["sub,plan,child.csv,"])
    run = create_run(read_plan(p), OPTS)

    async def cancel(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(
            isinstance(e, TaskChanged) and e.task_id == "sub/slow" and e.pid for e in events))
        await run.client().control(CancelTask("sub"))

    summary, events = await run_collect(run, cancel)
    assert summary.tasks["sub"].state is TaskState.CANCELLED
    (pid,) = {e.pid for e in events if isinstance(e, TaskChanged) and e.task_id == "sub/slow"
              and e.pid}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    last = [e.state for e in events if isinstance(e, TaskChanged) and e.task_id == "sub/slow"][-1]
    assert last.is_terminal, last


def test_sub_plans_are_validated_at_import(tmp_path: Path) -> None:
    write(tmp_path / "bad.csv", ["x,shell,,"])
    write(tmp_path / "loop.csv", ["again,plan,loop.csv,"])
    p = write(tmp_path / "parent.csv", [
        "missing,plan,nope.csv,", "bad,plan,bad.csv,", "loop,plan,loop.csv,", "empty,plan,,"])
    with pytest.raises(PlanError) as info:
        read_plan(p)
    text = str(info.value)
    assert "sub-plan nope.csv not found" in text
    assert "sub-plan bad.csv:" in text and "command" in text
    assert "sub-plan loop.csv includes itself" in text



async def test_a_sub_plan_pauses_with_its_parent_and_takes_controls_for_its_tasks(
    tmp_path: Path
) -> None:
    from core.events import Pause, Resume, SkipTask

    write(tmp_path / "chain.csv", ["k1,shell,sleep 0.3,", "k2,noop,,k1", "k3,noop,,k2"])
    plan = write(tmp_path / "p.csv", ["sp,plan,chain.csv,"])
    run = create_run(read_plan(plan), OPTS)

    def state(tid: str) -> TaskState:
        return next(t.state for t in run.snapshot().tasks if t.id == tid)

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(t.id == "sp/k1" and t.state is TaskState.RUNNING
                                          for t in run.snapshot().tasks))
        await run.client().control(Pause())
        await run.client().control(SkipTask("sp/k2"))  # a task of the sub-plan, by its path
        await events.wait_for(lambda: state("sp/k1") is TaskState.SUCCEEDED)
        assert state("sp/k3") in (TaskState.PENDING, TaskState.READY)  # paused: none starts below
        await run.client().control(Resume())

    summary, events = await run_collect(run, drive)
    assert summary.status is RunStatus.SUCCEEDED
    final = {e.task_id: (e.state, e.reason) for e in events if isinstance(e, TaskChanged)}
    assert final["sp/k2"] == (TaskState.SKIPPED, "skipped by user")
    assert final["sp/k3"][0] is TaskState.SUCCEEDED


async def test_a_sub_plan_follows_fail_fast_and_its_tasks_start_after_its_plan_task(
    tmp_path: Path, tek_home: Path
) -> None:
    from core.journal import create_journal
    from core.store import open_store

    write(tmp_path / "ff.csv", ["bad,shell,exit 5,", "slow,shell,sleep 30,"])
    plan = read_plan(write(tmp_path / "p.csv", ["pre,shell,true,", "sp,plan,ff.csv,pre"]))
    with open_store() as store:
        journal = create_journal(plan, store=store)
        run = create_run(plan, RunOptions(jobs=4, memory_floor_mb=0, grace_s=0.3,
                                          fail_fast=True),
                         run_id=journal.run_id, recorder=journal.recorder)
        journal.ready()
        summary, events = await run_collect(run)
    assert summary.tasks["sp"].state is TaskState.FAILED
    final = {e.task_id: e.state for e in events if isinstance(e, TaskChanged)}
    assert final["sp/slow"] is TaskState.CANCELLED  # stopped at once, not waited for
    order = [(e.task_id, e.state) for e in events if isinstance(e, TaskChanged)]
    first_sub = next(i for i, (tid, _) in enumerate(order) if tid.startswith("sp/"))
    assert order.index(("pre", TaskState.SUCCEEDED)) < first_sub
    # sp's first event: RUNNING, or its end when a slow reader got the two coalesced
    assert next(i for i, (tid, _) in enumerate(order) if tid == "sp") < first_sub
