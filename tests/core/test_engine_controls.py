"""Each run control, as a protocol message through the client, and its errors."""

from __future__ import annotations

import anyio
import pytest

from core.engine import Run, RunOptions, create_run
from core.errors import ControlError
from core.events import (
    AdmissionChanged,
    CancelRun,
    CancelTask,
    Pause,
    ResizePool,
    Resume,
    RetryTask,
    RunFinished,
    RunStarted,
    RunStatus,
    SkipTask,
    Start,
    TaskChanged,
    TaskState,
    from_json,
    to_json,
)
from tests.core.engine_helpers import EventLog, new_probe, noop, plan_of, probe, run_collect, shell

OPTS = RunOptions(jobs=4, memory_floor_mb=0)


def is_state(events: EventLog, tid: str, state: TaskState) -> bool:
    return any(isinstance(e, TaskChanged) and e.task_id == tid and e.state is state for e in events)


def running(run: Run, tid: str) -> bool:
    return any(t.id == tid and t.state is TaskState.RUNNING for t in run.snapshot().tasks)


async def send(run: Run, control: object) -> None:
    """Send a control the way a remote front end would: through JSON."""
    await run.client().control(from_json(to_json(control)))  # type: ignore[arg-type]


async def test_start_pause_resume() -> None:
    p = new_probe(OPTS, 4)
    run = create_run(plan_of(probe("a"), probe("b", deps=("a",))),
                     RunOptions(jobs=2, memory_floor_mb=0, wait_for_start=True))

    async def drive(run: Run, events: EventLog) -> None:
        assert run.snapshot().status is RunStatus.PENDING
        await send(run, Pause())
        await send(run, Start())
        await events.wait_for(lambda: any(isinstance(e, AdmissionChanged) for e in events))
        snap = run.snapshot()
        assert snap.status is RunStatus.PAUSED and snap.admission_reason == "paused by user"
        assert p.starts == []  # nothing dispatched while paused
        with pytest.raises(ControlError, match="already started"):
            await send(run, Start())
        await send(run, Resume())

    summary, events = await run_collect(run, drive)
    assert summary.status is RunStatus.SUCCEEDED and len(p.starts) == 2
    adm = [e for e in events if isinstance(e, AdmissionChanged)]
    assert [a.paused for a in adm] == [True, False]


async def test_a_run_cancelled_before_its_start_never_started() -> None:
    """Left in the console before `s`: every task ends cancelled, no RunStarted, no start time.

    (The journal drops such a run on close: history lists runs that ran.)
    """
    p = new_probe(OPTS, 4)
    run = create_run(plan_of(probe("a"), probe("b", deps=("a",))),
                     RunOptions(jobs=2, memory_floor_mb=0, wait_for_start=True))

    async def drive(run: Run, events: EventLog) -> None:
        await send(run, CancelRun())

    summary, events = await run_collect(run, drive)
    assert summary.status is RunStatus.CANCELLED and p.starts == []
    assert not [e for e in events if isinstance(e, RunStarted)]
    assert run.snapshot().started_ts is None
    assert {t.state for t in run.snapshot().tasks} == {TaskState.CANCELLED}


async def test_cancel_running_and_waiting_tasks() -> None:
    new_probe(OPTS, 4)
    tasks = [probe("long", "30"), probe("down", deps=("long",)),
             probe("gate", "30"), probe("waits", deps=("gate",)), probe("after", deps=("waits",))]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "long") and running(run, "gate"))
        await send(run, CancelTask("long"))
        await send(run, CancelTask("waits"))  # pending: never starts
        await events.wait_for(lambda: is_state(events, "long", TaskState.CANCELLED))
        await send(run, CancelTask("gate"))

    summary, _ = await run_collect(create_run(plan_of(*tasks), OPTS), drive)
    st = {k: (v.state, v.reason) for k, v in summary.tasks.items()}
    assert st["long"] == (TaskState.CANCELLED, "cancelled by user")
    assert st["down"] == (TaskState.SKIPPED, "upstream long cancelled")
    assert st["waits"] == (TaskState.CANCELLED, "cancelled by user")
    assert st["after"] == (TaskState.SKIPPED, "upstream waits cancelled")
    assert summary.tasks["waits"].attempts == 0


