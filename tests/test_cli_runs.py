"""``tek runs``, ``tek show`` and ``tek logs`` over journals made from scripted events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from core.events import RunStatus, TaskChanged, TaskState
from core.journal import JournalRecorder
from core.paths import run_log_path
from core.store import Store, open_store
from tek_tui.cli import main
from tests.core.journal_helpers import (
    chain_plan,
    damage_a_middle_page,
    finished,
    flat,
    foreign_sqlite,
    newer_tek,
    ran,
    started,
)

RUN_A = "20260101-100000-aaaa"
RUN_B = "20260102-100000-bbbb"


def _record_runs(store_path: Path | None = None) -> None:
    with open_store(store_path) as store:
        plan = chain_plan(3)
        store.begin_run(RUN_A, plan, {"jobs": 4})
        rec = JournalRecorder(store, RUN_A)
        rec.record_sync(flat(started(RUN_A, 3), ran("t0"), ran("t1", ok=False)))
        rec.record_sync([TaskChanged("t2", TaskState.SKIPPED, 0, 103.0, reason="upstream t1 failed")])
        rec.record_sync([finished(RUN_A, RunStatus.FAILED)])
        store.begin_run(RUN_B, plan)
        rec = JournalRecorder(store, RUN_B)
        rec.record_sync(flat(started(RUN_B, 3), ran("t0"), ran("t1"), ran("t2"), finished(RUN_B)))
    for rid, tid in ((RUN_A, "t0"), (RUN_A, "t1"), (RUN_B, "t2")):
        path = run_log_path(rid, tid, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{rid} {tid} says hi\nbye ✓\n")


def test_runs_on_an_empty_home(capsys: pytest.CaptureFixture[str], tek_home: Path) -> None:
    assert main(["runs"]) == 0
    assert capsys.readouterr().out == "no runs yet\n"
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not (tek_home / "tek.db").exists()


def test_runs_lists_newest_first_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    _record_runs()
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "STARTED", "DURATION", "TASKS", "PLAN"]
    assert lines[1].startswith(RUN_B) and "succeeded" in lines[1] and "3 succeeded" in lines[1]
    assert lines[2].startswith(RUN_A) and "1 succeeded, 1 failed, 1 skipped" in lines[2]
    assert main(["runs", "--json", "-n", "1"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["id"], run["status"], run["counts"], run["duration_s"]) == (RUN_B, "succeeded", {"succeeded": 3}, 101.0)


def test_show_a_run_table_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _record_runs()
    assert main(["show", "20260101"]) == 0
    out = capsys.readouterr().out
    assert f"run      {RUN_A}  (failed)" in out
    table, _, hints = out.partition("\n\n")[2].partition("\n\n")
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows["t0"][:5] == ["t0", "succeeded", "1", "0", "1.5s"]
    assert rows["t1"][:4] == ["t1", "failed", "1", "1"] and out.count("exit code 1") == 1
    assert rows["t2"][:3] == ["t2", "skipped", "0"] and "upstream t1 failed" in out
    # what to do next, for a run that did not succeed
    assert hints.splitlines() == [f"why t1 failed:  tek logs {RUN_A} t1",
                                  f"rerun what did not succeed:  tek run --resume {RUN_A}"]
    # with another journal, the hints name it, so they work as printed
    _record_runs(tmp_path / "other journal.db")
    assert main(["show", RUN_A, "--store", str(tmp_path / "other journal.db")]) == 0
    flag = f"--store '{tmp_path / 'other journal.db'}'"
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"why t1 failed:  tek logs {RUN_A} t1 {flag}",
        f"rerun what did not succeed:  tek run --resume {RUN_A} {flag}"]
    assert main(["show", "last", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == RUN_B and [t["state"] for t in data["tasks"]] == ["succeeded"] * 3
    hist = data["tasks"][0]["history"][0]
    assert (hist["attempt"], hist["exit_code"], hist["gpus"], hist["metrics"]) == (1, 0, [0], {"loss": 0.25})


def test_logs_prints_the_attempt_log(capsys: pytest.CaptureFixture[str]) -> None:
    _record_runs()
    assert main(["logs", RUN_A, "t1"]) == 0
    assert capsys.readouterr().out == f"{RUN_A} t1 says hi\nbye ✓\n"
    assert main(["logs", "last", "t2", "--attempt", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{RUN_B} t2")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "nope"], "no run 'nope'"),
        (["logs", RUN_A, "zz"], "has no task 'zz'"),
        (["logs", RUN_A, "t2"], "'t2' of run 20260101-100000-aaaa has not started"),
        (["logs", RUN_A, "t0", "--attempt", "5"], "has no attempt 5 (attempts: 1)"),
        (["runs", "--store", "/nonexistent/x.db"], "/nonexistent/x.db: no journal here"),
    ],
)
def test_bad_references_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    _record_runs()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tek: ") and message in err


@pytest.mark.parametrize("make", [lambda p: p.write_bytes(os.urandom(3000)), foreign_sqlite, newer_tek], ids=["random", "foreign", "newer"])
@pytest.mark.parametrize("cmd", [["runs"], ["show", "last"], ["logs", "last", "a"]])
def test_bad_journal_file_exit_2_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], object], cmd: list[str]
) -> None:
    path = tmp_path / "j.db"
    make(path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert main([*cmd, "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tek: {path}: ")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


async def _read_line(stream: anyio.abc.ByteReceiveStream, buf: bytearray) -> str:
    while b"\n" not in buf:
        buf.extend(await stream.receive())
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode()


def _live_t0(db: Path, tasks: int, output: str) -> tuple[Store, JournalRecorder, Path]:
    """Run A of ``tasks`` chained tasks, written by this process (so live), ``t0`` running
    attempt 1, whose log holds ``output``; the store, its recorder and that log."""
    store = open_store(db)
    store.begin_run(RUN_A, chain_plan(tasks))
    rec = JournalRecorder(store, RUN_A)
    rec.record_sync([started(RUN_A, tasks), TaskChanged("t0", TaskState.RUNNING, 1, 1.0)])
    log = run_log_path(RUN_A, "t0", 1)
    log.parent.mkdir(parents=True)
    log.write_text(output)
    return store, rec, log


def _follower(db: Path, tek_home: Path) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `tek logs RUN_A t0 --follow` on ``db``."""
    cmd = [sys.executable, "-m", "tek_tui", "logs", RUN_A, "t0", "--follow", "--store", str(db)]
    return cmd, {**os.environ, "TEK_HOME": str(tek_home)}


