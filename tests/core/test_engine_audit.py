"""The engine under misbehaving tasks: findings of the failure audit, one test each.

Each test here failed before its fix: a background loop that kept printing
held the attempt open for ever, a process that left the task's group with
``setsid`` outlived the attempt, a log file that could not be written
crashed the run, a pool of size 0 left the run waiting without a word, and
a task whose ``cwd`` was missing got an empty log, a memory floor above the
machine's memory paused the run for ever, and low memory was announced
again on every tick as the figure moved.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import psutil
import pytest

from core import engine
from core.engine import Run, RunOptions, create_run
from core.errors import PlanError
from core.events import (
    AdmissionChanged,
    CancelRun,
    CancelTask,
    OutputLines,
    ResizePool,
    RunStatus,
    TaskState,
)
from tests.core.engine_helpers import EventLog, plan_of, run_collect, shell
from tests.core.test_shell_agent import log_of, survivors

OPTS = RunOptions(jobs=4, memory_floor_mb=0, grace_s=0.3)


def gone(pid: int) -> bool:
    """The process has exited (up to 2 s for a SIGKILL to land); zombies count as gone."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)
    return False


async def cancel_when_ready(run: Run, events: EventLog) -> None:
    """Cancel task ``t`` once it has printed ``ready`` (a ``run_collect`` watcher)."""
    await events.wait_for(lambda: any(
        isinstance(e, OutputLines) and "ready" in e.lines for e in events))
    await run.control(CancelTask("t"))


def escapee(tmp_path: Path, program: str = "sleep 100") -> tuple[str, Path]:
    """Shell text that starts a ``setsid`` process holding the output, and its pid file.

    The leader waits until the escapee has written its pid, so the escape
    has happened before anything else does.
    """
    pid_file = tmp_path / "escapee.pid"
    cmd = (f"setsid sh -c 'echo $$ > {pid_file}; exec {program}' & "
           f"while [ ! -s {pid_file} ]; do sleep 0.01; done; echo started")
    return cmd, pid_file


async def test_background_loop_that_keeps_printing_does_not_hold_the_attempt() -> None:
    # Before: the exit check ran only on a quiet pipe, so this ran for ever.
    cmd = "(while :; do echo bg; sleep 0.02; done) & echo leader done"
    run = create_run(plan_of(shell("t", cmd)), OPTS)
    with anyio.fail_after(10):
        summary, _ = await run_collect(run, keep_output=False)
    assert summary.tasks["t"].state is TaskState.SUCCEEDED
    text = log_of(run, "t").read_text()
    assert "leader done\n" in text  # the loop may print first
    assert "background processes kept the output open" in text
    assert survivors(run.run_id) == []


async def test_process_that_left_the_group_holding_output_is_killed(tmp_path: Path) -> None:
    cmd, pid_file = escapee(tmp_path)
    run = create_run(plan_of(shell("t", cmd)), OPTS)
    with anyio.fail_after(10):
        summary, _ = await run_collect(run)
    assert summary.tasks["t"].state is TaskState.SUCCEEDED
    assert gone(int(pid_file.read_text()))
    assert "left the task's process group" in log_of(run, "t").read_text()
    assert survivors(run.run_id) == []


@pytest.mark.parametrize("flooding", [False, True], ids=["quiet", "flooding"])
async def test_timeout_kills_a_process_that_left_the_group(tmp_path: Path, flooding: bool) -> None:
    # Flooding: the drain at the end of an attempt is bounded, so a writer
    # outside the group, not killed yet, must not keep the loop reading for ever.
    cmd, pid_file = escapee(tmp_path, "cat /dev/zero") if flooding else escapee(tmp_path)
    run = create_run(plan_of(shell("t", cmd + "; sleep 100", timeout_s=0.5)), OPTS)
    with anyio.fail_after(10):
        summary, _ = await run_collect(run, keep_output=not flooding)
    assert summary.tasks["t"].reason == "timed out after 0.5s"
    assert gone(int(pid_file.read_text()))
    assert survivors(run.run_id) == []


async def test_daemon_that_let_go_of_the_output_does_not_delay_the_attempt(
    tmp_path: Path,
) -> None:
    # Out of reach (documented), but it must not slow the attempt down either.
    pid_file = tmp_path / "daemon.pid"
    cmd = f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 100' >/dev/null 2>&1 &"
    cmd += f" while [ ! -s {pid_file} ]; do sleep 0.01; done"
    run = create_run(plan_of(shell("t", cmd)), OPTS)
    try:
        with anyio.fail_after(10):
            summary, _ = await run_collect(run)
        assert summary.tasks["t"].state is TaskState.SUCCEEDED
        assert summary.wall_s < 2
    finally:
        os.kill(int(pid_file.read_text()), 9)


def full_log(run: Run, tid: str) -> None:
    """Make the attempt's log file a link to /dev/full (every write: ENOSPC)."""
    path = log_of(run, tid)
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/full")


