"""What the shell fast path must keep: direct spawn, lazy log, plain view.

The spawn must give the child exactly what Popen gave it (stdin /dev/null,
its own session, only stdio open, the given environment and cwd) and raise
Popen's OSError when it cannot start; a log file is only made by output
and then keeps every line; the plain view
batches its writes and still shows a failure's last output.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from core.logsink import AttemptLog
from core.process import spawn


async def _run(command: str, env: dict[str, str], cwd: Path) -> tuple[int, bytes]:
    child = spawn(command, env, cwd)
    out = b""
    with anyio.fail_after(10):
        while True:
            await anyio.wait_readable(child.out_fd)
            try:
                data = os.read(child.out_fd, 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                break
            out += data
    child.reap()  # its output ended: the leader has exited, or is exiting
    child.close()
    assert child.returncode is not None
    return child.returncode, out


async def test_child_gets_env_cwd_devnull_own_session_and_no_extra_fds(tmp_path: Path) -> None:
    marker = tmp_path / "leak-marker"
    leak = os.open(marker, os.O_CREAT | os.O_WRONLY)
    os.set_inheritable(leak, True)  # close_fds must still keep it from the child
    script = (
        'echo "X=$X"; pwd; read -r line; echo "read=$?"; '
        'ps -o sid= -p $$ | tr -d " "; echo $$; echo err >&2; '
        'for f in /proc/$$/fd/*; do readlink "$f"; done; exit 7'
    )
    try:
        code, out = await _run(script, {"X": "é", "PATH": os.environ["PATH"]}, tmp_path)
    finally:
        os.close(leak)
    lines = out.decode().splitlines()
    assert code == 7
    assert lines[0] == "X=é"
    assert lines[1] == str(tmp_path)
    assert lines[2] == "read=1"  # stdin is /dev/null: end of file at once
    assert lines[3] == lines[4]  # leads its own session
    assert lines[5] == "err"
    fd_targets = lines[6:]
    assert fd_targets[0] == "/dev/null"
    assert str(marker) not in fd_targets


async def test_killed_child_reports_the_signal(tmp_path: Path) -> None:
    code, _ = await _run("kill -9 $$", {}, tmp_path)
    assert code == -9


async def test_wait_for_a_leader_that_outlives_its_output() -> None:
    from core.engine import RunOptions
    from tests.core.engine_helpers import run_plan, shell

    task = shell("t", "exec >/dev/null 2>&1; sleep 0.2; exit 4")
    summary, _ = await run_plan([task], RunOptions(jobs=1, memory_floor_mb=0))
    assert summary.tasks["t"].exit_code == 4


def test_missing_cwd_is_oserror_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        spawn("true", {}, tmp_path / "missing")
    assert str(tmp_path / "missing") in str(info.value)


def test_bad_env_name_is_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="illegal environment variable name"):
        spawn("true", {"A=B": "x"}, tmp_path)


def test_a_log_is_made_by_the_first_line_only(tmp_path: Path) -> None:
    silent = AttemptLog(tmp_path / "run" / "s.1.log")
    silent.close()
    assert not silent.path.exists() and not silent.error
    log = AttemptLog(tmp_path / "run" / "t.1.log", live_limit=1)
    log.write_lines(["a", "b"])
    log.write_line("c")
    assert log.take() == (["a"], 2)
    log.close()
    assert log.path.read_text() == "a\nb\nc\n"


async def test_plain_view_writes_in_order_and_reads_a_failure_tail_late() -> None:
    """The plain view writes its lines in one go at flush; a failed attempt's
    output that arrives after its (coalesced) state change is still shown."""
    import io
    import time
    from types import SimpleNamespace

    from core.events import OutputLines, TaskChanged, TaskState
    from tek_tui.live_view import RunView

    snap = SimpleNamespace(run_id="r", tasks=[SimpleNamespace(id="a", state=TaskState.PENDING)])
    out = io.StringIO()
    view = RunView(SimpleNamespace(snapshot=lambda: snap), live=False, quiet=False, out=out)  # type: ignore[arg-type]
    now = time.time()
    events = [
        TaskChanged("a", TaskState.RUNNING, 1, now),
        TaskChanged("a", TaskState.FAILED, 1, now, 3, "exit code 3"),
        OutputLines("a", 1, ("boom",)),
    ]

    async def stream():  # type: ignore[no-untyped-def]
        for ev in events:
            yield ev

    await view.consume(stream())
    assert out.getvalue() == ""  # nothing written before the flush
    view.flush()
    lines = [ln.split(" ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines == ["start a (attempt 1)", "FAIL  a: exit code 3", "        | boom"]


async def test_plain_view_prints_a_start_line_for_an_attempt_whose_running_was_coalesced() -> None:
    import io
    from types import SimpleNamespace

    from core.events import TaskChanged, TaskState
    from tek_tui.live_view import RunView

    snap = SimpleNamespace(run_id="r", tasks=[SimpleNamespace(id=t, state=TaskState.PENDING)
                                              for t in "abcd"])
    out = io.StringIO()
    view = RunView(SimpleNamespace(snapshot=lambda: snap), live=False, quiet=False, out=out)  # type: ignore[arg-type]
    events = [
        TaskChanged("a", TaskState.RUNNING, 1, 0.0),
        TaskChanged("a", TaskState.SUCCEEDED, 1, 0.0),
        TaskChanged("b", TaskState.SUCCEEDED, 1, 0.0),  # its RUNNING was folded into this
        TaskChanged("c", TaskState.RETRYING, 1, 0.0, None, "exit code 1"),
        TaskChanged("c", TaskState.CANCELLED, 1, 0.0, None, "cancelled by user"),
        TaskChanged("d", TaskState.SKIPPED, 0, 0.0, None, "upstream c cancelled"),
    ]

    async def stream():  # type: ignore[no-untyped-def]
        for ev in events:
            yield ev

    await view.consume(stream())
    view.flush()
    lines = [ln.split(" ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines == [
        "start a (attempt 1)", "ok    a",
        "start b (attempt 1)", "ok    b",
        "start c (attempt 1)", "retry c: exit code 1", "CANCEL c: cancelled by user",
        "skip  d: upstream c cancelled",
    ]


def test_a_group_of_only_zombies_is_not_alive() -> None:
    """The grace wait ends when what is left of a task's group is zombies nobody reaps."""
    import signal
    import subprocess
    import sys
    import time

    from core.process import Child

    script = (
        "import os, time\n"
        "a = os.fork()\n"
        "if a == 0:\n"
        "    os.setpgid(0, 0)\n"
        "    b = os.fork()\n"
        "    if b == 0:\n"
        "        os.setpgid(0, 0); time.sleep(30); os._exit(0)\n"
        "    print(os.getpid(), b, flush=True)\n"
        "    os._exit(0)\n"
        "time.sleep(30)  # never reaps a: it stays a zombie, alone in its group\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    a, b = map(int, holder.stdout.readline().split())
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{a}/stat").read_text().split(") ")[1][0] != "Z":  # bounded poll
            assert time.monotonic() < deadline
            time.sleep(0.01)
        zombies, live = Child(a, -1), Child(b, -1)
        assert not zombies.group_alive()
        assert live.group_alive()
        zombies.close()
        live.close()
    finally:
        os.kill(b, signal.SIGKILL)
        holder.kill()
        holder.wait()