async def test_retry_failed_task_reenables_skipped_downstream() -> None:
    p = new_probe(OPTS, 4)
    tasks = [probe("a", "0:1"), probe("b", deps=("a",)), probe("c", deps=("a", "b")),
             probe("keepalive", "30")]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: is_state(events, "c", TaskState.SKIPPED))
        await send(run, RetryTask("a"))
        await events.wait_for(lambda: is_state(events, "c", TaskState.SUCCEEDED))
        await send(run, CancelTask("keepalive"))

    summary, _ = await run_collect(create_run(plan_of(*tasks), OPTS), drive)
    assert [summary.tasks[t].state for t in "abc"] == [TaskState.SUCCEEDED] * 3
    assert summary.tasks["a"].attempts == 2
    assert [s for s in p.starts if s[0] != "keepalive"] == [("a", 1), ("a", 2), ("b", 1), ("c", 1)]


async def test_a_retried_task_skipped_before_its_next_attempt_shows_no_exit_code() -> None:
    opts = RunOptions(jobs=1, memory_floor_mb=0, grace_s=1)
    tasks = [shell("a", "exit 3"), shell("busy", "sleep 30")]  # one slot: busy runs after a

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "busy"))
        await send(run, RetryTask("a"))  # ready again, waiting for the slot
        await send(run, SkipTask("a"))
        (a,) = [t for t in run.snapshot().tasks if t.id == "a"]
        assert (a.state, a.exit_code, a.reason) == (TaskState.SKIPPED, None, "skipped by user")
        await send(run, CancelTask("busy"))

    summary, _ = await run_collect(create_run(plan_of(*tasks), opts), drive)
    assert (summary.tasks["a"].state, summary.tasks["a"].exit_code) == (TaskState.SKIPPED, None)


async def test_a_retried_task_reads_pending_in_the_journal_until_it_runs_again() -> None:
    """READY is not journaled: a retry that cannot start yet left `tek show` saying cancelled."""
    from core.journal import create_journal
    from core.store import open_store

    plan = plan_of(shell("a", "exit 3"), shell("busy", "sleep 30"))  # one slot: busy after a
    with open_store() as store:
        journal = create_journal(plan, store=store)
        run = create_run(plan, RunOptions(jobs=1, memory_floor_mb=0, grace_s=1),
                         run_id=journal.run_id, recorder=journal.recorder)
        journal.ready()

        async def drive(run: Run, events: EventLog) -> None:
            await events.wait_for(lambda: running(run, "busy"))
            seen = len(events)
            await send(run, RetryTask("a"))
            await events.wait_for(lambda: any(isinstance(e, TaskChanged) and e.task_id == "a"
                                              for e in events[seen:]))  # recorded by now
            _, tasks, _ = store.read_run(journal.run_id)
            assert {t.task_id: t.state for t in tasks}["a"] == "pending"
            await send(run, CancelTask("busy"))

        await run_collect(run, drive)


async def test_stay_open_allows_retry_after_everything_ended() -> None:
    new_probe(OPTS, 4)
    opts = RunOptions(jobs=2, memory_floor_mb=0, stay_open=True)

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: is_state(events, "a", TaskState.FAILED))
        await send(run, RetryTask("a"))
        await events.wait_for(lambda: is_state(events, "a", TaskState.SUCCEEDED))
        await send(run, CancelRun())  # closes: every task ended

    summary, _ = await run_collect(create_run(plan_of(probe("a", "0:1")), opts), drive)
    assert summary.status is RunStatus.SUCCEEDED


async def test_a_run_kept_open_for_retries_ends_with_its_last_task() -> None:
    """A console left open after its run: the journal's end and wall time are the last task's."""
    new_probe(OPTS, 4)
    opts = RunOptions(jobs=2, memory_floor_mb=0, stay_open=True)

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: is_state(events, "a", TaskState.SUCCEEDED))
        await anyio.sleep(0.3)  # the console sits open a while
        await send(run, CancelRun())

    summary, events = await run_collect(create_run(plan_of(probe("a", "0.05")), opts), drive)
    done = next(e for e in events if isinstance(e, TaskChanged) and e.state is TaskState.SUCCEEDED)
    started = next(e for e in events if isinstance(e, RunStarted))
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert summary.status is RunStatus.SUCCEEDED
    assert finished.ts == done.ts and finished.wall_s == summary.wall_s == done.ts - started.ts


