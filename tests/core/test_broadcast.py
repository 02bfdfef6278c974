"""Subscriptions: coalescing, bounded output with drop counts, stalled consumers."""

from __future__ import annotations

import anyio

from core.broadcast import Broadcaster
from core.engine import RunOptions, create_run
from core.events import (
    AdmissionChanged,
    Event,
    OutputDropped,
    OutputLines,
    PoolChanged,
    Progress,
    RunFinished,
    RunStatus,
    TaskChanged,
    TaskState,
    from_json,
    to_json,
)
from tests.core.engine_helpers import noop, plan_of, probe, run_collect

S = TaskState


def tc(tid: str, state: TaskState) -> TaskChanged:
    """A change of the task's first attempt (numbered 0 while it waits to start, as the engine does)."""
    return TaskChanged(tid, state, 0 if state in (S.PENDING, S.READY) else 1, 0.0)


async def drain(events: object) -> list[Event]:
    out: list[Event] = []
    with anyio.fail_after(5):
        async for ev in events:  # type: ignore[attr-defined]
            out.append(ev)
    return out


async def test_state_changes_coalesce_latest_wins_first_place_kept() -> None:
    b = Broadcaster()
    sub = b.subscribe()
    b.publish([tc("a", S.READY), tc("b", S.READY), tc("a", S.RUNNING)])
    b.publish([Progress("a", 1, 0.0, {"epoch": 1}), Progress("a", 1, 0.0, {"epoch": 2}),
               PoolChanged("p", 2, 1, 0, 0, 0.0), PoolChanged("p", 2, 2, 0, 0, 0.0),
               AdmissionChanged(True, "x", 0.0), AdmissionChanged(False, "", 0.0),
               tc("a", S.SUCCEEDED)])
    b.publish([RunFinished("r", RunStatus.SUCCEEDED, {}, 1.0, 0.0)])
    got = await drain(sub.__aiter__())
    assert [(type(e).__name__, getattr(e, "state", None)) for e in got] == [
        ("TaskChanged", S.SUCCEEDED),  # a: latest state, first place
        ("TaskChanged", S.READY),  # b
        ("Progress", None),
        ("PoolChanged", None),
        ("AdmissionChanged", None),
        ("AdmissionChanged", None),
        ("RunFinished", None),
    ]
    assert got[2].values == {"epoch": 2}  # type: ignore[union-attr]
    assert got[3].busy == 2  # type: ignore[union-attr]
    assert b.count == 0  # the finished iterator unsubscribed


async def test_each_attempt_of_a_task_keeps_its_own_end() -> None:
    """A slow reader of a task retried quickly still sees how each attempt ended."""
    b = Broadcaster()
    sub = b.subscribe()
    for n in (1, 2, 3):
        final = S.RETRYING if n < 3 else S.FAILED
        b.publish([TaskChanged("a", S.RUNNING, n, 0.0), TaskChanged("a", final, n, 0.0, 1)])
        if n < 3:  # the backoff's end: ready again, still numbered with the attempt that ended
            b.publish([TaskChanged("a", S.READY, n, 0.0)])
    b.publish([RunFinished("r", RunStatus.FAILED, {}, 1.0, 0.0)])
    got = await drain(sub.__aiter__())
    assert [(e.attempt, e.state) for e in got if isinstance(e, TaskChanged)] == [
        (1, S.RETRYING), (2, S.RETRYING), (3, S.FAILED)]


async def test_output_beyond_bound_is_dropped_and_counted() -> None:
    b = Broadcaster()
    sub = b.subscribe(max_lines=10)
    b.publish([OutputLines("a", 1, tuple(f"l{i}" for i in range(8)))])
    b.publish([OutputLines("a", 1, ("x", "y", "z")),
               OutputDropped("a", 1, 5), OutputLines("b", 2, ("b1", "b2"))])
    b.publish([RunFinished("r", RunStatus.SUCCEEDED, {}, 1.0, 0.0)])
    got = await drain(sub.__aiter__())
    assert [type(e).__name__ for e in got] == [
        "OutputLines", "OutputDropped", "OutputLines", "RunFinished"]
    assert got[1] == OutputDropped("a", 1, 3 + 5)
    assert got[2] == OutputLines("b", 2, ("b1", "b2"))
    assert sub.dropped_total == 8


def test_late_subscriber_gets_run_finished() -> None:
    b = Broadcaster()
    fin = RunFinished("r", RunStatus.FAILED, {"failed": 1}, 1.0, 0.0)
    b.publish([fin])
    got = anyio.run(drain, b.subscribe().__aiter__())
    assert got == [fin]


def test_every_event_round_trips_json() -> None:
    events: list[Event] = [
        tc("a", S.RUNNING), OutputDropped("a", 1, 3), Progress("a", 1, 1.0, {"loss": 0.5}, 0.5),
        PoolChanged("p", 1, 1, 0, 0, 1.0), RunFinished("r", RunStatus.CANCELLED, {"x": 1}, 1.0, 2.0),
    ]  # fmt: skip
    for ev in events:
        assert from_json(to_json(ev)) == ev


async def test_stalled_consumer_does_not_slow_a_10k_run() -> None:
    """A subscriber that never reads changes nothing the engine does; its backlog is bounded.

    The engine never awaits a subscriber, so a stalled one cannot slow the
    run: the run completes, with exactly the scheduler turns and published
    batches of a run nobody watches, and the stalled subscriber holds at most
    one pending entry per task (coalesced) plus the run's few others.
    """
    plan = plan_of(*(noop(f"t{i}", deps=(f"t{i - 1}",) if i % 10 else ()) for i in range(10_000)))
    opts = RunOptions(jobs=8, memory_floor_mb=0)

    async def batches(stall: bool) -> tuple[list[int], int]:
        run = create_run(plan, opts)
        stalled = run.client().events() if stall else None
        sizes: list[int] = []
        publish = run.broadcaster.publish

        def counting(batch: list[Event]) -> None:
            sizes.append(len(batch))
            publish(batch)

        run.broadcaster.publish = counting  # type: ignore[method-assign]
        with anyio.fail_after(60):
            summary = await run.run()
        assert summary.counts["succeeded"] == 10_000
        pending = run.broadcaster._subs[0].pending() if stalled is not None else 0
        return sizes, pending

    free, _ = await batches(stall=False)
    stalled, pending = await batches(stall=True)
    assert stalled == free
    assert 10_000 <= pending <= 10_000 + 100


async def test_reading_consumer_sees_every_final_state() -> None:
    plan = plan_of(*(probe(f"t{i}") for i in range(300)))
    summary, events = await run_collect(create_run(plan, RunOptions(jobs=8, memory_floor_mb=0)))
    final = {e.task_id: e.state for e in events if isinstance(e, TaskChanged)}
    assert final == {f"t{i}": S.SUCCEEDED for i in range(300)}
    assert isinstance(events[-1], RunFinished)
