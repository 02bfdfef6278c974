"""A sub-plan's tasks in the parent's stream and log: ``TasksAdded``, every sub-task
event, each failed sub-task named (``core/agents/plan.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from core.engine import RunOptions, create_run
from core.events import (
    PROTOCOL_VERSION,
    Progress,
    TaskChanged,
    TaskInfo,
    TasksAdded,
    TaskState,
    from_json,
    to_json,
)
from core.plan_io import read_plan
from core.run_socket import SocketClient, serving, socket_path
from tests.core.engine_helpers import run_collect

OPTS = RunOptions(jobs=4, memory_floor_mb=0, grace_s=0.3)


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def failing_parent(tmp_path: Path) -> Path:
    """The testers' plan: ``build`` runs sub/child.csv, whose ``c2`` fails."""
    write(tmp_path / "sub" / "child.csv", "id,command,deps", ["c1,echo c1,", "c2,false,c1",
                                                             "c3,echo c3,c2"])
    return write(tmp_path / "plan.csv", "id,agent,command,deps",
                 ["pre,shell,echo pre,", "build,plan,sub/child.csv,pre",
                  "post,shell,echo post,build"])


async def test_a_failed_sub_plan_names_the_sub_task_that_failed_in_its_reason_and_log(
    tmp_path: Path,
) -> None:
    run = create_run(read_plan(failing_parent(tmp_path)), OPTS, run_id="r5")
    summary, _ = await run_collect(run)
    build = summary.tasks["build"]
    assert build.state is TaskState.FAILED
    assert build.reason == "sub-plan failed: c2 (exit code 1); 1 succeeded, 1 failed, 1 skipped"
    log = (Path(os.environ["TEK_HOME"]) / "runs" / "r5" / "build.1.log").read_text()
    assert log.splitlines() == [
        "[c1] c1",
        "[tek] c2 failed: exit code 1",
        "[tek] c3 skipped: upstream c2 failed",
    ]


async def test_a_sub_task_s_own_log_is_where_its_parent_run_looks_for_it(tmp_path: Path) -> None:
    """The console shows ``build/c1``'s log from ``run_log_path(run, "build/c1", n)``."""
    from core.paths import run_log_path

    run = create_run(read_plan(failing_parent(tmp_path)), OPTS, run_id="r6")
    await run_collect(run)
    assert run_log_path("r6", "build/c1", 1).read_text() == "c1\n"
    assert run_log_path("r6", "build/c2", 1).parent == run_log_path("r6", "build", 1).parent / "build"


async def test_a_sub_plan_announces_its_tasks_before_any_of_their_events(
    tmp_path: Path,
) -> None:
    run = create_run(read_plan(failing_parent(tmp_path)), OPTS)
    _, events = await run_collect(run)
    added = [e for e in events if isinstance(e, TasksAdded)]
    assert len(added) == 1
    (news,) = added
    assert (news.task_id, news.attempt) == ("build", 1)
    assert [(t.id, t.agent, t.pool, t.deps, t.state) for t in news.tasks] == [
        ("build/c1", "shell", "shell", (), TaskState.PENDING),
        ("build/c2", "shell", "shell", ("build/c1",), TaskState.PENDING),
        ("build/c3", "shell", "shell", ("build/c2",), TaskState.PENDING),
    ]
    first_sub = next(i for i, e in enumerate(events)
                     if isinstance(e, TaskChanged) and e.task_id.startswith("build/"))
    assert events.index(news) < first_sub
    # The sub-run's first events (its first task's start) are not lost: the
    # relay subscribes before the sub-run starts.
    sub_states = [(e.task_id, e.state) for e in events
                  if isinstance(e, TaskChanged) and e.task_id.startswith("build/")]
    assert ("build/c1", TaskState.RUNNING) in sub_states