def _index(events: EventLog, tid: str, state: TaskState) -> int:
    return next(i for i, e in enumerate(events)
                if isinstance(e, TaskChanged) and e.task_id == tid and e.state is state)


async def test_skip_pending_task_lets_downstream_run_once_its_upstream_is_done() -> None:
    """Skipping the middle of a -> b -> c while a runs: c runs as if b succeeded, after a."""
    p = new_probe(OPTS, 4)
    tasks = [probe("a", "0.2"), probe("b", deps=("a",)), probe("c", deps=("b",))]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "a"))
        await send(run, SkipTask("b"))
        await events.wait_for(lambda: is_state(events, "b", TaskState.SKIPPED))
        assert not is_state(events, "c", TaskState.READY) and not running(run, "c")

    summary, events = await run_collect(create_run(plan_of(*tasks), OPTS), drive)
    assert summary.tasks["b"].state is TaskState.SKIPPED
    assert summary.tasks["b"].reason == "skipped by user"
    assert summary.tasks["c"].state is TaskState.SUCCEEDED
    assert [s[0] for s in p.starts] == ["a", "c"]
    assert _index(events, "a", TaskState.SUCCEEDED) < _index(events, "c", TaskState.RUNNING)
    assert summary.status is RunStatus.SUCCEEDED


async def test_a_skip_whose_upstream_fails_skips_its_downstream_and_a_retry_brings_it_back() -> None:
    p = new_probe(OPTS, 4)
    tasks = [probe("a", "0.2:1"), probe("b", deps=("a",)), probe("c", deps=("b",)),
             probe("keepalive", "30")]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "a"))
        await send(run, SkipTask("b"))
        await events.wait_for(lambda: is_state(events, "c", TaskState.SKIPPED))
        st = {t.id: (t.state, t.reason) for t in run.snapshot().tasks}
        assert st["c"] == (TaskState.SKIPPED, "upstream a failed")
        assert st["b"] == (TaskState.SKIPPED, "skipped by user")
        await send(run, RetryTask("a"))
        await events.wait_for(lambda: is_state(events, "c", TaskState.SUCCEEDED))
        await send(run, CancelTask("keepalive"))

    summary, events = await run_collect(create_run(plan_of(*tasks), OPTS), drive)
    assert [s for s in p.starts if s[0] != "keepalive"] == [("a", 1), ("a", 2), ("c", 1)]
    assert _index(events, "a", TaskState.SUCCEEDED) < _index(events, "c", TaskState.RUNNING)


async def test_cancel_run() -> None:
    new_probe(OPTS, 4)
    tasks = [probe("a", "30"), probe("b", "30"), probe("c", deps=("a",))]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "a") and running(run, "b"))
        await send(run, CancelRun())

    summary, _ = await run_collect(create_run(plan_of(*tasks), OPTS), drive)
    assert summary.status is RunStatus.CANCELLED
    assert {r.state for r in summary.tasks.values()} == {TaskState.CANCELLED}


async def test_resize_pool() -> None:
    opts = RunOptions(jobs=1, memory_floor_mb=0)
    p = new_probe(opts, 1)
    p.cpus = 1e9
    tasks = [probe(f"t{i}", "0.05", cpus=0) for i in range(8)]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "t0"))
        assert p.max_busy["probe"] <= 1
        await send(run, ResizePool("probe", 3))

    summary, _ = await run_collect(create_run(plan_of(*tasks), opts), drive)
    assert summary.status is RunStatus.SUCCEEDED
    assert p.max_busy["probe"] == 3


async def test_resize_to_zero_holds_dispatch() -> None:
    run = create_run(plan_of(noop("a", "0.01"), noop("b", "0.01", deps=("a",))),
                     RunOptions(jobs=1, memory_floor_mb=0))

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "a"))
        await send(run, ResizePool("noop", 0))
        await events.wait_for(lambda: is_state(events, "a", TaskState.SUCCEEDED))
        assert [t.state for t in run.snapshot().tasks][1] is TaskState.READY
        await send(run, ResizePool("noop", 1))

    summary, _ = await run_collect(run, drive)
    assert summary.status is RunStatus.SUCCEEDED


