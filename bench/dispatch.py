"""Dispatch throughput: noop tasks through the engine, events on.

Builds a seeded random DAG (about 2.5 deps per task, each on an earlier
task), runs it in-process with one subscriber draining ``client.events()``,
and prints tasks/s at each size. Usage::

    .venv/bin/python bench/dispatch.py [--sizes 10000 100000] [--repeat 5] [--no-subscriber]
    .venv/bin/python bench/dispatch.py --journal [--sizes 10000] [--repeat 5]

Target (issue 3): at least 50,000 tasks/s at 10k and 100k tasks.

``--journal`` (issue 4) runs each size alternately without and with the
SQLite journal (a fresh file in a temporary folder) and prints both rates and
how much slower the journal makes the run (target: at most 15% at 10k). The
journal's set-up (run and task rows, like ``create_run``'s outside the timed
run) and the applying of queued batches after the run are timed apart and
printed too, with the end-to-end figure.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from core.engine import RunOptions, create_run
from core.plan import Plan, Task

if TYPE_CHECKING:
    from core.journal import RunJournal


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


async def run_once(
    plan: Plan,
    subscriber: bool,
    journal: RunJournal | None = None,
    build_times: list[float] | None = None,
) -> tuple[float, int]:
    """Run ``plan`` (recorded in ``journal`` if given); returns (seconds, events seen).

    ``create_run``'s seconds are appended to ``build_times`` when given.
    """
    extra: dict[str, Any] = {}
    if journal is not None:
        extra = {"run_id": journal.run_id, "recorder": journal.recorder}
    t0 = time.perf_counter()
    run = create_run(plan, RunOptions(jobs=8, memory_floor_mb=0), **extra)
    if build_times is not None:
        build_times.append(time.perf_counter() - t0)
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-subscriber", action="store_true")
    parser.add_argument("--journal", action="store_true", help="compare journal off and on")
    args = parser.parse_args()
    if args.journal:
        for n in args.sizes:
            compare_journal(random_plan(n), args.repeat, not args.no_subscriber)
        return
    for n in args.sizes:
        plan = random_plan(n)
        best = best_total = float("inf")
        for _ in range(args.repeat):
            builds: list[float] = []
            wall, seen = anyio.run(run_once, plan, not args.no_subscriber, None, builds)
            build = builds[0]
            best = min(best, wall)
            best_total = min(best_total, build + wall)
            print(f"  {n:>8} tasks  create_run {build:6.3f} s  run {wall:6.3f} s  "
                  f"{n / wall:>9,.0f} tasks/s  ({seen} events seen by the subscriber)")
        print(f"{n:>8} tasks: best {n / best:,.0f} tasks/s through run(); "
              f"{n / best_total:,.0f} tasks/s including create_run")


def compare_journal(plan: Plan, repeat: int, subscriber: bool) -> None:
    """Print tasks/s without and with the journal, best of ``repeat`` each.

    Wall time is what the target is about; CPU time (``process_time`` of the
    run, all threads) is printed too because on a shared 2-core machine it
    moves far less with the load.
    """
    import tempfile

    from core.journal import create_journal
    from core.store import open_store

    n = len(plan)
    off: list[tuple[float, float]] = []  # (run wall, run cpu)
    on: list[tuple[float, float, float, float]] = []  # (set-up, run wall, apply after, run cpu)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            cpu = time.process_time()
            wall, _ = anyio.run(run_once, plan, subscriber)
            off.append((wall, time.process_time() - cpu))
            t0 = time.perf_counter()
            journal = create_journal(plan, store=open_store(Path(tmp) / f"bench{i}.db"))
            setup = time.perf_counter() - t0
            cpu = time.process_time()
            wall, _ = anyio.run(run_once, plan, subscriber, journal)
            cpu = time.process_time() - cpu
            t0 = time.perf_counter()
            journal.close()
            on.append((setup, wall, time.perf_counter() - t0, cpu))
            stats = journal.recorder.stats
            print(f"  {n:>8} tasks  off {off[-1][0]:.3f} s  on {wall:.3f} s  (set-up {setup:.3f} s,"
                  f" apply after {on[-1][2]:.3f} s; {stats.batches} batches, {stats.queued} queued,"
                  f" {stats.write_s:.3f} s in record)")
    best_off = min(w for w, _ in off)
    best_on = min(r[1] for r in on)
    cpu_off = min(c for _, c in off)
    cpu_on = min(r[3] for r in on)
    best_total = min(r[0] + r[1] + r[2] for r in on)
    print(f"{n:>8} tasks: journal off {n / best_off:,.0f} tasks/s, on {n / best_on:,.0f} tasks/s:"
          f" run {100 * (best_on / best_off - 1):+.1f}% wall, {100 * (cpu_on / cpu_off - 1):+.1f}% CPU"
          f" (best of {repeat}); set-up + run + apply after {100 * (best_total / best_off - 1):+.1f}%")


if __name__ == "__main__":
    main()
