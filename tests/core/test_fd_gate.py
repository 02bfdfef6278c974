"""Shell tasks over the open-file limit wait for a slot instead of failing."""

from __future__ import annotations

import asyncio
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.agents import shell_attempt
from core.agents.fd_gate import FdGate, capacity_for, is_shortage
from core.engine import RunOptions, create_run
from core.events import CancelRun, TaskState
from tests.core.engine_helpers import plan_of, run_collect, shell, state_of


def use_gate(monkeypatch: pytest.MonkeyPatch, capacity: int) -> FdGate:
    """A fresh gate for the shell agent, letting ``capacity`` tasks through."""
    gate = FdGate()
    gate.capacity = capacity
    monkeypatch.setattr(shell_attempt, "gate", gate)
    return gate


def most_at_once(marks: Path) -> int:
    """Most tasks between their ``s`` and ``e`` lines at one moment."""
    now = peak = 0
    for mark in marks.read_text().split():
        now += 1 if mark == "s" else -1
        peak = max(peak, now)
    return peak


def test_capacity_leaves_room_for_the_rest_of_tek() -> None:
    assert capacity_for(64) == 12  # 16 kept back, 4 a task
    assert capacity_for(1024) == 240  # 64 kept back
    assert capacity_for(4) == 1  # never 0: a task can always try


def test_only_shortages_are_worth_a_wait() -> None:
    assert is_shortage(OSError(errno.EMFILE, "Too many open files"))
    assert is_shortage(BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"))
    assert not is_shortage(FileNotFoundError(errno.ENOENT, "No such file"))
    assert not is_shortage(None)


def test_the_gate_holds_over_capacity_and_starts_the_oldest_when_one_ends() -> None:
    loop = asyncio.new_event_loop()
    try:
        gate = FdGate()
        gate.capacity = 2
        started: list[str] = []
        assert gate.admit(loop, lambda: started.append("a"))
        assert gate.admit(loop, lambda: started.append("b"))
        assert not gate.admit(loop, lambda: started.append("c"))
        assert not gate.admit(loop, lambda: started.append("d"))
        assert (gate.active, gate.held) == (2, 2)
        gate.leave()
        loop.run_until_complete(asyncio.sleep(0))
        assert started == ["c"] and (gate.active, gate.held) == (2, 1)
    finally:
        loop.close()


def test_a_failed_spawn_waits_only_while_another_task_may_free_descriptors() -> None:
    loop = asyncio.new_event_loop()
    try:
        gate = FdGate()
        gate.capacity = 10
        assert gate.admit(loop, lambda: None)
        assert not gate.retry_later(loop, lambda: None)  # alone: waiting frees nothing
        assert gate.admit(loop, lambda: None) and gate.admit(loop, lambda: None)
        again = lambda: None  # noqa: E731
        assert gate.retry_later(loop, again)
        assert (gate.active, gate.held, gate.capacity) == (2, 1, 2)  # learnt: 2 fit
        gate.drop(again)
        assert gate.held == 0
        gate.leave()
        gate.leave()
        assert (gate.active, gate.capacity) == (0, 0)  # idle: the limit is read again
    finally:
        loop.close()


async def test_shell_tasks_beyond_the_gate_wait_their_turn_and_all_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = use_gate(monkeypatch, 2)
    marks = tmp_path / "marks"
    tasks = [shell(f"t{i}", f"echo s >> {marks}; sleep 0.1; echo e >> {marks}") for i in range(8)]
    summary, _ = await run_collect(create_run(plan_of(*tasks), RunOptions(jobs=8, memory_floor_mb=0)))
    assert summary.counts["succeeded"] == 8
    assert most_at_once(marks) <= 2
    assert (gate.active, gate.held) == (0, 0)


async def test_a_task_cancelled_while_it_waits_never_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = use_gate(monkeypatch, 1)
    marker = tmp_path / "started"
    plan = plan_of(shell("long", "sleep 30"), shell("waits", f"touch {marker}"))
    run = create_run(plan, RunOptions(jobs=2, memory_floor_mb=0, grace_s=1))

    async def cancel_once_both_run(run, events) -> None:  # type: ignore[no-untyped-def]
        await events.wait_for(lambda: gate.held == 1 and state_of(run, "long") == "running")
        await run.client().control(CancelRun())

    summary, _ = await run_collect(run, cancel_once_both_run)
    assert summary.tasks["waits"].state is TaskState.CANCELLED
    assert not marker.exists()
    assert (gate.active, gate.held) == (0, 0)


def test_a_spawn_that_runs_out_of_descriptors_waits_for_another_task_s_end() -> None:
    """The gate thinks many fit, the limit says otherwise: no task fails."""
    script = """
import anyio, json, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
from core.agents import shell_attempt
from core.engine import RunOptions, create_run
from tests.core.engine_helpers import plan_of, shell
gate = shell_attempt.gate
gate.capacity = 1000
held, retry_later = [], gate.retry_later
gate.retry_later = lambda *a: held.append(gate.active) or retry_later(*a)
run = create_run(plan_of(*[shell(f"t{i}", "sleep 0.2") for i in range(40)]),
                 RunOptions(jobs=40, memory_floor_mb=0))
summary = anyio.run(run.run)
print(json.dumps({"counts": summary.counts, "held_at": held}))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).parents[2])
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {k: n for k, n in out["counts"].items() if n} == {"succeeded": 40}
    assert out["held_at"]  # spawns did fail for want of descriptors, and waited
