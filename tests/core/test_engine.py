"""Engine behaviour: order, resources, environment, retries, timeouts, policies."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

import core.engine as engine
from core.engine import Run, RunOptions, create_run
from core.errors import CycleError, PlanError
from core.events import (
    AdmissionChanged,
    Event,
    PoolChanged,
    RunFinished,
    RunStarted,
    RunStatus,
    TaskChanged,
    TaskState,
)
from core.plan import Plan, Task
from core.plan_io import read_plan
from tests.core.engine_helpers import (
    EventLog,
    new_probe,
    noop,
    plan_of,
    probe,
    run_collect,
    run_plan,
    shell,
)

OPTS = RunOptions(jobs=4, memory_floor_mb=0)


async def test_dependency_order_summary_and_events(tmp_path: Path) -> None:
    out = tmp_path / "order.txt"
    tasks = [
        shell("a", f"echo a >> {out}"),
        shell("b", f"echo b >> {out}", deps=("a",)),
        shell("c", f"echo c >> {out}", deps=("b",)),
        shell("d", f"echo d >> {out}", deps=("a",)),
    ]
    summary, events = await run_plan(tasks)
    lines = out.read_text().split()
    assert lines[0] == "a" and lines.index("b") < lines.index("c") and sorted(lines) == list("abcd")
    assert summary.status is RunStatus.SUCCEEDED
    assert summary.counts["succeeded"] == 4 and sum(summary.counts.values()) == 4
    assert all(r.attempts == 1 and r.exit_code == 0 for r in summary.tasks.values())
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].status is RunStatus.SUCCEEDED
    js = summary.to_json()
    assert set(js) >= {"run_id", "status", "counts", "wall_s", "tasks"}
    assert set(js["tasks"]["a"]) >= {"state", "attempts", "exit_code", "duration_s"}


async def test_priority_then_longest_path_then_plan_order() -> None:
    tasks = [
        probe("x"), probe("z"),
        probe("c1"), probe("c2", deps=("c1",)), probe("c3", deps=("c2",)),
        probe("y", priority=5),
    ]  # fmt: skip
    opts = RunOptions(jobs=1, memory_floor_mb=0)
    p = new_probe(opts, 1)
    summary, _ = await run_plan(tasks, opts)
    assert summary.status is RunStatus.SUCCEEDED
    assert [tid for tid, _ in p.starts] == ["y", "c1", "c2", "x", "z", "c3"]
    assert not p.violations


async def test_priority_holds_across_pools_when_a_resource_is_the_limit() -> None:
    """One CPU, two pools with free slots: the pool listed first must not go first."""
    tasks = [
        probe("low", pool="p1"), probe("high", pool="p2", priority=5),
        probe("mid", pool="p1", priority=2), probe("child", deps=("low",), pool="p2", priority=10),
    ]  # fmt: skip
    opts = RunOptions(jobs=2, cpus=1, memory_floor_mb=0)
    p = new_probe(opts, 2)
    summary, _ = await run_plan(tasks, opts)
    assert summary.status is RunStatus.SUCCEEDED
    assert [tid for tid, _ in p.starts] == ["high", "mid", "low", "child"]
    assert not p.violations


async def test_a_pool_with_free_slots_says_which_resource_its_tasks_wait_for() -> None:
    """Pool of 4, tasks of 2 CPUs, 2 CPUs: growing the pool would not help, and it says why."""
    opts = RunOptions(jobs=4, cpus=2, memory_floor_mb=0)
    new_probe(opts, 4)
    tasks = [probe(f"t{i}", "0.4", cpus=2) for i in range(3)]

    async def during(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(
            isinstance(e, PoolChanged) and e.waiting_for for e in events))
        assert [p.waiting_for for p in run.snapshot().pools] == ["cpus (2 of 2 in use)"]

    summary, events = await run_collect(create_run(plan_of(*tasks), opts), during)
    waits = [e.waiting_for for e in events if isinstance(e, PoolChanged)]
    assert "cpus (2 of 2 in use)" in waits and waits[-1] == ""  # cleared once nothing waits
    assert summary.status is RunStatus.SUCCEEDED


async def test_resources_and_gpu_indices(tmp_path: Path) -> None:
    opts = RunOptions(jobs=8, cpus=3, gpus=2, memory_mb=1000, memory_floor_mb=0)
    p = new_probe(opts, 8)
    tasks = [probe(f"g{i}", "0.02", gpus=1, cpus=0.5) for i in range(6)]
    tasks += [probe(f"m{i}", "0.02", memory_mb=400) for i in range(5)]
    tasks += [probe("big", "", cpus=16)]  # clamped to the whole capacity: runs alone
    tasks += [shell("env", f"echo $CUDA_VISIBLE_DEVICES > {tmp_path / 'cvd'}", gpus=2)]
    summary, _ = await run_plan(tasks, opts)
    assert not p.violations
    assert summary.status is RunStatus.SUCCEEDED
    assert (tmp_path / "cvd").read_text().strip() == "0,1"


def test_a_task_needing_more_than_the_capacity_is_refused_before_the_run(tmp_path: Path) -> None:
    """It could never start: refused up front, naming the row, unless it already succeeded."""
    csv = tmp_path / "plan.csv"
    csv.write_text("id,agent,gpus,memory_mb\nok,noop,0,0\nnogpu,noop,3,0\nnomem,noop,0,5000\n")
    plan = read_plan(csv)
    opts = RunOptions(gpus=2, memory_mb=1000)
    with pytest.raises(PlanError) as err:
        create_run(plan, opts)
    assert err.value.problems == [
        f"{csv}:3: gpus: task nogpu needs 3 GPUs; capacity is 2 (--gpus), so it could never start",
        f"{csv}:4: memory_mb: task nomem needs 5000 MiB memory; capacity is 1000 MiB "
        "(--memory-mb), so it could never start",
    ]
    create_run(plan, opts, completed={"nogpu", "nomem"})  # resumed: nothing left to start


async def test_attempt_environment_cwd_and_log(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    task = shell(
        "t",
        "echo $TEK_RUN_ID $TEK_TASK_ID $TEK_ATTEMPT $FOO; pwd; echo oops >&2",
        env=(("FOO", "bar baz"),),
        cwd="sub",
    )
    run = create_run(Plan((task,), path=tmp_path / "plan.csv"), OPTS, run_id="r1")
    summary, events = await run_collect(run)
    assert summary.status is RunStatus.SUCCEEDED
    log = Path(os.environ["TEK_HOME"]) / "runs" / "r1" / "t.1.log"
    assert log.read_text().splitlines() == ["r1 t 1 bar baz", str(tmp_path / "sub"), "oops"]


async def test_a_running_attempt_announces_its_pid(tmp_path: Path) -> None:
    go = tmp_path / "go"
    task = Task("t", command=f"while [ ! -e {go} ]; do sleep 0.01; done")
    run = create_run(Plan((task,)), OPTS)

    async def release_when_pid_seen(run: engine.Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(isinstance(e, TaskChanged) and e.pid for e in events))
        (ev,) = [e for e in events if isinstance(e, TaskChanged) and e.pid]
        assert ev.state is TaskState.RUNNING and ev.attempt == 1
        assert os.getpgid(ev.pid) == ev.pid  # the shell leads its own group
        go.touch()

    summary, events = await run_collect(run, release_when_pid_seen)
    assert summary.tasks["t"].state is TaskState.SUCCEEDED


async def test_an_attempt_that_ends_within_a_tick_sends_no_pid_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "TICK_S", 600.0)  # no tick comes during this run
    summary, events = await run_plan([Task("t", command="true")], OPTS)
    assert summary.tasks["t"].state is TaskState.SUCCEEDED
    assert not [e for e in events if isinstance(e, TaskChanged) and e.pid is not None]


async def test_retries_with_exponential_backoff_bounds() -> None:
    opts = OPTS
    p = new_probe(opts, 4)
    task = probe("flaky", "0:2", retries=2, retry_backoff_s=0.1)
    summary, events = await run_plan([task], opts)
    assert summary.tasks["flaky"].state is TaskState.SUCCEEDED
    assert summary.tasks["flaky"].attempts == 3
    gap1, gap2 = p.times[1] - p.times[0], p.times[2] - p.times[1]
    assert 0.08 <= gap1 <= 1.0  # 0.1 s x jitter [0.8, 1.2], plus scheduling on a busy box
    assert 0.16 <= gap2 <= 1.5  # doubled
    retrying = [e for e in events if isinstance(e, TaskChanged) and e.state is TaskState.RETRYING]
    assert retrying and retrying[0].reason == "probe failure"


async def test_retries_exhausted_fail() -> None:
    new_probe(OPTS, 4)
    summary, _ = await run_plan([probe("bad", "0:5", retries=1, retry_backoff_s=0.01)], OPTS)
    res = summary.tasks["bad"]
    assert (res.state, res.attempts, res.exit_code) == (TaskState.FAILED, 2, 1)
    assert summary.status is RunStatus.FAILED


async def test_more_than_a_thousand_retries_end_the_task() -> None:
    # The 1025th backoff (2 ** 1024 x the first) overflowed a float and the run hung.
    new_probe(OPTS, 4)
    task = probe("stubborn", "0:2000", retries=1100, retry_backoff_s=0.0)
    with anyio.fail_after(60):
        summary, _ = await run_plan([task], OPTS)
    res = summary.tasks["stubborn"]
    assert (res.state, res.attempts) == (TaskState.FAILED, 1101)


async def test_timeout() -> None:
    t0 = time.monotonic()
    summary, _ = await run_plan([noop("slow", "30", timeout_s=0.2)])
    assert time.monotonic() - t0 < 5
    assert summary.tasks["slow"].state is TaskState.FAILED
    assert summary.tasks["slow"].reason == "timed out after 0.2s"


async def test_keep_going_skips_downstream_only() -> None:
    new_probe(OPTS, 4)
    tasks = [probe("a", "0:9"), probe("b", deps=("a",)), probe("c", deps=("b",)),
             probe("other", "0.1")]
    summary, _ = await run_plan(tasks, OPTS)
    st = {k: v.state for k, v in summary.tasks.items()}
    assert st == {"a": TaskState.FAILED, "b": TaskState.SKIPPED, "c": TaskState.SKIPPED,
                  "other": TaskState.SUCCEEDED}
    assert summary.tasks["c"].reason == "upstream b failed" or "upstream a" in summary.tasks["c"].reason
    assert summary.status is RunStatus.FAILED


async def test_fail_fast_cancels_the_rest() -> None:
    opts = RunOptions(jobs=4, fail_fast=True, memory_floor_mb=0)
    new_probe(opts, 4)
    tasks = [probe("a", "0.05:9"), probe("long", "30"), probe("after", deps=("long",))]
    t0 = time.monotonic()
    summary, _ = await run_plan(tasks, opts)
    assert time.monotonic() - t0 < 5
    st = {k: v.state for k, v in summary.tasks.items()}
    assert st == {"a": TaskState.FAILED, "long": TaskState.CANCELLED,
                  "after": TaskState.CANCELLED}
    assert "fail-fast" in summary.tasks["long"].reason
    assert summary.status is RunStatus.FAILED


async def test_completed_tasks_are_not_run_and_attempts_continue() -> None:
    p = new_probe(OPTS, 4)
    tasks = [probe("a"), probe("b", deps=("a",))]
    summary, events = await run_plan(tasks, OPTS, completed={"a"}, attempts_so_far={"b": 2})
    assert [s for s in p.starts] == [("b", 3)]
    assert summary.tasks["a"].state is TaskState.SUCCEEDED
    assert not any(isinstance(e, TaskChanged) and e.task_id == "a" for e in events)


async def test_recorder_sees_each_batch_before_subscribers() -> None:
    recorded: list[Event] = []

    class Rec:
        async def record(self, events: Sequence[Event]) -> None:
            await anyio.sleep(0.001)  # a slow disk must not reorder anything
            recorded.extend(events)

    seen_before: list[bool] = []
    run = create_run(plan_of(noop("a"), noop("b", "0.01", deps=("a",))), OPTS, recorder=Rec())

    async def check(run: object, events: EventLog) -> None:
        stream = run.client().events()  # type: ignore[attr-defined]
        async for ev in stream:
            seen_before.append(any(ev is r for r in recorded))

    summary, events = await run_collect(run, check)
    assert summary.status is RunStatus.SUCCEEDED
    assert seen_before and all(seen_before)
    kinds = [type(e).__name__ for e in recorded]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"


async def test_memory_floor_pauses_admission(monkeypatch: pytest.MonkeyPatch) -> None:
    avail = {"mb": 100}
    monkeypatch.setattr(engine, "available_memory_mb", lambda: avail["mb"])
    monkeypatch.setattr(engine, "TICK_S", 0.01)
    opts = RunOptions(jobs=2, memory_floor_mb=512, wait_for_start=True)
    run = create_run(plan_of(noop("a", "0.01"), noop("b")), opts)

    async def drive(run: engine.Run, events: EventLog) -> None:
        from core.events import Start

        # Low memory before start: the first tick pauses admission...
        await run.control(Start())
        await events.wait_for(lambda: any(isinstance(e, AdmissionChanged) and e.paused for e in events))
        snap = run.snapshot()
        assert snap.admission_paused and "below floor 512 MiB" in snap.admission_reason
        avail["mb"] = 4096
        await events.wait_for(lambda: any(isinstance(e, AdmissionChanged) and not e.paused for e in events))

    summary, events = await run_collect(run, drive)
    assert summary.status is RunStatus.SUCCEEDED
    adm = [e for e in events if isinstance(e, AdmissionChanged)]
    assert adm[0].paused and "available memory 100 MiB below floor 512 MiB" == adm[0].reason


async def test_pool_never_runs_more_than_its_size() -> None:
    opts = RunOptions(jobs=8, pool_sizes={"narrow": 2}, memory_floor_mb=0)
    p = new_probe(opts, 8)
    p.pool_sizes = {"narrow": 2, "probe": 8}
    tasks = [probe(f"n{i}", "0.01", pool="narrow") for i in range(12)]
    tasks += [probe(f"w{i}", "0.01") for i in range(12)]
    summary, events = await run_plan(tasks, opts)
    assert summary.status is RunStatus.SUCCEEDED
    assert not p.violations and p.max_busy["narrow"] == 2
    pools = [e for e in events if isinstance(e, PoolChanged) and e.pool == "narrow"]
    assert pools and all(e.busy <= e.size for e in pools)
    assert pools[-1].finished == 12


def test_bad_plans_are_rejected_before_running() -> None:
    with pytest.raises(PlanError, match="unknown agent 'nope'"):
        create_run(plan_of(Task("a", agent="nope")))
    with pytest.raises(PlanError, match="dependency 'zz'"):
        create_run(plan_of(noop("a", deps=("zz",))))
    with pytest.raises(CycleError):
        create_run(plan_of(noop("a", deps=("b",)), noop("b", deps=("a",))))
    with pytest.raises(PlanError, match="no task uses this pool"):
        create_run(plan_of(noop("a")), RunOptions(pool_sizes={"gpu": 1}))


async def test_cancelling_the_caller_ends_everything() -> None:
    run = create_run(plan_of(noop("a", "30"), noop("b", deps=("a",))), OPTS)
    with anyio.move_on_after(0.2):
        await run.run()
    snap = run.snapshot()
    assert snap.status is RunStatus.CANCELLED
    assert {t.state for t in snap.tasks} == {TaskState.CANCELLED}


async def test_recorder_failure_stops_the_run_and_is_raised() -> None:
    from core.errors import StoreError

    class Broken:
        calls = 0

        async def record(self, events: Sequence[Event]) -> None:
            Broken.calls += 1
            if Broken.calls == 2:
                raise StoreError("disk full")

    run = create_run(plan_of(noop("a", "0.05"), noop("b", "30"), noop("c", deps=("b",))),
                     OPTS, recorder=Broken())
    with anyio.fail_after(10), pytest.raises(StoreError, match="disk full"):
        await run.run()
    states = {t.id: (t.state, t.reason) for t in run.snapshot().tasks}
    assert states["a"][0] is TaskState.SUCCEEDED
    assert states["b"] == (TaskState.CANCELLED, "journal write failed: disk full")
    assert states["c"] == (TaskState.CANCELLED, "journal write failed: disk full")


async def test_gpu_capacity_comes_from_nvml_and_is_zero_without_a_driver() -> None:
    from core.gpu import gpu_count

    count = gpu_count()  # 0 here: no NVIDIA driver (a normal case, never an error)
    tasks = [noop("g", gpus=1), noop("cpu")]
    if count == 0:
        with pytest.raises(PlanError, match="task g needs 1 GPU; capacity is 0"):
            await run_plan(tasks, RunOptions(memory_floor_mb=0))
    else:
        summary, _ = await run_plan(tasks, RunOptions(memory_floor_mb=0))
        assert summary.tasks["g"].state is TaskState.SUCCEEDED