async def test_unwritable_log_fails_its_task_not_the_run() -> None:
    # Before: the flush of a short log raised out of the engine (traceback).
    run = create_run(plan_of(shell("t", "echo hi"), shell("u", "echo fine")), OPTS)
    full_log(run, "t")
    with anyio.fail_after(10):
        summary, _ = await run_collect(run)
    t = summary.tasks["t"]
    assert t.state is TaskState.FAILED and t.exit_code == 0
    assert "could not write log" in t.reason and "No space left on device" in t.reason
    assert summary.tasks["u"].state is TaskState.SUCCEEDED
    assert log_of(run, "u").read_text() == "fine\n"


async def test_unwritable_log_of_a_flood_fails_its_task_once() -> None:
    cmd = "head -c 3000000 /dev/zero | tr '\\0' 'a' | fold -w 100"
    run = create_run(plan_of(shell("t", cmd)), OPTS)
    full_log(run, "t")
    with anyio.fail_after(10):
        summary, _ = await run_collect(run, keep_output=False)
    assert summary.tasks["t"].reason.startswith("could not write log")
    assert summary.status is RunStatus.FAILED


async def test_pool_of_size_zero_says_why_the_run_waits() -> None:
    run = create_run(plan_of(shell("a", "true"), shell("z", "true", pool="held")),
                     RunOptions(jobs=2, memory_floor_mb=0, pool_sizes={"held": 0}))

    def notes(events: EventLog) -> list[AdmissionChanged]:
        return [e for e in events if isinstance(e, AdmissionChanged)]

    async def resize_when_stalled(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(e.paused for e in notes(events)))
        await run.client().control(ResizePool("held", 1))

    summary, events = await run_collect(run, resize_when_stalled)
    assert summary.status is RunStatus.SUCCEEDED
    paused, resumed = notes(events)[-2:]
    assert paused.paused and paused.reason == "waiting: pool held has size 0 (1 queued)"
    assert not resumed.paused


async def test_missing_cwd_reason_is_in_the_log(tmp_path: Path) -> None:
    run = create_run(plan_of(shell("t", "true", cwd=str(tmp_path / "nope"))), OPTS)
    summary, _ = await run_collect(run)
    reason = summary.tasks["t"].reason
    assert reason.startswith("could not start")
    assert log_of(run, "t").read_text() == f"[tek] {reason}\n"


def test_memory_floor_above_total_memory_is_bad_input() -> None:
    with pytest.raises(PlanError, match="--memory-floor-mb 99999999: not below"):
        create_run(plan_of(shell("t", "true")), RunOptions(memory_floor_mb=99_999_999))


async def test_low_memory_is_announced_once_while_the_figure_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    avail = iter(range(100, 0, -1))  # a little less each tick, always below the floor
    ticks = anyio.Event()

    def sample() -> int:
        mb = next(avail)
        if mb < 90:
            ticks.set()
        return mb

    monkeypatch.setattr(engine, "available_memory_mb", sample)
    monkeypatch.setattr(engine, "TICK_S", 0.001)
    run = create_run(plan_of(shell("t", "true")), RunOptions(jobs=1, memory_floor_mb=512))

    async def cancel_after_ticks(run: Run, events: EventLog) -> None:
        with anyio.fail_after(10):
            await ticks.wait()
        await run.control(CancelRun())

    summary, events = await run_collect(run, cancel_after_ticks)
    notes = [e for e in events if isinstance(e, AdmissionChanged)]
    assert [n.reason for n in notes] == [
        "available memory 100 MiB below floor 512 MiB", "run stopping"]


async def test_timed_out_task_whose_term_handler_exits_0_has_not_succeeded() -> None:
    # Before: the stop's own "exit 0" was taken for a success.
    cmd = "trap 'exit 0' TERM; sleep 100 & wait"
    run = create_run(plan_of(shell("t", cmd, timeout_s=1)), OPTS)
    with anyio.fail_after(10):
        summary, _ = await run_collect(run)
    t = summary.tasks["t"]
    assert (t.state, t.reason, t.exit_code) == (TaskState.FAILED, "timed out after 1s", 0)
    assert survivors(run.run_id) == []


async def test_gpu_indices_map_through_teks_own_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before: a job given GPUs 5,7 (SLURM sets CUDA_VISIBLE_DEVICES) ran its
    # tasks on physical GPUs 0 and 1, which belong to someone else.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    cmd = 'echo "[$CUDA_VISIBLE_DEVICES]"'
    run = create_run(plan_of(shell("both", cmd, gpus=2), shell("one", cmd, gpus=1),
                             shell("none", cmd)),
                     RunOptions(jobs=1, gpus=2, memory_floor_mb=0))
    with anyio.fail_after(10):
        summary, _ = await run_collect(run)
    assert summary.status is RunStatus.SUCCEEDED
    assert log_of(run, "both").read_text() == "[5,7]\n"
    assert log_of(run, "one").read_text() in ("[5]\n", "[7]\n")
    assert log_of(run, "none").read_text() == "[5,7]\n"  # inherited, as before


