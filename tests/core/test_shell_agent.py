"""The shell agent through the engine: output, exit codes, process-group kills, floods."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import psutil

from core.agents.registry import register_agent
from core.agents.shell import ShellAgent
from core.engine import Run, RunOptions, create_run
from core.events import CancelTask, OutputLines, RunStatus, TaskChanged, TaskState
from core.plan import Task
from tests.core.engine_helpers import EventLog, plan_of, run_collect, shell

OPTS = RunOptions(jobs=4, memory_floor_mb=0, grace_s=0.3)


def log_of(run: Run, tid: str, attempt: int = 1) -> Path:
    return Path(os.environ["TEK_HOME"]) / "runs" / run.run_id / f"{tid}.{attempt}.log"


def survivors(run_id: str) -> list[int]:
    """Live processes still carrying this run's id, after up to 2 s for SIGKILLs to land."""
    deadline = time.monotonic() + 2
    while (found := _with_run_id(run_id)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def _with_run_id(run_id: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("TEK_RUN_ID") == run_id:
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def group_gone(pgid: int) -> bool:
    """No live process left in the group (zombies waiting for a reaper are dead).

    SIGKILL is delivered asynchronously: a killed member may take a moment
    to finish exiting, so this waits up to 2 s for the group to empty.
    """
    deadline = time.monotonic() + 2
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def pids(events: EventLog, tid: str) -> list[int]:
    return [e.pid for e in events if isinstance(e, TaskChanged) and e.task_id == tid and e.pid]


async def test_output_exit_code_and_log() -> None:
    py = sys.executable
    run = create_run(plan_of(
        shell("ok", "echo one; echo two >&2; printf 'no newline'"),
        shell("bad", f"{py} -c 'import sys; print(\"dying\"); sys.exit(7)'"),
        shell("sig", "kill -9 $$"),
    ), OPTS)  # fmt: skip
    summary, events = await run_collect(run)
    assert log_of(run, "ok").read_text() == "one\ntwo\nno newline"  # as printed
    lines = [ln for e in events if isinstance(e, OutputLines) and e.task_id == "ok" for ln in e.lines]
    assert lines == ["one", "two", "no newline"]
    assert (summary.tasks["bad"].exit_code, summary.tasks["bad"].reason) == (7, "exit code 7")
    assert log_of(run, "bad").read_text() == "dying\n"
    assert summary.tasks["sig"].exit_code == -9
    assert summary.tasks["sig"].reason == "killed by SIGKILL"
    assert summary.status is RunStatus.FAILED


async def test_missing_cwd_fails_cleanly(tmp_path: Path) -> None:
    run = create_run(plan_of(shell("t", "true", cwd=str(tmp_path / "nope"))), OPTS)
    summary, _ = await run_collect(run)
    assert summary.tasks["t"].state is TaskState.FAILED
    assert summary.tasks["t"].reason == (
        f"could not start: working directory {tmp_path / 'nope'} does not exist (cwd)")


async def test_timeout_kills_the_whole_tree() -> None:
    run = create_run(plan_of(shell("t", "sleep 100 & sleep 100; wait", timeout_s=0.3)), OPTS)
    t0 = time.monotonic()
    summary, events = await run_collect(run)
    assert time.monotonic() - t0 < 5
    assert summary.tasks["t"].reason == "timed out after 0.3s"
    (pgid,) = set(pids(events, "t"))
    assert group_gone(pgid)
    assert survivors(run.run_id) == []


async def test_a_timeout_that_needed_sigkill_says_so() -> None:
    run = create_run(plan_of(shell("t", "trap '' TERM; sleep 100", timeout_s=0.3)), OPTS)
    summary, _ = await run_collect(run)
    t = summary.tasks["t"]
    assert (t.exit_code, t.reason) == (-9, "timed out after 0.3s (killed: it did not stop on SIGTERM)")


async def test_a_stopped_task_is_continued_to_take_its_sigterm() -> None:
    # A stopped process keeps SIGTERM pending: without SIGCONT it waited out
    # the grace and read "it did not stop on SIGTERM".
    run = create_run(plan_of(shell("t", "kill -STOP $$; sleep 100", timeout_s=0.3)), OPTS)
    summary, events = await run_collect(run)
    assert summary.tasks["t"].reason == "timed out after 0.3s"
    assert group_gone(pids(events, "t")[0])


async def test_cancel_escalates_to_sigkill_after_grace() -> None:
    run = create_run(plan_of(shell("t", "trap '' TERM; sleep 100 & sleep 100; wait")), OPTS)

    async def drive(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: bool(pids(events, "t")))
        await anyio.sleep(0.1)  # let sh install its trap before the signal comes
        t0 = time.monotonic()
        await run.client().control(CancelTask("t"))
        await events.wait_for(lambda: any(
            isinstance(e, TaskChanged) and e.state is TaskState.CANCELLED for e in events))
        assert 0.25 <= time.monotonic() - t0 < 3  # SIGTERM ignored: SIGKILL after 0.3 s

    summary, events = await run_collect(run, drive)
    assert summary.tasks["t"].reason == "cancelled by user"
    assert group_gone(pids(events, "t")[0])
    assert survivors(run.run_id) == []


async def test_a_program_under_the_shell_gets_its_grace_to_save_its_work(tmp_path: Path) -> None:
    """`sh -c 'train.py; ...'`: SIGTERM ends the shell at once, but the program it runs
    may checkpoint first; it was SIGKILLed the moment the shell died."""
    saved = tmp_path / "saved"
    script = tmp_path / "train.py"
    script.write_text(
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    time.sleep(0.5); open({str(saved)!r}, 'w').write('ok'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(100)\n"
    )
    run = create_run(plan_of(shell("t", f"{sys.executable} {script}; echo after")),
                     RunOptions(jobs=1, memory_floor_mb=0, grace_s=10))

    async def stop_when_ready(run: Run, events: EventLog) -> None:
        await events.wait_for(lambda: any(  # its handler is in place
            isinstance(e, OutputLines) and "ready" in e.lines for e in events))
        await run.client().control(CancelTask("t"))

    summary, events = await run_collect(run, stop_when_ready)
    assert saved.read_text() == "ok"
    assert summary.tasks["t"].reason == "cancelled by user"
    assert summary.tasks["t"].duration_s is not None and summary.tasks["t"].duration_s < 9
    assert group_gone(pids(events, "t")[0])
    assert survivors(run.run_id) == []


async def test_background_process_holding_output_is_killed() -> None:
    run = create_run(plan_of(shell("t", "sleep 100 & echo done")), OPTS)
    t0 = time.monotonic()
    summary, _ = await run_collect(run)
    assert time.monotonic() - t0 < 3
    assert summary.tasks["t"].state is TaskState.SUCCEEDED
    text = log_of(run, "t").read_text()
    assert text.startswith("done\n") and "background processes kept the output open" in text
    assert survivors(run.run_id) == []


async def test_the_log_keeps_the_bytes_exactly_as_printed(tmp_path: Path) -> None:
    """A 3 MB line with no newline, cut mid-character for the live stream, and bytes
    that are not UTF-8: the file has them all, unchanged; live lines are bounded."""
    data = "é" * 1_500_001 + "€" + "\n"  # the 1 MiB cuts fall inside characters
    raw = data.encode() + b"latin-1: caf\xe9\n" + b"\x00\xff\xfe binary" + b"x" * 2_000_000
    (tmp_path / "out.bin").write_bytes(raw)
    run = create_run(plan_of(shell("t", f"cat {tmp_path / 'out.bin'}")), OPTS)
    summary, events = await run_collect(run)
    assert summary.tasks["t"].state is TaskState.SUCCEEDED
    assert log_of(run, "t").read_bytes() == raw
    live = [ln for e in events if isinstance(e, OutputLines) for ln in e.lines]
    assert live and max(len(ln) for ln in live) <= 2000
    assert "latin-1: caf\ufffd" in live


async def test_tek_s_own_line_after_an_unterminated_one_starts_a_line(tmp_path: Path) -> None:
    run = create_run(plan_of(shell("t", "printf partial; sleep 30", timeout_s=0.3)),
                     RunOptions(jobs=1, memory_floor_mb=0, grace_s=0.5))
    summary, _ = await run_collect(run)
    text = log_of(run, "t").read_text()
    assert text.startswith("partial\n[tek] ") and text.endswith("\n")


async def test_output_flood_keeps_memory_flat_and_log_complete() -> None:
    """200 MB of output: engine RSS grows < 50 MB; the log has every byte.

    A second subscriber never reads at all: it must not hold the flood either.
    """
    size = 200_000_000
    line = "0123456789" * 9 + "012345678"  # 99 chars + newline = 100 bytes
    cmd = f"yes {line} | head -c {size}"
    run = create_run(plan_of(shell("flood", cmd)), OPTS)
    stalled = run.client().events()  # subscribed, never read
    me = psutil.Process()
    base = me.memory_info().rss
    peak = base

    async def sample(run: Run, events: EventLog) -> None:
        nonlocal peak
        while not run.snapshot().status.is_finished:
            peak = max(peak, me.memory_info().rss)
            await anyio.sleep(0.02)

    with anyio.fail_after(120):
        summary, events = await run_collect(run, sample, keep_output=False)
    assert summary.tasks["flood"].state is TaskState.SUCCEEDED
    assert log_of(run, "flood").stat().st_size == size
    assert (peak - base) < 50 * 2**20, f"RSS grew {(peak - base) / 2**20:.1f} MiB"
    del stalled


async def test_cancelling_the_caller_stops_every_shell_task_before_returning() -> None:
    """Shell attempts are loop callbacks, not tasks of the run's task group: the
    run's teardown must still stop each one (SIGTERM, then SIGKILL after the
    grace for one that ignores it) before ``run()`` gives the cancellation back."""
    plan = plan_of(
        shell("plain", "sleep 100 & sleep 100; wait"),
        shell("stubborn", "trap '' TERM; sleep 100 & sleep 100; wait"),
    )
    run = create_run(plan, OPTS)
    events = EventLog()

    async def consume() -> None:
        async for ev in run.client().events():
            events.add(ev)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(run.run)
            await events.wait_for(lambda: bool(pids(events, "plain") and pids(events, "stubborn")))
            await anyio.sleep(0.1)  # let sh install its trap before the signal comes
            tg.cancel_scope.cancel()  # the caller of run() is cancelled
    assert survivors(run.run_id) == []
    assert run.snapshot().status is RunStatus.CANCELLED


class AwaitedShellAgent(ShellAgent):
    """The shell agent driven through ``run()``, the way the engine drives agents
    that do not launch: the awaited path must behave as the launched one."""

    launches = False


register_agent("awaited_shell", "tests.core.test_shell_agent:AwaitedShellAgent")


async def test_awaited_shell_agent_runs_and_stops_like_the_launched_one() -> None:
    run = create_run(plan_of(
        Task("out", agent="awaited_shell", command="echo hi; exit 3"),
        Task("slow", agent="awaited_shell", command="sleep 100 & sleep 100; wait", timeout_s=0.3),
    ), OPTS)  # fmt: skip
    summary, _ = await run_collect(run)
    assert (summary.tasks["out"].exit_code, summary.tasks["out"].reason) == (3, "exit code 3")
    assert log_of(run, "out").read_text() == "hi\n"
    assert summary.tasks["slow"].reason == "timed out after 0.3s"
    assert survivors(run.run_id) == []
