"""``tek run`` end to end in a subprocess: output modes, flags, exit codes, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import psutil
import pytest
from anyio.abc import Process

TEK = [sys.executable, "-m", "tek_tui.cli"]


def write_plan(path: Path, rows: list[str]) -> Path:
    path.write_text("id,agent,command,deps,retries,timeout_s\n" + "\n".join(rows) + "\n")
    return path


def tek(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEK, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return write_plan(tmp_path / "p.csv", [
        "a,shell,echo hello,,,",
        "b,shell,echo boom; exit 3,a,,",
        "c,noop,,a,,",
        "d,shell,echo never,b,,",
    ])  # fmt: skip


def test_plain_lines_and_exit_code_1(plan: Path) -> None:
    r = tek("run", str(plan))
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.endswith("start a (attempt 1)") for ln in lines)
    assert any(ln.endswith("FAIL  b: exit code 3") for ln in lines)
    assert "         | boom" in lines
    assert any(ln.endswith("skip  d: upstream b failed") for ln in lines)
    assert "failed: 2 succeeded, 1 failed, 1 skipped" in lines[-1]
    assert all(ln[2] == ":" and ln[5] == ":" for ln in lines if not ln.startswith(" "))


def test_plain_lines_show_every_attempt_with_its_own_output(tmp_path: Path) -> None:
    """Retries with no backoff: one start and one end line per attempt, each with its output."""
    p = tmp_path / "r.csv"
    p.write_text("id,command,retries,retry_backoff_s\nc,echo try $TEK_ATTEMPT; exit 1,3,0\n")
    r = tek("run", str(p))
    assert r.returncode == 1
    # without the time stamps, the first line (the run and its date) and the summary
    lines = [ln[9:] for ln in r.stdout.splitlines()[1:-1]]
    expected = []
    for n in (1, 2, 3, 4):
        expected += [f"start c (attempt {n})", "retry c: exit code 1" if n < 4 else
                     "FAIL  c: exit code 1", f"| try {n}"]
    assert lines == expected


def test_json_summary(plan: Path) -> None:
    r = tek("run", "--json", "-j", "2", str(plan))
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["status"] == "failed" and data["run_id"]
    assert data["counts"]["succeeded"] == 2 and data["counts"]["skipped"] == 1
    assert isinstance(data["wall_s"], float)
    assert data["tasks"]["b"] == {**data["tasks"]["b"], "state": "failed", "attempts": 1,
                                  "exit_code": 3}
    assert set(data["tasks"]["a"]) >= {"state", "attempts", "exit_code", "duration_s"}


def test_success_is_exit_0(tmp_path: Path) -> None:
    p = write_plan(tmp_path / "ok.csv", ["a,shell,true,,,", "b,noop,,a,,"])
    assert tek("run", "--fail-fast", "--cpus", "2", "--gpus", "0", "--memory-mb", "512",
               "--pool", "shell=1", str(p)).returncode == 0


def test_dry_run_prints_start_order(plan: Path) -> None:
    r = tek("run", "--dry-run", str(plan))
    assert r.returncode == 0
    assert [ln.split()[1] for ln in r.stdout.splitlines()] == ["a", "b", "c", "d"]
    assert json.loads(tek("run", "--dry-run", "--json", str(plan)).stdout) == {
        "order": ["a", "b", "c", "d"]}


@pytest.mark.parametrize("mode", [[], ["--dry-run"]])
def test_a_task_that_could_never_start_is_bad_input(tmp_path: Path, mode: list[str]) -> None:
    """More GPUs than the machine has: exit 2 before anything runs, naming the row."""
    p = tmp_path / "g.csv"
    p.write_text(f"id,command,gpus\na,touch {tmp_path / 'ran'},0\ng,true,2\n")
    r = tek("run", *mode, "--gpus", "1", str(p))
    assert r.returncode == 2
    assert r.stderr == (f"tek: {p}:3: gpus: task g needs 2 GPUs; capacity is 1 (--gpus), "
                        "so it could never start\n")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["-j", "0"], "tek: -j 0: must be at least 1"),
    (["-j", "x"], "tek: -j x: must be a whole number"),
    (["--pool", "shell"], "tek: --pool shell: expected NAME=SIZE"),
    (["--pool", "shell=x"], "tek: --pool shell=x: SIZE must be a whole number"),
    (["--pool", "shell=0"], "tek: --pool shell=0: SIZE must be at least 1"),
    (["--pool", "gpu=2"], "tek: --pool gpu: no task uses this pool"),
    (["--cpus", "-1"], "tek: --cpus -1: must be at least"),
    (["--memory-mb", "lots"], "tek: --memory-mb lots: must be a whole number"),
])  # fmt: skip
def test_bad_flag_is_one_line_exit_2(plan: Path, args: list[str], message: str) -> None:
    r = tek("run", *args, str(plan))
    assert r.returncode == 2
    assert r.stderr.startswith(message) and len(r.stderr.splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_bad_plan_is_exit_2(tmp_path: Path) -> None:
    r = tek("run", str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and r.stderr.startswith("tek: ") and "Traceback" not in r.stderr


def survivors(home: str) -> list[int]:
    """Live processes started by tek runs of this test (they inherit $TEK_HOME)."""
    out = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.pid != me and proc.info["status"] != psutil.STATUS_ZOMBIE and (
                proc.environ().get("TEK_HOME") == home and proc.environ().get("TEK_TASK_ID")
            ):
                out.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return out


async def started(proc: Process, count: int) -> None:
    """Read tek's plain output until ``count`` tasks have started."""
    assert proc.stdout is not None
    seen, buf = 0, b""
    with anyio.fail_after(20):
        while seen < count:
            buf += await proc.stdout.receive()
            seen = buf.count(b" start ")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_signal_stops_tasks_and_exits_130(tmp_path: Path, sig: signal.Signals) -> None:
    p = write_plan(tmp_path / "s.csv", [
        "a,shell,sleep 100 & sleep 100; wait,,,",
        "b,shell,sleep 100,,,",
        "c,shell,echo later,a,,",
    ])  # fmt: skip
    home = os.environ["TEK_HOME"]
    async with await anyio.open_process([*TEK, "run", "--grace", "2", str(p)]) as proc:
        await started(proc, 2)
        proc.send_signal(sig)
        with anyio.fail_after(15):
            code = await proc.wait()
        assert proc.stderr is not None
        err = (await proc.stderr.receive()).decode()
    assert code == 130, err
    assert f"tek: {sig.name}: stopping tasks" in err
    assert survivors(home) == []


