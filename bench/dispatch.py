"""Dispatch throughput: noop tasks through the engine, events on.

Builds a seeded random DAG (about 2.5 deps per task, each on an earlier
task), runs it in-process with one subscriber draining ``client.events()``,
and prints tasks/s at each size. Usage::

    .venv/bin/python bench/dispatch.py [--sizes 10000 100000] [--repeat 5] [--no-subscriber]
    .venv/bin/python bench/dispatch.py --journal [--sizes 10000] [--repeat 5]

Target (issue 3): at least 50,000 tasks/s at 10k and 100k tasks.

``--journal`` (issue 4) runs each size alternately without and with the
SQLite journal (a fresh file in a temporary folder) and prints how much
slower the journal makes it (target: at most 15% at 10k), end to end as the
headline (``create_run`` + ``run()``, plus with the journal its set-up and
closing it, which leaves everything durable and in its tables) and in-run
(``run()`` alone) as a second line.
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
    """Print wall and CPU time without and with the journal, best of ``repeat`` each.

    Headline, end to end, both sides measured the same way:

    - off: ``create_run`` + ``run()``;
    - on: the journal's set-up (opening the file, the run and task rows, row
      hashes) + ``create_run`` + ``run()`` + closing the journal (applying
      what it queued to the tables so ``tek runs/show`` and resume read them,
      the WAL checkpoint): everything durable and in its tables.

    Secondary, in-run: ``run()`` alone, off vs on (what the engine waits for).

    Runs alternate off/on so both see the same load. Wall time is what the
    target is about; CPU time (``process_time``, all threads) is printed too
    because on a shared 2-core machine it moves far less with the load.
    """
    import tempfile

    from core.journal import create_journal
    from core.store import open_store

    n = len(plan)
    off: list[tuple[float, float, float]] = []  # (end-to-end wall, run() wall, cpu)
    on: list[tuple[float, float, float, float, float]] = []  # set-up, create_run, run(), close, cpu
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            builds: list[float] = []
            t0, c0 = time.perf_counter(), time.process_time()
            wall, _ = anyio.run(run_once, plan, subscriber, None, builds)
            off.append((builds[0] + wall, wall, time.process_time() - c0))
            builds = []
            t0, c0 = time.perf_counter(), time.process_time()
            journal = create_journal(plan, store=open_store(Path(tmp) / f"bench{i}.db"))
            t1 = time.perf_counter()
            wall, _ = anyio.run(run_once, plan, subscriber, journal, builds)
            t2 = time.perf_counter()
            journal.close()
            t3, c3 = time.perf_counter(), time.process_time()
            on.append((t1 - t0, builds[0], wall, t3 - t2, c3 - c0))
            stats = journal.recorder.stats
            print(f"  {n:>8} tasks  off {off[-1][0]:.3f} s (run() {off[-1][1]:.3f})  on {t3 - t0:.3f} s"
                  f" (set-up {t1 - t0:.3f}, create_run {builds[0]:.3f}, run() {wall:.3f},"
                  f" close {t3 - t2:.3f}; {stats.batches} batches, {stats.queued} queued,"
                  f" {stats.write_s:.3f} s in record)")
    e2e_off, cpu_off = min(r[0] for r in off), min(r[2] for r in off)
    setup, build, run_s, close, _ = min(on, key=lambda r: r[0] + r[1] + r[2] + r[3])
    e2e_on, cpu_on = setup + build + run_s + close, min(r[4] for r in on)
    run_off, run_on = min(r[1] for r in off), min(r[2] for r in on)
    print(f"{n:>8} tasks, best of {repeat}, end to end (create_run + run(); with the journal also"
          " its set-up and close):")
    print(f"  journal off {e2e_off:.3f} s ({n / e2e_off:,.0f} tasks/s); on {e2e_on:.3f} s"
          f" = set-up {setup:.3f} + create_run {build:.3f} + run() {run_s:.3f} + close {close:.3f}:"
          f" {100 * (e2e_on / e2e_off - 1):+.1f}% wall, {100 * (cpu_on / cpu_off - 1):+.1f}% CPU"
          " (target: at most +15%)")
    print(f"  in-run: run() {run_off:.3f} s off, {run_on:.3f} s on: {100 * (run_on / run_off - 1):+.1f}% wall")


if __name__ == "__main__":
    main()