async def test_control_errors() -> None:
    new_probe(OPTS, 4)
    tasks = [probe("done"), probe("long", "30"), probe("later", deps=("long",))]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "long") and is_state(
            events, "done", TaskState.SUCCEEDED))
        for control, match in [
            (CancelTask("nope"), "unknown task 'nope'"),
            (RetryTask("nope"), "unknown task 'nope'"),
            (SkipTask("nope"), "unknown task 'nope'"),
            (ResizePool("nope", 2), "unknown pool 'nope'"),
            (ResizePool("probe", -1), "0 or more"),
            (RetryTask("done"), "task done has succeeded; only a failed or cancelled task"),
            (SkipTask("long"), "is running; cancel it instead"),
            (CancelTask("done"), "task done has succeeded already"),
            (Start(), "already started"),
        ]:
            with pytest.raises(ControlError, match=match):
                await send(run, control)
        await send(run, CancelRun())

    run = create_run(plan_of(*tasks), OPTS)
    await run_collect(run, drive)
    with pytest.raises(ControlError, match="has finished"):
        await send(run, Pause())


@pytest.mark.parametrize("retried", ["a1", "a2"])
async def test_a_partial_retry_upstream_of_a_held_skip_never_hangs_the_run(retried: str) -> None:
    """a1 -> b <- a2, b -> c; b skipped while both run; both fail; one is retried.

    c stays skipped while the other upstream of b is still failed (it used to
    come back pending, waiting for ever)."""
    new_probe(OPTS, 4)
    tasks = [probe("a1", "0.2:1"), probe("a2", "0.2:1"), probe("b", deps=("a1", "a2")),
             probe("c", deps=("b",)), probe("keepalive", "30")]

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: running(run, "a1"))
        await send(run, SkipTask("b"))
        await events.wait_for(lambda: is_state(events, "a1", TaskState.FAILED)
                              and is_state(events, "a2", TaskState.FAILED))
        await send(run, RetryTask(retried))
        await events.wait_for(lambda: is_state(events, retried, TaskState.SUCCEEDED))
        await send(run, CancelTask("keepalive"))  # the run can end: nothing else would start

    summary, _ = await run_collect(create_run(plan_of(*tasks), OPTS), drive)
    st = {tid: r.state for tid, r in summary.tasks.items()}
    assert st[retried] is TaskState.SUCCEEDED and st["c"] is TaskState.SKIPPED
    assert summary.status is RunStatus.FAILED


async def test_a_run_cancelled_before_its_start_has_no_negative_wall_time() -> None:
    new_probe(OPTS, 4)
    run = create_run(plan_of(probe("a"), probe("b", deps=("a",))),
                     RunOptions(jobs=2, memory_floor_mb=0, wait_for_start=True, stay_open=True))

    async def drive(run: Run, events: EventLog) -> None:
        await send(run, CancelRun())

    summary, _ = await run_collect(run, drive)
    assert summary.status is RunStatus.CANCELLED and summary.wall_s >= 0


async def test_a_run_with_nothing_to_do_cancelled_before_its_start_ends() -> None:
    # Every task already done (or none at all): a cancel before the start used
    # to "close" the run, which still waited for a start that never came.
    run = create_run(plan_of(), RunOptions(jobs=2, memory_floor_mb=0, wait_for_start=True,
                                           stay_open=True))

    async def drive(run: Run, events: EventLog) -> None:
        await send(run, CancelRun())

    with anyio.fail_after(10):
        summary, _ = await run_collect(run, drive)
    assert summary.status is RunStatus.CANCELLED


async def test_no_pool_waits_for_a_resource_while_dispatch_is_paused() -> None:
    opts = RunOptions(jobs=2, cpus=1, memory_floor_mb=0)
    new_probe(opts, 2)
    run = create_run(plan_of(probe("a", "0.3"), probe("b", "0.1")), opts)

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: run.snapshot().pools[0].waiting_for != "")
        await send(run, Pause())
        await events.wait_for(lambda: is_state(events, "a", TaskState.SUCCEEDED))
        await events.wait_for(lambda: run.snapshot().pools[0].waiting_for == "")
        await send(run, Resume())

    summary, _ = await run_collect(run, drive)
    assert summary.status is RunStatus.SUCCEEDED