async def test_second_interrupt_kills_at_once(tmp_path: Path) -> None:
    trapped = tmp_path / "trapped"
    p = write_plan(tmp_path / "s.csv",
                   [f"a,shell,trap '' TERM; touch {trapped}; while :; do sleep 0.05; done,,,"])
    home = os.environ["TEK_HOME"]
    async with await anyio.open_process([*TEK, "run", "--grace", "60", str(p)]) as proc:
        await started(proc, 1)
        with anyio.fail_after(10):  # SIGTERM must find the trap set
            while not trapped.exists():  # noqa: ASYNC110 - made by another process
                await anyio.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        with anyio.move_on_after(0.5):
            await proc.wait()
        assert proc.returncode is None  # the task ignores SIGTERM: tek waits out the grace
        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await proc.wait()
    assert code == 130
    assert survivors(home) == []


def test_config_gives_defaults_and_flags_win(tmp_path: Path) -> None:
    config = Path(os.environ["TEK_HOME"]) / "config.toml"
    p = write_plan(tmp_path / "c.csv", ["a,shell,sleep 0.3,,,", "b,shell,sleep 0.3,,,"])
    config.write_text('theme = "x"\nrun_jobs = 1\n')
    data = json.loads(tek("run", "--json", str(p)).stdout)
    assert data["wall_s"] >= 0.55  # one at a time
    config.write_text("run_jobs = 0\n")
    r = tek("run", str(p))
    assert r.returncode == 2 and f"{config}: run_jobs = 0: must be at least 1" in r.stderr
    assert tek("run", "-j", "2", str(p)).returncode == 0  # the flag wins over a bad config
    config.write_text("run_jobz = 3\n")  # a typo is not ignored
    r = tek("run", str(p))
    assert r.returncode == 2 and f"{config}: run_jobz: not a setting of tek run" in r.stderr
    config.write_text("run_jobs = 4\n[extra]\nlist = [1,2\n")
    r = tek("run", str(p))
    assert r.returncode == 2 and r.stderr.startswith(f"tek: {config}: not valid TOML: ")
    assert len(r.stderr.splitlines()) == 1