async def test_logs_follow_tails_a_live_run_until_it_ends(tmp_path: Path, tek_home: Path) -> None:
    """The writer is this process (so the run is live); the follower is a subprocess."""
    db = tmp_path / "j.db"
    store, rec, log1 = _live_t0(db, 1, "one\n")
    cmd, env = _follower(db, tek_home)
    buf = bytearray()
    with anyio.fail_after(30):
        async with await anyio.open_process(cmd, env=env, stderr=subprocess.STDOUT) as proc:
            assert proc.stdout is not None
            assert await _read_line(proc.stdout, buf) == "one"
            with log1.open("a") as f:
                f.write("two\n")
            assert await _read_line(proc.stdout, buf) == "two"
            # the attempt fails and the task retries: the follower moves on
            rec.record_sync([TaskChanged("t0", TaskState.RETRYING, 1, 2.0, exit_code=1)])
            log2 = run_log_path(RUN_A, "t0", 2)
            log2.write_text("three\n")
            rec.record_sync([TaskChanged("t0", TaskState.RUNNING, 2, 3.0)])
            assert await _read_line(proc.stdout, buf) == "--- t0: attempt 2 ---"
            assert await _read_line(proc.stdout, buf) == "three"
            with log2.open("a") as f:
                f.write("four\n")
            rec.record_sync(flat(TaskChanged("t0", TaskState.SUCCEEDED, 2, 4.0, exit_code=0), finished(RUN_A)))
            assert await proc.wait() == 0
            rest = bytes(buf) + b"".join([chunk async for chunk in proc.stdout])
    assert rest == b"four\n"
    store.close()