def test_gpu_ids_without_and_past_the_inherited_list() -> None:
    from core.attempt import gpu_ids

    assert gpu_ids(None, (0, 2)) == "0,2"
    assert gpu_ids("GPU-a, GPU-b", (1,)) == "GPU-b"
    assert gpu_ids("3", (0, 1)) == "3,1"


async def test_cancel_stops_processes_that_moved_to_another_group(tmp_path: Path) -> None:
    # `timeout` (coreutils) puts itself in a group of its own: killpg on the
    # task's group missed it and its child, which outlived the task.
    pid_file = tmp_path / "inner.pid"
    cmd = (f"timeout 100 sh -c 'echo $$ > {pid_file}; exec sleep 100' >/dev/null 2>&1 & "
           f"while [ ! -s {pid_file} ]; do sleep 0.01; done; echo ready; wait")
    run = create_run(plan_of(shell("t", cmd)), OPTS)
    summary, _ = await run_collect(run, cancel_when_ready)
    assert summary.tasks["t"].reason == "cancelled by user"
    assert gone(int(pid_file.read_text()))
    assert survivors(run.run_id) == []


def test_kill_all_reaches_processes_that_moved_to_another_group(tmp_path: Path) -> None:
    from core.process import kill_all, spawn

    pid_file = tmp_path / "inner.pid"
    cmd = f"timeout 100 sh -c 'echo $$ > {pid_file}; exec sleep 100' >/dev/null 2>&1; echo done"
    child = spawn(cmd, dict(os.environ), tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text().strip()):  # written by the child
            assert time.monotonic() < deadline
            time.sleep(0.01)
        kill_all()
        assert gone(int(pid_file.read_text()))
    finally:
        child.signal_group(9)
        child.reap()
        child.close()


def test_session_scan_still_runs_after_a_loop_closed_with_one_pending(tmp_path: Path) -> None:
    import asyncio

    from core import strays
    from core.process import spawn

    dead_loop = asyncio.new_event_loop()
    strays.signal_session_soon(dead_loop, 1 << 30, 9)  # no such session; never scanned
    dead_loop.close()
    pid_file = tmp_path / "inner.pid"
    cmd = f"timeout 100 sh -c 'echo $$ > {pid_file}; exec sleep 100' >/dev/null 2>&1; echo done"
    child = spawn(cmd, dict(os.environ), tmp_path)
    try:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text().strip()):  # written by the child
            assert time.monotonic() < deadline
            time.sleep(0.01)
        loop = asyncio.new_event_loop()
        strays.signal_session_soon(loop, child.pid, 9)
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        assert gone(int(pid_file.read_text()))
    finally:
        strays.signal_sessions({child.pid: 9})  # a failing run leaves none behind
        child.signal_group(9)
        child.reap()
        child.close()


def test_noop_delay_must_be_finite(tmp_path: Path) -> None:
    from core.agents.noop import NoopAgent
    from core.plan import Task

    agent = NoopAgent()
    for text in ("inf", "1e400", "Infinity"):
        assert agent.validate(Task("n", agent="noop", command=text), tmp_path) == [
            f"noop delay must be finite ({text})"]
    assert agent.validate(Task("n", agent="noop", command="0.5"), tmp_path) == []


async def test_term_trap_of_a_stopped_task_runs_once(tmp_path: Path) -> None:
    # The session scan signals only processes outside the task's group:
    # the group's members already had SIGTERM from killpg.
    cmd = "trap 'echo trapped; exit 3' TERM; echo ready; sleep 100 & wait; wait"
    run = create_run(plan_of(shell("t", cmd)), OPTS)
    summary, _ = await run_collect(run, cancel_when_ready)
    assert summary.tasks["t"].reason == "cancelled by user"
    assert log_of(run, "t").read_text().count("trapped") == 1


async def test_cancelling_run_callers_ends_running_shell_tasks_cancelled() -> None:
    # A nested run (plan agent) or any library caller is stopped by
    # cancellation, not CancelRun: its running shell tasks ended "failed:
    # killed by SIGTERM" where the awaited kind end "cancelled".
    run = create_run(plan_of(shell("t", "echo ready; sleep 100")), OPTS)
    events = EventLog()

    async def consume() -> None:
        async for ev in run.client().events():
            events.add(ev)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(run.run)
            await events.wait_for(lambda: any(
                isinstance(e, OutputLines) and "ready" in e.lines for e in events))
            tg.cancel_scope.cancel()
    info = next(t for t in run.snapshot().tasks if t.id == "t")
    assert (info.state, info.reason) == (TaskState.CANCELLED, "run interrupted")
    assert survivors(run.run_id) == []


def test_a_run_without_a_journal_never_shares_a_log_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `tek run --no-journal` in the same second could draw one id and write each other's logs."""
    from core.paths import run_log_path

    taken, fresh = "20260101-000000-aaaa", "20260101-000000-bbbb"
    run_log_path(taken, "t", 1).parent.mkdir(parents=True)
    draws = iter([taken, taken, fresh])
    monkeypatch.setattr("core.run_options.new_run_id", lambda: next(draws))
    assert create_run(plan_of(shell("t", "true")), RunOptions()).run_id == fresh
