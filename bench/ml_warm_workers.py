"""Benchmark: 50 tiny inference tasks with warm ML workers vs a cold process per task.

One tiny MLP is trained first. Then a plan of ``--tasks`` independent
``infer`` tasks (200 rows each, ``ml`` pool of ``--jobs``) runs through
``core.engine`` twice, each in a fresh process:

- warm: the default pool keeps workers alive, so torch is imported once per
  worker (``--jobs`` workers in all);
- cold: ``TEK_ML_WARM_WORKERS=0``, so every task starts a new worker process
  and imports torch again (what running each task as its own script costs).

Both figures include starting the first workers. Repeated ``--repeat`` times,
best reported. Usage: ``.venv/bin/python bench/ml_warm_workers.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, anyio
from core.engine import create_run, RunOptions
from core.plan import Plan, Task
mode, count, jobs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "setup":
    tasks = (Task(id="data", agent="ml", command="dataset kind=moons n=200 out=rows.parquet"),
             Task(id="train", agent="ml", command="train model=mlp hidden=16 data=moons n=200 epochs=2 seed=0 save=tiny"))
else:
    tasks = tuple(Task(id=f"infer{i}", agent="ml", command=f"infer model=tiny data=rows.parquet out=out/p{i}.csv")
                  for i in range(count))
summary = anyio.run(create_run(Plan(tasks), RunOptions(pool_sizes={"ml": jobs})).run)
assert summary.status.value == "succeeded", summary.to_json()
print("WALL_S", summary.wall_s)
"""


def _child(mode: str, count: int, jobs: int, warm: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not warm:
        env["TEK_ML_WARM_WORKERS"] = "0"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(count), str(jobs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["TEK_HOME"],
        check=False,
    )
    if done.returncode:
        sys.exit(f"benchmark child failed:\n{done.stdout}\n{done.stderr}")
    return float(done.stdout.split("WALL_S")[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="size of the ml pool (default 2)")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    os.environ["TEK_HOME"] = tempfile.mkdtemp(prefix="tek-bench-")
    _child("setup", 0, 1, True)
    warm, cold = [], []
    started = time.perf_counter()
    for _ in range(opts.repeat):
        warm.append(_child("infer", opts.tasks, opts.jobs, True))
        cold.append(_child("infer", opts.tasks, opts.jobs, False))
    load = os.getloadavg()
    w, c = min(warm), min(cold)
    print(
        f"{opts.tasks} tiny infer tasks, ml pool {opts.jobs}, best of {opts.repeat} "
        f"(load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; bench took {time.perf_counter() - started:.0f} s)"
    )
    print(f"  warm workers   {w:7.2f} s  ({w / opts.tasks * 1000:7.1f} ms/task)")
    print(f"  cold processes {c:7.2f} s  ({c / opts.tasks * 1000:7.1f} ms/task)")
    print(f"  warm is {c / w:.1f}x faster")


if __name__ == "__main__":
    main()