async def test_logs_follow_stops_when_its_task_ends_while_the_run_goes_on(
    tmp_path: Path, tek_home: Path
) -> None:
    db = tmp_path / "j.db"
    store, rec, log = _live_t0(db, 2, "one\n")
    cmd, env = _follower(db, tek_home)
    buf = bytearray()
    with anyio.fail_after(30):
        async with await anyio.open_process(cmd, env=env, stderr=subprocess.STDOUT) as proc:
            assert proc.stdout is not None
            assert await _read_line(proc.stdout, buf) == "one"  # it has read the attempt
            with log.open("a") as f:
                f.write("two\n")
            rec.record_sync([TaskChanged("t0", TaskState.SUCCEEDED, 1, 2.0, exit_code=0),
                             TaskChanged("t1", TaskState.RUNNING, 1, 2.0)])  # the run goes on
            assert await proc.wait() == 0
            rest = bytes(buf) + b"".join([chunk async for chunk in proc.stdout])
    assert rest == b"two\n"
    store.close()


async def test_logs_follow_starts_the_next_attempt_on_a_line_of_its_own(
    tmp_path: Path, tek_home: Path
) -> None:
    """Logs keep a task's bytes: one may end without a newline before the next attempt."""
    db = tmp_path / "j.db"
    store, rec, _log = _live_t0(db, 1, "out-1")
    cmd, env = _follower(db, tek_home)
    with anyio.fail_after(30):
        async with await anyio.open_process(cmd, env=env, stderr=subprocess.STDOUT) as proc:
            assert proc.stdout is not None
            assert await proc.stdout.receive() == b"out-1"
            rec.record_sync([TaskChanged("t0", TaskState.RETRYING, 1, 2.0, exit_code=1)])
            run_log_path(RUN_A, "t0", 2).write_text("out-2\n")
            rec.record_sync(flat(TaskChanged("t0", TaskState.RUNNING, 2, 3.0),
                                 TaskChanged("t0", TaskState.SUCCEEDED, 2, 4.0, exit_code=0),
                                 finished(RUN_A)))
            assert await proc.wait() == 0
            rest = b"".join([chunk async for chunk in proc.stdout])
    assert rest == b"\n--- t0: attempt 2 ---\nout-2\n"
    store.close()