async def test_a_sub_plan_of_a_sub_plan_is_announced_re_keyed_and_counted_once(
    tmp_path: Path,
) -> None:
    write(tmp_path / "inner.csv", "id,command,deps", ["x,echo x,", "y,echo y,x"])
    write(tmp_path / "middle.csv", "id,agent,command,deps",
          ["m1,shell,echo m1,", "lib,plan,inner.csv,m1"])
    parent = write(tmp_path / "top.csv", "id,agent,command,deps", ["app,plan,middle.csv,"])
    run = create_run(read_plan(parent), OPTS)
    summary, events = await run_collect(run)
    assert summary.tasks["app"].state is TaskState.SUCCEEDED
    added = {e.task_id: e for e in events if isinstance(e, TasksAdded)}
    assert set(added) == {"app", "app/lib"}
    assert [(t.id, t.deps) for t in added["app/lib"].tasks] == [
        ("app/lib/x", ()), ("app/lib/y", ("app/lib/x",))]
    ended = {e.task_id for e in events if isinstance(e, TaskChanged)
             and e.state is TaskState.SUCCEEDED}
    assert {"app/m1", "app/lib", "app/lib/x", "app/lib/y"} <= ended
    # app's progress counts its own two sub-tasks, not its sub-plan's as well
    done = [(e.values["done"], e.values["total"]) for e in events
            if isinstance(e, Progress) and e.task_id == "app"]
    assert done[-1] == (2, 2) and all(d <= t for d, t in done)


async def test_a_sub_plan_it_cannot_run_is_announced_with_no_tasks(tmp_path: Path) -> None:
    child = write(tmp_path / "child.csv", "id,command,deps", ["a,echo a,"])
    parent = write(tmp_path / "p.csv", "id,agent,command,deps", ["sp,plan,child.csv,"])
    plan = read_plan(parent)
    child.write_text("id,command,deps\na,echo a,nope\n")  # broken after the parent was read
    summary, events = await run_collect(create_run(plan, OPTS))
    assert summary.tasks["sp"].reason == "sub-plan child.csv is invalid"
    assert [e for e in events if isinstance(e, TasksAdded)] == [TasksAdded("sp", 1, ())]


def test_tasks_added_round_trips_through_json() -> None:
    event = TasksAdded("build", 2, (
        TaskInfo("build/c1", "c1", "shell", "shell", (), ("t",), "echo c1"),
        TaskInfo("build/c2", "c2", "ml", "gpu", ("build/c1",), progress={"loss": 0.5}),
    ))
    data = to_json(event)
    assert data["v"] == PROTOCOL_VERSION == 2
    assert from_json(data) == event


async def test_an_attached_console_gets_a_sub_plan_started_after_it_attached(
    tmp_path: Path,
) -> None:
    """Over the socket (``tek tui --attach``), TasksAdded arrives as TaskInfo objects."""
    write(tmp_path / "child.csv", "id,command,deps", ["c1,echo c1,", "c2,echo c2,c1"])
    parent = write(tmp_path / "p.csv", "id,agent,command,deps",
                   ["pre,shell,sleep 0.3,", "sp,plan,child.csv,pre"])
    run = create_run(read_plan(parent), OPTS)
    path = socket_path(run.run_id)
    seen: list[object] = []
    attached = anyio.Event()
    async with anyio.create_task_group() as tg, serving(run.client(), run.run_id):

        async def console() -> None:
            client = await SocketClient.connect(path)
            assert [t.id for t in client.snapshot().tasks] == ["pre", "sp"]
            attached.set()
            seen.extend([event async for event in client.events()])

        tg.start_soon(console)
        await attached.wait()  # attached before the run (and its sub-plan) starts
        await run.run()
    (added,) = [e for e in seen if isinstance(e, TasksAdded)]
    assert all(isinstance(t, TaskInfo) for t in added.tasks)
    assert [t.id for t in added.tasks] == ["sp/c1", "sp/c2"]
    final = {e.task_id: e.state for e in seen if isinstance(e, TaskChanged)}
    assert final["sp/c2"] is TaskState.SUCCEEDED
