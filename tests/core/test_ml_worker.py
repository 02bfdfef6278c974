"""Warm ML workers: reuse, output capture, death and replacement, cancel and timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from core.agents.ml import MlAgent
from core.ml import registry
from core.ml.pool import WorkerPool
from tests.core.ml_helpers import make_attempt, pid_gone, process_dead, run_op

#: Long enough that a test acts during it, short per epoch (about 10 ms).
LONG_TRAIN = "train model=mlp data=moons n=2000 epochs=2000 seed=1 save=long"


@pytest.fixture(scope="module")
def agent() -> Iterator[MlAgent]:
    """One agent for the module; tests that kill workers check counters as deltas."""
    a = MlAgent(WorkerPool(max_idle=2))
    yield a
    a.pool.close()


async def test_workers_stay_warm(tmp_path: Path) -> None:
    agent = MlAgent(WorkerPool(max_idle=2))  # fresh: counts from zero
    try:
        await _warm_twice(agent, tmp_path)
    finally:
        agent.pool.close()


async def _warm_twice(agent: MlAgent, tmp_path: Path) -> None:
    first, a1 = await run_op(agent, "dataset kind=blobs n=50 out=a.csv", tmp_path)
    second, a2 = await run_op(agent, "dataset kind=blobs n=50 out=b.csv", tmp_path)
    assert first.ok and second.ok
    assert a1.pids == a2.pids  # the same process served both
    assert (agent.pool.stats.started, agent.pool.stats.reused) == (1, 1)
    assert any("starting ML worker" in line for line in a1.lines)
    assert not any("starting ML worker" in line for line in a2.lines)


async def test_worker_processes_are_separate_from_the_engine(
    agent: MlAgent, tmp_path: Path
) -> None:
    outcome, attempt = await run_op(agent, "dataset kind=moons n=10 out=x.csv", tmp_path)
    assert outcome.ok and attempt.pids and attempt.pids[0] != os.getpid()
    assert os.getpgid(attempt.pids[0]) == attempt.pids[0]  # its own process group


@pytest.mark.parametrize(
    ("sig", "words"),
    [(signal.SIGKILL, "was killed by SIGKILL"), (signal.SIGSEGV, "was killed by SIGSEGV")],
)
async def test_dead_worker_fails_the_attempt_and_is_replaced(
    agent: MlAgent, tmp_path: Path, sig: signal.Signals, words: str
) -> None:
    before = (agent.pool.stats.started, agent.pool.stats.died)
    pids: list[int] = []

    def kill_on_first_epoch(values: dict[str, Any]) -> None:
        if values["epoch"] == 1:
            os.kill(pids[0], sig)

    attempt = make_attempt(LONG_TRAIN, tmp_path, on_progress=kill_on_first_epoch)
    pids = attempt.pids
    with anyio.fail_after(60):
        outcome = await agent.run(attempt.ctx)
    assert not outcome.ok and outcome.exit_code == -sig
    assert outcome.reason.startswith(f"ML worker (pid {pids[0]}) {words}")
    if sig == signal.SIGSEGV:
        assert (
            "Segmentation fault" in outcome.reason
        )  # faulthandler's words, from the worker's stderr
    assert pid_gone(pids[0]) and agent.pool.stats.died == before[1] + 1
    assert registry.versions("long") == []
    again, second = await run_op(agent, "dataset kind=moons n=10 out=x.csv", tmp_path)
    assert again.ok and second.pids[0] != pids[0]
    assert agent.pool.stats.started > before[0]  # a replacement was started


async def test_cancel_during_training_kills_the_worker(agent: MlAgent, tmp_path: Path) -> None:
    killed = agent.pool.stats.killed
    epochs = anyio.Event()
    attempt = make_attempt(LONG_TRAIN, tmp_path, on_progress=lambda values: epochs.set())
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:

            async def run_and_note() -> None:
                await agent.run(attempt.ctx)
                pytest.fail("a cancelled attempt must re-raise, not return")

            tg.start_soon(run_and_note)
            await epochs.wait()
            tg.cancel_scope.cancel()
    assert attempt.progress and attempt.progress[-1]["epoch"] < 2000
    assert pid_gone(attempt.pids[0])
    assert agent.pool.stats.killed == killed + 1
    assert registry.versions("long") == []


async def test_op_error_keeps_the_worker(agent: MlAgent, tmp_path: Path) -> None:
    outcome, attempt = await run_op(agent, "evaluate model=ghost data=moons", tmp_path)
    assert not outcome.ok and agent.pool.idle >= 1
    again, second = await run_op(agent, "evaluate model=ghost data=moons", tmp_path)
    assert second.pids == attempt.pids
    assert any(line.startswith("error: no model named 'ghost'") for line in attempt.lines)


def test_an_expected_error_keeps_its_message_whole() -> None:
    from core.errors import TekError
    from core.ml.worker import expected_reason

    extra = "ONNX export needs the onnx extra: pip install 'task-exec-kit[onnx]'"
    assert expected_reason(TekError(extra)) == extra  # its closing quote was cut off
    assert expected_reason(KeyError("target")) == "target"


async def test_worker_that_cannot_start_fails_clearly(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text(
        '#!/bin/sh\necho \'{"type": "log", "line": "ImportError: no module named torch"}\'\nexit 1\n'
    )
    fake.chmod(0o755)
    agent = MlAgent(WorkerPool(python=str(fake)))
    try:
        outcome, attempt = await run_op(agent, "dataset kind=moons out=x.csv", tmp_path)
    finally:
        agent.pool.close()
    assert not outcome.ok and outcome.exit_code == 1
    assert outcome.reason.endswith("exited with code 1: ImportError: no module named torch")
    assert "ImportError: no module named torch" in attempt.lines


def test_worker_output_is_sent_before_done(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from core.ml import worker, train\n"
        "def fake(args, ctx):\n"
        "    print('printed by op')\n"
        "    return {'x': 1.0}\n"
        "train.run_train = fake\n"
        "sys.exit(worker.main())\n"
    )
    request = json.dumps({"op": "train", "args": {}, "env": {"TEK_HOME": str(tmp_path)}})
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=f"{request}\n{request}\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    kinds = [(m["type"], m.get("line")) for m in map(json.loads, done.stdout.splitlines())]
    assert kinds == [
        ("ready", None),
        ("log", "printed by op"),
        ("done", None),
        ("log", "printed by op"),
        ("done", None),
    ]


#: A worker whose ``train`` says "training" and then computes for a minute
#: without a word: nothing it writes can fail and end it, as a long epoch.
_SILENT_WORKER = """
import sys, time
from core.ml import train, worker