def test_logs_follow_of_a_task_that_never_ran_says_so_at_once(tmp_path: Path) -> None:
    """Skipped while the run goes on: no waiting for the run's end."""
    db = tmp_path / "j.db"
    with open_store(db) as store:
        store.begin_run(RUN_A, chain_plan(2))
        JournalRecorder(store, RUN_A).record_sync([
            started(RUN_A, 2), TaskChanged("t0", TaskState.RUNNING, 1, 1.0),
            TaskChanged("t1", TaskState.SKIPPED, 0, 1.0, reason="skipped by user")])
        store._conn.execute(f"UPDATE runs SET pid = {os.getpid()}")  # the run is live
        cmd = [sys.executable, "-m", "tek_tui", "logs", RUN_A, "t1", "-f", "--store", str(db)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    assert (done.returncode, done.stderr) == (2, f"tek: task 't1' of run {RUN_A} never started\n")


def test_logs_follow_stops_when_the_writer_died(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "j.db"
    plan = chain_plan(1)
    with open_store(db) as store:
        store.begin_run(RUN_A, plan)
        JournalRecorder(store, RUN_A).record_sync([started(RUN_A, 1), TaskChanged("t0", TaskState.RUNNING, 1, 1.0)])
        store._conn.execute("UPDATE runs SET pid = 2147483000")
    log = run_log_path(RUN_A, "t0", 1)
    log.parent.mkdir(parents=True)
    log.write_text("partial\n")
    cmd = [sys.executable, "-m", "tek_tui", "logs", "last", "t0", "-f", "--store", str(db)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    assert (done.returncode, done.stdout) == (0, "partial\n")
    assert done.stderr == (f"tek: run {RUN_A} stopped before attempt 1 of t0 ended "
                           "(its process died: tek run --resume reruns it)\n")
    assert main(["runs", "--store", str(db)]) == 0
    assert "interrupted" in capsys.readouterr().out


# ------------------------------------------------------- tek run + journal


def _shell_plan(folder: Path, b_command: str = "echo b >> out.txt") -> Path:
    plan = folder / "plan.csv"
    plan.write_text(
        "id,command,deps\n"
        "a,echo a >> out.txt,\n"
        f"b,{b_command},a\n"
        "c,echo c >> out.txt,b\n"
        "d,echo d >> out.txt,\n"
    )
    return plan


def _attempts_by_task(tek_home: Path) -> dict[str, int]:
    with open_store(tek_home / "tek.db", create=False) as store:
        _, tasks, _ = store.read_run(store.resolve_run("last"))
    return {t.task_id: t.attempts for t in tasks}


def test_tek_run_journals_and_resume_reruns_changed_rows_and_downstream(
    tmp_path: Path, tek_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _shell_plan(tmp_path)
    assert main(["run", str(plan), "--plain"]) == 0
    assert _attempts_by_task(tek_home) == {"a": 1, "b": 1, "c": 1, "d": 1}
    capsys.readouterr()

    _shell_plan(tmp_path, "echo B >> out.txt")  # b's row changed
    assert main(["run", str(plan), "--resume", "--plain"]) == 0
    assert "2 to run, 2 already succeeded" in capsys.readouterr().err
    assert (tmp_path / "out.txt").read_text().split()[4:] == ["B", "c"]
    assert _attempts_by_task(tek_home) == {"a": 1, "b": 2, "c": 2, "d": 1}

    assert main(["run", str(plan), "--from", "c", "--plain"]) == 0  # --from implies --resume last
    assert (tmp_path / "out.txt").read_text().split()[6:] == ["c"]
    assert _attempts_by_task(tek_home) == {"a": 1, "b": 2, "c": 3, "d": 1}
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["status"], run["resumes"], run["counts"]) == ("succeeded", 2, {"succeeded": 4})
    assert run["options"]["fail_fast"] is False


def test_tek_run_no_journal_records_nothing(tmp_path: Path, tek_home: Path) -> None:
    assert main(["run", str(_shell_plan(tmp_path)), "--no-journal", "--plain"]) == 0
    assert not (tek_home / "tek.db").exists()


def test_tek_run_store_flag(tmp_path: Path, tek_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "elsewhere.db"
    assert main(["run", str(_shell_plan(tmp_path)), "--store", str(db), "--plain"]) == 0
    assert db.exists() and not (tek_home / "tek.db").exists()
    capsys.readouterr()
    assert main(["show", "last", "--store", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"succeeded": 4}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "{plan}", "--resume", "--no-journal"], "need the journal"),
        (["run", "--plain"], "PLAN is required"),
        (["run", "--resume", "last"], "nothing to resume"),
        (["run", "{plan}", "--resume"], "no run of "),
        (["run", "{plan}", "--resume", "nope"], "no run 'nope'"),
        (["run", "{plan}", "--store", "{bad}"], "not an SQLite database"),
    ],
)
def test_tek_run_journal_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    plan = _shell_plan(tmp_path)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00garbage" * 100)
    before = bad.read_bytes()
    if "no run" in message:  # a journal without that run (with none, it is "no journal here")
        from core.store import open_store

        open_store().close()
    args = [a.format(plan=plan, bad=bad) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tek: ") and message in err
    assert bad.read_bytes() == before and not (tmp_path / "out.txt").exists()


def test_tek_run_from_unknown_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _shell_plan(tmp_path)
    assert main(["run", str(plan), "--plain"]) == 0
    capsys.readouterr()
    assert main(["run", str(plan), "--from", "zz"]) == 2
    assert "--from: no task 'zz'" in capsys.readouterr().err


def test_resume_json_keeps_the_results_of_tasks_that_had_succeeded(
    tmp_path: Path, tek_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = _shell_plan(tmp_path)
    assert main(["run", str(plan), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["tasks"]
    _shell_plan(tmp_path, "echo B >> out.txt")  # b (and c downstream) rerun; a and d are kept
    assert main(["run", str(plan), "--resume", "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)["tasks"]
    for tid in ("a", "d"):  # not run again: the earlier attempt's results
        assert tasks[tid]["state"] == "succeeded"
        assert tasks[tid]["exit_code"] == 0
        assert tasks[tid]["duration_s"] == pytest.approx(first[tid]["duration_s"], abs=1e-3)
    assert tasks["b"]["attempts"] == 2 and tasks["b"]["exit_code"] == 0


@pytest.mark.parametrize("resume", [[], ["--resume", "last"]], ids=["new-run", "resume"])
def test_a_damaged_journal_is_never_written(
    tmp_path: Path, tek_home: Path, capsys: pytest.CaptureFixture[str], resume: list[str]
) -> None:
    """A page damaged deep in the file: `tek run` stops before any task, exit 2, file as it was.

    The header and the run rows are fine, so opening the journal and reading
    the run to resume succeed; only a check of every page finds the damage.
    """
    db = tmp_path / "j.db"
    marker = tmp_path / "ran"
    rows = [f"t{i},echo t{i} >> {marker}" for i in range(300)]
    plan_file = tmp_path / "plan.csv"
    plan_file.write_text("id,command\n" + "\n".join(rows) + "\n")
    for _ in range(3):
        assert main(["run", "--plain", "--store", str(db), str(plan_file)]) == 0
    marker.unlink()
    damage_a_middle_page(db)
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    capsys.readouterr()
    assert main(["run", "--plain", "--store", str(db), str(plan_file), *resume]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tek: {db}: the journal is damaged (")
    assert ".recover" in err
    assert not marker.exists()  # no task ran
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    # and the readers say so, rather than show a run with most of its tasks gone
    for reader in (["runs"], ["show", "last"], ["logs", "last", "t0"]):
        assert main([*reader, "--store", str(db)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"tek: {db}: the journal is damaged (")
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_runs_filters_refuse_bad_values_and_say_what_matched_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _record_runs()
    assert main(["runs", "-n", "-1"]) == 2
    assert capsys.readouterr().err == "tek: -n must be 0 (all) or more (got -1)\n"
    assert main(["runs", "--plan", "nope.csv"]) == 0
    assert capsys.readouterr().out == "no runs of nope.csv\n"
    assert main(["prune", "--keep", "0", "--plan", "nope.csv"]) == 0
    assert capsys.readouterr().out == "no runs of nope.csv\n"


def test_a_killed_run_not_yet_reaped_reads_as_interrupted_with_its_tasks(
    served_run: tuple[subprocess.Popen[bytes], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILLed, and its parent has not waited for it (a zombie): not live, resumable,
    and its tasks read `interrupted`, not `running`."""
    import signal

    proc, _socket = served_run
    deadline = time.monotonic() + 30
    while True:  # both tasks running, as the journal has it (bounded poll)
        with open_store() as store:
            (run,) = store.list_runs()
        if run.counts == {"running": 2}:
            break
        assert time.monotonic() < deadline, run.counts
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1][0] != "Z":  # a zombie now
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert main(["runs", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert (data["status"], data["counts"]) == ("interrupted", {"interrupted": 2})
    assert main(["show", run.id, "--json"]) == 0
    assert {t["state"] for t in json.loads(capsys.readouterr().out)["tasks"]} == {"interrupted"}
    proc.wait()


def test_a_resume_stops_what_a_killed_run_left_running_in_a_sub_plan(
    tmp_path: Path, tek_home: Path
) -> None:
    """The sub-plan's processes are not the plan task's own: found by their run id."""
    import signal

    import psutil

    (tmp_path / "sub.csv").write_text("id,command\nnap,sleep 60\n")
    plan = tmp_path / "p.csv"
    plan.write_text("id,agent,command\nsp,plan,sub.csv\n")
    proc = subprocess.Popen([sys.executable, "-m", "tek_tui", "run", "--plain", str(plan)],
                            env={**os.environ, "TEK_HOME": str(tek_home)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    while "start sp/nap" not in proc.stdout.readline():  # its sub-task is running
        assert proc.poll() is None
    naps = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "60"]
            and p.environ().get("TEK_RUN_ID", "").endswith("/sp")]
    assert len(naps) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert naps[0].is_running()  # it outlived tek
    (tmp_path / "sub.csv").write_text("id,command\nnap,true\n")
    done = subprocess.run([sys.executable, "-m", "tek_tui", "run", "--plain", "--resume", "last",
                           str(plan)], env={**os.environ, "TEK_HOME": str(tek_home)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "(1 still running: stopped)" in done.stderr, done.stderr
    assert not naps[0].is_running()