def test_tek_run_imports_neither_torch_nor_textual(plan: Path) -> None:
    code = (
        "import sys\nfrom tek_tui.cli import main\n"
        f"rc = main(['run', '--no-journal', {str(plan)!r}])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'textual'})\n"
        "print(rc, heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.splitlines()[-1] == "1 []", r.stdout + r.stderr


def test_live_view_renders_progress_running_tasks_and_failures() -> None:
    from rich.console import Console

    from core.events import (
        Event,
        OutputLines,
        Progress,
        RunSnapshot,
        RunStatus,
        TaskChanged,
        TaskInfo,
        TaskState,
    )
    from tek_tui.run_watch import RunWatch, render

    class Client:
        def snapshot(self) -> RunSnapshot:
            tasks = tuple(TaskInfo(t, t, "shell", "shell", ()) for t in ("train", "bad", "ok"))
            return RunSnapshot("r1", "p.csv", RunStatus.RUNNING, tasks)

    watch = RunWatch(Client())  # type: ignore[arg-type]
    events: list[Event] = [
        TaskChanged("train", TaskState.RUNNING, 1, 0.0),
        Progress("train", 1, 0.0, {"epoch": 3, "loss": 0.123456}, 0.3),
        TaskChanged("bad", TaskState.RUNNING, 1, 0.0),
        OutputLines("bad", 1, ("step 1", "disk full")),
        TaskChanged("bad", TaskState.FAILED, 1, 0.0, 1, "exit code 1"),
        TaskChanged("ok", TaskState.SUCCEEDED, 1, 0.0),
    ]
    for ev in events:
        watch.apply(ev)
    console = Console(width=100, record=True, color_system=None)
    console.print(render(watch, 100))
    text = console.export_text()
    assert "run r1" in text and "2/3" in text
    assert "failed 1" in text and "running 1" in text and "succeeded 1" in text
    assert "train" in text and "epoch=3 loss=0.1235 %=30" in text
    assert "bad" in text and "exit code 1  disk full" in text


async def test_low_memory_pause_is_shown(tmp_path: Path) -> None:
    p = write_plan(tmp_path / "m.csv", ["a,shell,echo never,,,"])
    # Just below total memory: accepted (a floor at or above it is bad input)
    # and above what is available, so admission pauses at once.
    total_mib = psutil.virtual_memory().total >> 20
    async with await anyio.open_process(
        [*TEK, "run", "--memory-floor-mb", str(total_mib - 1), str(p)]
    ) as proc:
        assert proc.stdout is not None
        buf = b""
        with anyio.fail_after(20):
            while b"dispatch paused: available memory" not in buf:
                buf += await proc.stdout.receive()
        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            assert await proc.wait() == 130
    assert b"start a" not in buf


def test_more_tasks_at_once_than_the_soft_open_file_limit(tmp_path: Path) -> None:
    import resource

    def low_limit() -> None:  # a soft limit of 96 (the hard one stays)
        resource.setrlimit(resource.RLIMIT_NOFILE, (96, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 400:
        pytest.fail("this test needs a hard limit on open files of at least 400")
    plan = tmp_path / "wide.csv"
    plan.write_text("id,command,cpus\n" + "".join(f"s{i},sleep 0.5,0.001\n" for i in range(150)))
    r = subprocess.run([*TEK, "run", "--json", "-j", "150", str(plan)], capture_output=True,
                       text=True, timeout=120, preexec_fn=low_limit)
    assert r.returncode == 0, r.stderr[-500:]
    counts = {state: n for state, n in json.loads(r.stdout)["counts"].items() if n}
    assert counts == {"succeeded": 150}  # was: 80 failed, "Too many open files"


def test_more_tasks_at_once_than_the_hard_open_file_limit_allows_wait_their_turn(
    tmp_path: Path,
) -> None:
    import resource

    def low_limit() -> None:  # soft and hard 64: room for 12 tasks at once
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    plan = tmp_path / "wide.csv"
    plan.write_text("id,command\n" + "".join(f"s{i},sleep 0.1\n" for i in range(60)))
    r = subprocess.run([*TEK, "run", "--json", "-j", "60", str(plan)], capture_output=True,
                       text=True, timeout=120, preexec_fn=low_limit)
    assert r.returncode == 0, r.stderr[-500:]
    assert "the open-file limit (64) lets 12 shell tasks run at once" in r.stderr
    counts = {state: n for state, n in json.loads(r.stdout)["counts"].items() if n}
    assert counts == {"succeeded": 60}  # was: most failed, "Too many open files"