def silent(args, ctx):
    ctx.log("training")
    end = time.monotonic() + 60
    while time.monotonic() < end:
        sum(range(10_000))
    return {}

train.run_train = silent
sys.exit(worker.main(sys.argv[1:]))
"""

#: Starts a worker from a thread that then exits (the worker must outlive
#: that thread), has it train, and prints the worker's pid once it trains.
_PARENT_SCRIPT = """
import os, sys, threading
import anyio
from core.ml.pool import WorkerPool

pool = WorkerPool(max_idle=1, python=sys.argv[1])
box = []
spawner = threading.Thread(target=lambda: box.append(pool.acquire()))
spawner.start()
spawner.join()
worker = box[0]

def on_message(message):
    if message.get("line") == "training":
        print(worker.pid, flush=True)

request = {"op": "train", "args": {}, "cwd": os.getcwd(), "env": dict(os.environ)}
anyio.run(worker.request, request, on_message)
"""


def test_worker_dies_with_its_parent_even_mid_training(tmp_path: Path) -> None:
    """A SIGKILLed owner (``tek run``) leaves no worker computing on as an orphan."""
    (tmp_path / "silent_worker.py").write_text(_SILENT_WORKER)
    python = tmp_path / "python"  # runs the silent worker with the pool's arguments
    python.write_text(
        f'#!/bin/sh\nshift 2\nexec {sys.executable} {tmp_path}/silent_worker.py "$@"\n'
    )
    python.chmod(0o755)
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_SCRIPT, str(python)], stdout=subprocess.PIPE, text=True
    )
    worker_pid = 0
    try:
        assert parent.stdout is not None
        first = parent.stdout.readline()  # the op is under way
        assert first.strip().isdigit(), first
        worker_pid = int(first)
        assert not process_dead(worker_pid)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not process_dead(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_dead(worker_pid), "the worker kept running after its parent died"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if worker_pid and not process_dead(worker_pid):
            os.killpg(worker_pid, signal.SIGKILL)
