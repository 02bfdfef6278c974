"""Dispatch throughput: noop tasks through the engine, events on.

Builds a seeded random DAG (about 2.5 deps per task, each on an earlier
task), runs it in-process with one subscriber draining ``client.events()``,
and prints tasks/s at each size. Usage::

    .venv/bin/python bench/dispatch.py [--sizes 10000 100000] [--repeat 5] [--no-subscriber]
    .venv/bin/python bench/dispatch.py --journal [--sizes 10000] [--repeat 5]

Target (issue 3): at least 50,000 tasks/s at 10k and 100k tasks.

``--journal`` (issue 4) runs each size alternately without and with the
SQLite journal (a fresh file in a temporary folder) and prints both rates and
how much slower the journal makes the run (target: at most 15% at 10k), both
in-run (``run()`` alone) and end to end (the journal's set-up + ``run()`` +
closing the journal, which applies its queued batches to the tables).
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

    Two figures, because the journal's work is not all inside ``run()``:

    - in-run: ``run()`` alone, journal off vs on (what the engine waits for:
      each batch committed before it is published);
    - end to end: everything the journal adds, i.e. set-up (opening the file,
      the run and task rows, row hashes) + ``run()`` + closing (applying the
      queued batches to the tables so ``tek runs/show`` and resume can read
      them, and the WAL checkpoint), against ``run()`` without a journal.

    Wall time is what the target is about; CPU time (``process_time``, all
    threads) is printed too because on a shared 2-core machine it moves far
    less with the load.
    """
    import tempfile

    from core.journal import create_journal
    from core.store import open_store

    n = len(plan)
    off: list[tuple[float, float]] = []  # (run wall, run cpu)
    on: list[tuple[tuple[float, float], ...]] = []  # (wall, cpu) of set-up, run, close
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            cpu = time.process_time()
            wall, _ = anyio.run(run_once, plan, subscriber)
            off.append((wall, time.process_time() - cpu))
            t0, c0 = time.perf_counter(), time.process_time()
            journal = create_journal(plan, store=open_store(Path(tmp) / f"bench{i}.db"))
            t1, c1 = time.perf_counter(), time.process_time()
            wall, _ = anyio.run(run_once, plan, subscriber, journal)
            t2, c2 = time.perf_counter(), time.process_time()
            journal.close()
            t3, c3 = time.perf_counter(), time.process_time()
            on.append(((t1 - t0, c1 - c0), (wall, c2 - c1), (t3 - t2, c3 - c2)))
            stats = journal.recorder.stats
            print(f"  {n:>8} tasks  off {off[-1][0]:.3f} s  on {wall:.3f} s  (set-up {t1 - t0:.3f} s,"
                  f" close {t3 - t2:.3f} s, end to end {t3 - t0:.3f} s; {stats.batches} batches,"
                  f" {stats.queued} queued, {stats.write_s:.3f} s in record)")
    best_off, cpu_off = min(w for w, _ in off), min(c for _, c in off)
    best_on, cpu_on = min(r[1][0] for r in on), min(r[1][1] for r in on)
    (setup, _), (run_s, _), (close, _) = min(on, key=lambda r: sum(w for w, _ in r))
    best_e2e = setup + run_s + close
    cpu_e2e = min(sum(c for _, c in r) for r in on)
    print(f"{n:>8} tasks, best of {repeat}: journal off {best_off:.3f} s ({n / best_off:,.0f} tasks/s)")
    print(f"  in-run     run() {best_on:.3f} s ({n / best_on:,.0f} tasks/s):"
          f" {100 * (best_on / best_off - 1):+.1f}% wall, {100 * (cpu_on / cpu_off - 1):+.1f}% CPU")
    print(f"  end to end set-up {setup:.3f} + run() {run_s:.3f} + close {close:.3f} = {best_e2e:.3f} s:"
          f" {100 * (best_e2e / best_off - 1):+.1f}% wall, {100 * (cpu_e2e / cpu_off - 1):+.1f}% CPU")


if __name__ == "__main__":
    main()
