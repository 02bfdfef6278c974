"""Readers beside a writer: never "database is locked", never half a batch.

A writer process records a 400-task run in batches of 8 task completions
(each batch one transaction). Reader threads in this process and ``tek runs
--json`` processes read the journal the whole time. Every read must succeed
and must see a whole number of batches: the succeeded count is a multiple of
8 and the attempts match the tasks. In the "queued" variant every batch is
committed to ``pending`` and the readers apply the queue (write transactions
of their own) beside the writer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from core.store import open_store

REPO = Path(__file__).resolve().parents[2]
BATCH = 8
TASKS = 400

WRITER = """
import sys
from core.events import TaskChanged, TaskState
from core.journal import JournalRecorder
from core.plan import Plan, Task
from core.store import open_store
from tests.core.journal_helpers import finished, started

db, n, batch, inline_max = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
plan = Plan(tuple(Task(id=f"t{i}", agent="noop") for i in range(n)))
store = open_store(db)
store.begin_run("R", plan)
rec = JournalRecorder(store, "R", inline_max=inline_max)
rec.record_sync([started("R", n)])
print("ready", flush=True)
for k in range(0, n, batch):
    evs = []
    for i in range(k, k + batch):
        evs.append(TaskChanged(f"t{i}", TaskState.RUNNING, 1, float(i)))
        evs.append(TaskChanged(f"t{i}", TaskState.SUCCEEDED, 1, i + 0.5, exit_code=0))
    rec.record_sync(evs)
    if k == n // 2:
        print("half", flush=True)
        sys.stdin.readline()  # the test reads a mid-run state, then lets it go on
rec.record_sync([finished("R")])
"""


def _check(succeeded: int, running: int, attempts: int | None = None) -> None:
    assert succeeded % BATCH == 0, f"half a batch seen: {succeeded} succeeded"
    assert running == 0, "an attempt seen open: its batch was half-read"
    if attempts is not None:
        assert attempts == succeeded


@pytest.mark.parametrize("inline_max", [256, 0], ids=["applied", "queued"])
async def test_readers_beside_a_writer(tmp_path: Path, inline_max: int) -> None:
    db = tmp_path / "j.db"
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()
    saw_mid = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                with open_store(db, create=False) as store:
                    for _ in range(20):
                        run, tasks, attempts = store.read_run("R")
                        ok = run.counts.get("succeeded", 0)
                        _check(ok, run.counts.get("running", 0), len(attempts))
                        assert sum(t.state == "succeeded" for t in tasks) == ok
                        seen.append(ok)
                        if 0 < ok < TASKS:
                            saw_mid.set()
        except BaseException as exc:  # reported by the test body
            errors.append(exc)

    def tek_runs() -> int:
        out = subprocess.run(
            [sys.executable, "-m", "tek_tui", "runs", "--json", "--store", str(db)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        (run,) = json.loads(out.stdout)
        ok: int = run["counts"].get("succeeded", 0)
        _check(ok, run["counts"].get("running", 0))
        return ok

    cmd = [sys.executable, "-c", WRITER, str(db), str(TASKS), str(BATCH), str(inline_max)]
    with anyio.fail_after(90):
        async with await anyio.open_process(cmd, cwd=REPO) as writer:
            assert writer.stdout is not None and writer.stdin is not None
            line = await writer.stdout.receive()
            assert line.startswith(b"ready")
            threads = [threading.Thread(target=reader) for _ in range(3)]
            for t in threads:
                t.start()
            while b"half" not in line:
                line += await writer.stdout.receive()
            mid = await anyio.to_thread.run_sync(tek_runs)
            assert 0 < mid < TASKS
            assert await anyio.to_thread.run_sync(saw_mid.wait, 30)
            await writer.stdin.send(b"go\n")
            # a reader process while the second half is written
            await anyio.to_thread.run_sync(tek_runs)
            assert await writer.wait() == 0
        stop.set()
        for t in threads:
            await anyio.to_thread.run_sync(t.join)
    assert not errors, errors[0]
    assert any(0 < s < TASKS for s in seen), "no reader saw the run mid-way"
    assert await anyio.to_thread.run_sync(tek_runs) == TASKS
