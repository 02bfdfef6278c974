"""``tek run -d``: start a run in the background and return once it is going.

The run is an ordinary ``tek run --plain`` in a new session (so closing the
terminal or the SSH connection does not stop it), with its output in a file.
It reports its run id on a pipe once its run is served (``core.run_socket``);
then this process prints the id, where the output goes and how to watch, and
exits 0. If the run fails before that (bad plan, bad flags), nothing was
started: its one-line errors are printed here with its exit code.

The child learns the pipe from ``TEK_READY_FD``, which it takes out of its
environment at once (:func:`take_ready_fd`), so no task inherits it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: Environment variable naming the pipe a detached run reports its id on.
READY_ENV = "TEK_READY_FD"
#: How long to wait for a detached run to read its plan and start.
START_LIMIT_S = 300.0


def take_ready_fd() -> int | None:
    """The pipe to report this run's id on, when run by ``tek run -d`` (removed from the env)."""
    value = os.environ.pop(READY_ENV, None)
    return int(value) if value and value.isdigit() else None


def report_ready(fd: int | None, run_id: str, served: bool) -> None:
    """Tell ``tek run -d`` that run ``run_id`` is going, and whether it is served (once)."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, f"{run_id}{'' if served else ' unserved'}\n".encode())
    with contextlib.suppress(OSError):
        os.close(fd)


def detach(words: Sequence[str]) -> int:
    """Start ``tek <words>`` (without ``-d``) in the background; returns this command's exit code."""
    from core.paths import run_dir, tek_home

    child_words = [w for w in words if w not in ("-d", "--detach")]
    if "--plain" not in child_words:
        child_words.append("--plain")
    folder = tek_home() / "detached"
    folder.mkdir(exist_ok=True)
    out_path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.out"
    read_end, write_end = os.pipe()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tek_tui", *child_words], stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write_end,),
            env={**os.environ, READY_ENV: str(write_end)},
        )  # fmt: skip
    os.close(write_end)
    run_id, _, unserved = _read_line(read_end).partition(" ")
    if not run_id:
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still reading a huge plan: leave it be
            print(f"tek: the run has not started after {START_LIMIT_S:.0f} s; it goes on in "
                  f"the background (pid {proc.pid}), its output in {out_path}", file=sys.stderr)
            return 0
        # It ended before its run started: say why, as it said it.
        sys.stderr.write(out_path.read_text(errors="replace"))
        out_path.unlink(missing_ok=True)
        return code or 2
    final = _keep_output(out_path, run_dir(run_id))  # the child writes on through its open file
    if "--json" in child_words:  # for scripts: one object, the run's summary goes to its output
        import json

        print(json.dumps({"run_id": run_id, "pid": proc.pid, "attachable": not unserved,
                          "output": str(final)}))
        return 0
    print(f"run {run_id} started in the background (pid {proc.pid})")
    if unserved:  # no socket: $TEK_HOME's path is too long for one, or its folder is not ours
        print("  it cannot be attached to: no socket could be made under $TEK_HOME/sockets")
    else:
        print(f"  watch and steer:  tek tui --attach {run_id}")
    print(f"  its output:       {final}")
    return 0


def _keep_output(out_path: Path, folder: Path) -> Path:
    """Move the output file into the run's folder, never over an earlier one (a resume's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        final = folder / ("tek-run.out" if n == 1 else f"tek-run.{n}.out")
        try:
            os.link(out_path, final)  # fails if it exists, unlike a rename
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: rename, if the name is free
            if final.exists():
                continue
            out_path.replace(final)
            return final
        out_path.unlink()
        return final
    raise AssertionError("unreachable")


def _read_line(fd: int) -> str:
    """What the child reports before closing the pipe ('' when it ended without a word)."""
    data = b""
    deadline = time.monotonic() + START_LIMIT_S
    try:
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break  # still not started: report it as not started
            chunk = os.read(fd, 256)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data.decode(errors="replace").strip()
