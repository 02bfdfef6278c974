"""Dispatch throughput: noop tasks through the engine, events on.

Builds a seeded random DAG (about 2.5 deps per task, each on an earlier
task), runs it in-process with one subscriber draining ``client.events()``,
and prints tasks/s at each size. Usage::

    .venv/bin/python bench/dispatch.py [--sizes 10000 100000] [--repeat 3] [--no-subscriber]

Target (issue 3): at least 50,000 tasks/s at 10k and 100k tasks.
"""

from __future__ import annotations

import argparse
import random
import time

import anyio

from core.engine import RunOptions, create_run
from core.plan import Plan, Task


def random_plan(n: int, seed: int = 7, deps_per_task: float = 2.5) -> Plan:
    """A DAG of ``n`` noop tasks, each depending on ~``deps_per_task`` earlier ones."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        k = min(i, int(deps_per_task) + (rng.random() < deps_per_task % 1))
        window = max(k, min(i, 200))  # mostly recent tasks: a deep-ish, wide DAG
        deps = tuple(f"t{j}" for j in sorted(rng.sample(range(i - window, i), k))) if k else ()
        tasks.append(Task(f"t{i}", agent="noop", deps=deps))
    return Plan(tasks=tuple(tasks))


async def run_once(plan: Plan, subscriber: bool) -> tuple[float, int]:
    """Run ``plan``; returns (seconds, events the subscriber saw)."""
    run = create_run(plan, RunOptions(jobs=8, memory_floor_mb=0))
    seen = 0

    async def drain() -> None:
        nonlocal seen
        async for _ in run.client().events():
            seen += 1

    async with anyio.create_task_group() as tg:
        if subscriber:
            tg.start_soon(drain)
        t0 = time.perf_counter()
        summary = await run.run()
        wall = time.perf_counter() - t0
    assert summary.counts["succeeded"] == len(plan), summary.counts
    return wall, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-subscriber", action="store_true")
    args = parser.parse_args()
    for n in args.sizes:
        plan = random_plan(n)
        best = float("inf")
        for _ in range(args.repeat):
            wall, seen = anyio.run(run_once, plan, not args.no_subscriber)
            best = min(best, wall)
            print(f"  {n:>8} tasks  {wall:7.3f} s  {n / wall:>10,.0f} tasks/s  ({seen} events seen)")
        print(f"{n:>8} tasks: best {n / best:,.0f} tasks/s")


if __name__ == "__main__":
    main()
