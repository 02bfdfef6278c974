"""A/B: ``tek run`` from two source trees, run alternately, against ``xargs -P``.

Tells a real change from machine noise: each round runs tree A, tree B and
xargs once on the same plan of N one-line shell tasks (``--command``, default
``true``), so load from elsewhere hits them alike; prints each one's best and
median wall time and its ratio to xargs. Make tree A with ``git worktree add
/tmp/old <commit>``; both trees use this interpreter (the project's venv).

Usage::

    .venv/bin/python bench/ab_trees.py /tmp/old . [--rounds 8] [--jobs 2000] [-j 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path, metavar="TREE")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("-j", type=int, default=8, dest="width")
    parser.add_argument("--command", default="true", help="each task's shell command")
    args = parser.parse_args()
    trees = [str(t.resolve()) for t in args.trees]
    for tree in trees:  # byte-code cached in both, as from a second run on (see shell_overhead.sh)
        subprocess.run([sys.executable, "-m", "compileall", "-q", f"{tree}/core", f"{tree}/tek_tui"],
                       check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.csv"
        plan.write_text("id,command\n" + "".join(f"t{i},{args.command}\n" for i in range(args.jobs)))
        times: dict[str, list[float]] = {name: [] for name in [*trees, "xargs"]}
        for _ in range(args.rounds):
            for name in times:
                if name == "xargs":
                    cmd = ["sh", "-c", f"seq {args.jobs} | xargs -P{args.width} -I{{}} sh -c '{args.command}'"]
                    env = dict(os.environ)
                else:
                    cmd = [sys.executable, "-c", "from tek_tui.cli import entry; entry()",
                           "run", "--plain", "-j", str(args.width), str(plan)]
                    env = dict(os.environ, PYTHONPATH=name,
                               TEK_HOME=str(Path(tmp) / f"home{trees.index(name)}"))
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, cwd=tmp, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append((time.perf_counter() - t0) * 1000)
    ref_best, ref_median = min(times["xargs"]), statistics.median(times["xargs"])
    print(f"{args.jobs} x `{args.command}` at -j {args.width}, {args.rounds} rounds"
          f" (load {os.getloadavg()[0]:.2f}):")
    for name, wall in times.items():
        best, median = min(wall), statistics.median(wall)
        print(f"  {name:<40} best {best:6.0f} ms ({best / ref_best:.2f} x xargs)"
              f"   median {median:6.0f} ms ({median / ref_median:.2f} x)")


if __name__ == "__main__":
    main()
