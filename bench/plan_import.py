"""Benchmark: import, validate and analyse seeded random plans of 10k, 100k and 1M tasks.

Each size runs in its own fresh interpreter so that peak RSS belongs to that
size alone. Per size it prints the phases of ``read_plan`` (parse, validate,
DAG index with cycle check), the analyses the console and engine use
(generations, critical path, remaining path lengths), the networkx graph
(up to 100k tasks; it is built on demand only) and the peak RSS. Then it times
the whole ``tek validate`` process on the 100k plan.

Usage::

    .venv/bin/python bench/plan_import.py                 # 10k, 100k, 1M, 3 repeats
    .venv/bin/python bench/plan_import.py --sizes 100000 --repeat 5
    .venv/bin/python bench/plan_import.py --quoted        # shell commands quoted

Targets (issue 2, 2-core machine): 100k tasks read and validated < 1 s
in-process, ``tek validate`` on it < 2 s, 1M tasks < 10 s with peak RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = "id,agent,command,deps,name,pool,cpus,priority,tags\n"


def make_plan(n: int, seed: int = 7, *, quoted: bool = False) -> str:
    """A seeded random plan of ``n`` tasks, each with up to 3 earlier deps."""
    rng = random.Random(seed)
    rows = [HEADER]
    pools = ("", "", "", "build", "test")
    for i in range(n):
        k = min(i, rng.randint(0, 3))
        # Mostly recent deps (a pipeline), some far back (fan-in from old work).
        deps = ";".join(
            f"t{rng.randrange(max(0, i - 50), i) if rng.random() < 0.8 else rng.randrange(i)}"
            for _ in range(k)
        )
        if i % 10 == 0:
            agent, command = "noop", "0"
        else:
            agent, command = "shell", f"echo step {i} && sleep 0"
        if quoted and agent == "shell":
            command = f'"{command}, quoted"'
        cpus = ("", "1", "2", "0.5")[i % 4]
        rows.append(
            f"t{i},{agent},{command},{deps},task {i},{pools[i % 5]},{cpus},{i % 7},"
            f"{'nightly;fast' if i % 3 == 0 else ''}\n"
        )
    return "".join(rows)


def _peak_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss keeps the parent's peak across exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: str) -> dict[str, float]:
    """Read one plan file in this process; return the timings and peak RSS."""
    from core import dag
    from core.plan_io import ImportStats, read_plan

    base = _peak_rss_mb()
    stats = ImportStats()
    t0 = time.perf_counter()
    plan = read_plan(path, stats=stats)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    dag.generations(plan)
    dag.critical_path(plan)
    dag.remaining_path_lengths(plan)
    analyses = time.perf_counter() - t1
    result = {
        "tasks": float(len(plan)),
        "parse_s": stats.parse_s,
        "validate_s": stats.validate_s,
        "dag_s": stats.dag_s,
        "read_plan_s": total,
        "analyses_s": analyses,
        "rss_after_imports_mb": base,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if len(plan) <= 100_000:
        t2 = time.perf_counter()
        dag.build_graph(plan)
        result["networkx_s"] = time.perf_counter() - t2
    return result


def _child(path: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", path],
        check=True, capture_output=True, text=True,
    )
    data: dict[str, float] = json.loads(out.stdout)
    return data


def main() -> None:
    """Run the benchmark and print one line per size and phase (best of repeats)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quoted", action="store_true", help="quote every shell command")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"plan_{n}.csv"
            path.write_text(make_plan(n, quoted=args.quoted), encoding="utf-8")
            runs = [_child(str(path)) for _ in range(args.repeat)]
            best = {key: min(r[key] for r in runs if key in r) for key in runs[0]}
            size_mb = path.stat().st_size / 1e6
            print(f"{n:>9,} tasks ({size_mb:.1f} MB)  best of {args.repeat}:")
            for key, value in best.items():
                if key != "tasks":
                    print(f"    {key:<22}{value:9.3f}")
            if n == 100_000:
                tek = shutil.which("tek", path=str(Path(sys.executable).parent)) or "tek"
                walls = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    done = subprocess.run([tek, "validate", str(path)], capture_output=True,
                                          text=True)
                    walls.append(time.perf_counter() - t0)
                    if done.returncode != 0:
                        sys.exit(f"tek validate failed ({done.returncode}):\n{done.stderr}")
                print(f"    {'tek_validate_process_s':<22}{min(walls):9.3f}")


if __name__ == "__main__":
    main()
