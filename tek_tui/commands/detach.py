"""``tek run -d``: start a run in the background and return once it is going.

The run is an ordinary ``tek run --plain`` in a new session (so closing the
terminal or the SSH connection does not stop it), with its output in a file.
It reports its run id on a pipe once its run is served (``core.run_socket``);
then this process prints the id, where the output goes and how to watch, and
exits 0. If the run fails before that (bad plan, bad flags, a full disk),
nothing was started: its one-line errors are printed here, exit 2 (130 if
it was interrupted), and with ``--json`` also ``{"errors": [...]}`` on stdout.

Until it is going, the child's stderr also comes to this process on the
same pipe (:class:`_CopyToStarter`), so its refusal is shown even when the
output file cannot be written (a full disk; the child's own ``tek: ...``
line would be lost there). The pipe carries that text, then ``NUL`` and the
run id line. A child that ended without a word gets one line here, with what
stopped its output file being written when something did.

The child learns the pipe from ``TEK_READY_FD``, which it takes out of its
environment at once (:func:`take_ready_fd`), so no task inherits it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

#: Environment variable naming the pipe a detached run reports its id on.
READY_ENV = "TEK_READY_FD"
#: How long to wait for a detached run to read its plan and start.
START_LIMIT_S = 300.0


#: Ends what the child said on the pipe; the run id line follows.
_READY_MARK = b"\0"


class _CopyToStarter(io.TextIOBase):
    """The started run's ``sys.stderr`` until its run is going (:func:`report_ready`).

    Everything written goes to the output file as before *and* to ``tek run
    -d`` on the ready pipe, so a refusal reaches it even when the file cannot
    be written (a full disk). A write the file refuses meanwhile is dropped
    rather than raised: the starter prints it. Once the run is going it is
    the file alone again, errors and all.
    """

    def __init__(self, stream: TextIO, fd: int) -> None:
        super().__init__()
        self.stream = stream
        self.fd: int | None = fd

    def write(self, text: str) -> int:
        fd = self.fd
        if fd is None:
            return self.stream.write(text)
        with contextlib.suppress(OSError):
            _write_all(fd, text.encode(errors="replace").replace(_READY_MARK, b""))
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()
        return len(text)

    def flush(self) -> None:
        if self.fd is None:
            self.stream.flush()
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.stream.errors


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def take_ready_fd() -> int | None:
    """The pipe to report this run's id on, when run by ``tek run -d`` (removed from the env).

    Until :func:`report_ready`, what this process writes to ``sys.stderr``
    also goes to ``tek run -d`` on that pipe.
    """
    value = os.environ.pop(READY_ENV, None)
    fd = int(value) if value and value.isdigit() else None
    if fd is not None and not isinstance(sys.stderr, _CopyToStarter):
        sys.stderr = _CopyToStarter(sys.stderr, fd)
    return fd


def report_ready(fd: int | None, run_id: str, served: bool) -> None:
    """Tell ``tek run -d`` that run ``run_id`` is going, and whether it is served (once)."""
    if fd is None:
        return
    copy = sys.stderr
    if isinstance(copy, _CopyToStarter) and copy.fd == fd:
        copy.fd = None  # anything holding it writes to the file alone from now on
        sys.stderr = copy.stream
    with contextlib.suppress(OSError):
        _write_all(fd, _READY_MARK + f"{run_id}{'' if served else ' unserved'}\n".encode())
    with contextlib.suppress(OSError):
        os.close(fd)


def detach(words: Sequence[str]) -> int:
    """Start ``tek <words>`` (without ``-d``) in the background; returns this command's exit code."""
    from core.errors import TekError
    from core.paths import run_dir, tek_home

    child_words = [w for w in words if w not in ("-d", "--detach")]
    if "--plain" not in child_words:
        child_words.append("--plain")
    folder = tek_home() / "detached"
    out_path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.out"
    try:
        folder.mkdir(exist_ok=True)
        out = out_path.open("wb")
    except OSError as exc:
        raise TekError(f"{exc.filename or out_path}: cannot make the run's output file: "
                       f"{exc.strerror or exc}") from None
    read_end, write_end = os.pipe()
    with out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tek_tui", *child_words], stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write_end,),
            env={**os.environ, READY_ENV: str(write_end)},
        )  # fmt: skip
    os.close(write_end)
    said, ready = _read_start(read_end)
    run_id, _, unserved = ready.partition(" ")
    if not run_id:
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still reading a huge plan: leave it be
            print(f"tek: the run has not started after {START_LIMIT_S:.0f} s; it goes on in "
                  f"the background (pid {proc.pid}), its output in {out_path}", file=sys.stderr)
            return 0
        return _not_started(code, said, out_path, as_json="--json" in child_words)
    final = _keep_output(out_path, run_dir(run_id))  # the child writes on through its open file
    if "--json" in child_words:  # for scripts: one object, the run's summary goes to its output
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


def _not_started(code: int, said: str, out_path: Path, *, as_json: bool) -> int:
    """Report a run that ended before it started, as it said why; the exit code (2, or 130)."""
    from core.store_space import why_unwritable

    try:
        written = out_path.read_text(errors="replace")
    except OSError:
        written = ""
    if not said.strip():  # it said nothing on the pipe (it died first): its file, if anything
        said = written
    if not said.strip():
        how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit code {code}"
        why = f"the run ended before it started ({how}), saying nothing"
        problem = why_unwritable(out_path.parent) if not written else None
        if problem is not None:  # e.g. a full disk: then what it said was lost
            why += f"; its output could not be written in {out_path.parent}: {problem.strerror}"
        said = f"tek: {why}\n"
    with contextlib.suppress(OSError):
        out_path.unlink(missing_ok=True)
    sys.stderr.write(said if said.endswith("\n") else said + "\n")
    if as_json:  # as every command does: the reasons on stdout too
        lines = [line[5:] for line in said.splitlines() if line.startswith("tek: ")]
        print(json.dumps({"errors": lines or [said.strip().splitlines()[-1]]}), flush=True)
    return 130 if code == 130 else 2


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _read_start(fd: int) -> tuple[str, str]:
    """What the child said on stderr, and its run id line ('' when it ended, or is slow, without one)."""
    data = b""
    deadline = time.monotonic() + START_LIMIT_S
    try:
        while not (_READY_MARK in data and data.endswith(b"\n")):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break  # still not started: report it as not started
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    said, _, ready = data.partition(_READY_MARK)
    if not ready.endswith(b"\n"):  # cut short: not a report that it is going
        ready = b""
    return said.decode(errors="replace"), ready.decode(errors="replace").strip()
