"""The floor under ``bench/shell_overhead.sh``: tek's spawn, with no engine around it.

Runs N ``sh -c true`` jobs at concurrency J four ways, R interleaved rounds,
and prints the best wall time of each (every figure is a whole process, from
exec to exit, as ``shell_overhead.sh`` measures them):

- ``xargs -P J`` (the reference);
- the *floor*: a fresh interpreter that imports polars (as ``tek run`` must,
  to read a plan) and then starts the jobs with tek's own spawn
  (``core.process.spawn``, vfork + exec on four threads) and waits for each
  with one epoll set: what any Python tool built like tek pays before doing
  any work of its own (no events, no log files, no state, no output);
- the same floor without polars;
- ``tek run --plain --no-journal -j J`` on the same jobs.

What tek adds over the floor is its engine; what the floor adds over xargs
is the interpreter, polars and spawning from a big process. Usage::

    .venv/bin/python bench/spawn_floor.py [--jobs 2000] [-j 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def floor_child(jobs: int, width: int, with_polars: bool) -> None:
    """Start ``jobs`` shells, at most ``width`` at a time, and wait for them all."""
    if with_polars:
        import polars  # noqa: F401  (imported for its cost, as tek run imports it)
    from core.process import Child, spawn

    env, cwd = dict(os.environ), Path.cwd()
    requests: queue.SimpleQueue[None] = queue.SimpleQueue()
    started: list[Child] = []
    lock = threading.Lock()
    wake_r, wake_w = os.pipe()

    def spawner() -> None:  # as tek's spawner threads: spawn, hand over, wake the loop
        while True:
            requests.get()
            child = spawn("true", env, cwd)
            with lock:
                started.append(child)
            os.write(wake_w, b"x")

    for _ in range(4):
        threading.Thread(target=spawner, daemon=True).start()
    poll = select.epoll()
    poll.register(wake_r, select.EPOLLIN)
    live: dict[int, Child] = {}
    asked = done = 0
    while done < jobs:
        while asked < jobs and asked - done < width:
            requests.put(None)
            asked += 1
        for fd, _ in poll.poll():
            if fd == wake_r:
                os.read(wake_r, 4096)
                with lock:
                    new, started[:] = started[:], []
                for child in new:
                    poll.register(child.out_fd, select.EPOLLIN)
                    live[child.out_fd] = child
            elif not os.read(fd, 65536):  # end of output: the job is over
                child = live.pop(fd)
                poll.unregister(fd)
                child.reap()
                child.close()
                done += 1


def wall(cmd: list[str], cwd: Path) -> float:
    """Seconds one run of ``cmd`` takes (output discarded); it must succeed."""
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("-j", type=int, default=8, dest="width")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=["polars", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        floor_child(args.jobs, args.width, args.child == "polars")
        return
    tek = os.environ.get("TEK", str(ROOT / ".venv" / "bin" / "tek"))
    # Byte-code cached, as from a second run on (see bench/shell_overhead.sh).
    for python in {sys.executable, str(Path(tek).with_name("python"))}:
        subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "core"), str(ROOT / "tek_tui")],
                       check=True, stdout=subprocess.DEVNULL)
    me = [sys.executable, str(Path(__file__).resolve())]
    size = ["--jobs", str(args.jobs), "-j", str(args.width)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plan = folder / "plan.csv"
        plan.write_text("id,command\n" + "".join(f"t{i},true\n" for i in range(args.jobs)))
        os.environ["TEK_HOME"] = str(folder / "home")
        xargs = f"seq {args.jobs} | xargs -P{args.width} -I{{}} sh -c true"
        runs = {
            "xargs": ["sh", "-c", xargs],
            "floor (python + polars + tek's spawn)": [*me, *size, "--child", "polars"],
            "floor without polars": [*me, *size, "--child", "bare"],
            "tek run --no-journal": [tek, "run", "--plain", "--no-journal", "-j", str(args.width),
                                     str(plan)],
        }  # fmt: skip
        best = {name: float("inf") for name in runs}
        for _ in range(args.rounds):
            for name, cmd in runs.items():
                best[name] = min(best[name], wall(cmd, folder))
    ref = best["xargs"]
    print(f"{args.jobs} x sh -c true at -j {args.width}, best of {args.rounds}"
          f" (load {os.getloadavg()[0]:.2f}):")  # fmt: skip
    for name, seconds in best.items():
        print(f"  {name:<40} {seconds * 1000:6.0f} ms  {seconds / ref:5.2f} x xargs")


if __name__ == "__main__":
    main()
