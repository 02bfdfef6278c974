"""The command line as users and scripts meet it: bad input, closed pipes, odd homes.

Each test here failed before the fix it names (the CLI audit): one ``tek:``
line and exit 2 for bad input and an unusable ``$TEK_HOME``, no traceback
when the reader of stdout goes away, no escape codes or rich markup taken
from task output, and messages that stay one printable line.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

TEK = [sys.executable, "-m", "tek_tui.cli"]


def tek(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEK, *args], capture_output=True, text=True, timeout=60, env=env)


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The single ``tek:`` line of a bad-input exit (and nothing else)."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tek: "), r.stderr
    return lines[0]


@pytest.fixture
def ok_plan(tmp_path: Path) -> Path:
    path = tmp_path / "ok.csv"
    path.write_text("id,command,deps\na,echo A,\nb,echo B,a\n")
    return path


# ----------------------------------------------------------- flags and plans


@pytest.mark.parametrize("args", [["runs", "-n", "x"], ["logs", "last", "a", "--attempt", "x"],
                                  ["run", "--frobnicate", "p.csv"], ["models", "export", "--to"]])
def test_argparse_errors_are_one_line_without_usage(args: list[str]) -> None:
    line = one_line(tek(*args))
    assert "usage:" not in line and f"(see `tek {args[0]}" in line and line.endswith("--help`)")


@pytest.mark.parametrize(("flag", "value"), [("--cpus", "inf"), ("--cpus", "nan"),
                                             ("--grace", "inf"), ("--grace", "Infinity")])
def test_non_finite_numbers_are_refused(ok_plan: Path, flag: str, value: str) -> None:
    assert one_line(tek("run", str(ok_plan), flag, value)) == (
        f"tek: {flag} {value}: must be a finite number")


def test_huge_gpu_count_is_refused(ok_plan: Path) -> None:
    assert one_line(tek("run", str(ok_plan), "--gpus", "99999999999999999999")) == (
        "tek: --gpus 99999999999999999999: must be at most 1024")


@pytest.mark.parametrize("args", [["--pool", "nosuch=2"], ["--memory-floor-mb", "999999999"]])
def test_options_the_engine_refuses_leave_no_run_behind(
    ok_plan: Path, tek_home: Path, args: list[str]
) -> None:
    assert tek("run", str(ok_plan)).returncode == 0
    before = tek("runs", "--json").stdout
    one_line(tek("run", str(ok_plan), *args))
    assert tek("runs", "--json").stdout == before  # no "interrupted" run, all pending


def test_header_only_plan_is_bad_input(tmp_path: Path, tek_home: Path) -> None:
    plan = tmp_path / "empty.csv"
    plan.write_text("id,agent,command,deps\n\n")
    expected = f"tek: {plan}:1: header: no tasks: the file has no row below its header"
    assert one_line(tek("validate", str(plan))) == expected
    assert one_line(tek("run", str(plan))) == expected
    assert not (tek_home / "tek.db").exists()  # nothing recorded


def test_empty_run_reference_is_not_ambiguous(ok_plan: Path) -> None:
    assert tek("run", str(ok_plan)).returncode == 0
    assert tek("run", str(ok_plan)).returncode == 0
    assert "RUN is empty" in one_line(tek("show", ""))
    ids = sorted(r["id"] for r in json.loads(tek("runs", "--json").stdout))
    prefix = os.path.commonprefix(ids)
    assert one_line(tek("show", prefix)) == (  # both named, no "..." as if there were more
        f"tek: run {prefix!r} is ambiguous: {ids[0]}, {ids[1]}")


# ------------------------------------------------------------ encodings, text


def test_binary_file_is_one_line(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    plan.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 40)
    assert "not a text file: NUL byte at byte offset 5" in one_line(tek("validate", str(plan)))


def test_many_non_utf8_lines_are_capped(tmp_path: Path) -> None:
    from core.plan_csv import ENCODING_SHOWN

    plan = tmp_path / "latin1.csv"
    plan.write_bytes(b"id,command\n" + b"".join(b"t%d,echo caf\xe9\n" % i for i in range(50)))
    r = tek("validate", str(plan))
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == ENCODING_SHOWN + 1
    assert lines[0] == f"tek: {plan}:2: command: bytes are not UTF-8 at byte offset 22 (b'\\xe9')"
    assert lines[-1].endswith(f"and {50 - ENCODING_SHOWN} more line(s) with bytes that are not "
                              "UTF-8 (not shown)")


def test_undecodable_header_gives_no_garbage_column_names(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_bytes(b"id,comm\xe9nd\na,echo \xe9\n")
    lines = tek("validate", str(plan)).stderr.splitlines()
    assert lines == [f"tek: {plan}:1: header: bytes are not UTF-8 at byte offset 7 (b'\\xe9')",
                     f"tek: {plan}:2: row: bytes are not UTF-8 at byte offset 18 (b'\\xe9')"]


def test_messages_escape_control_characters(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command,\x1b[31mevil\x1b[0m\na,echo,x\n")
    line = one_line(tek("validate", str(plan)))
    assert "\x1b" not in line and "\\x1b[31mevil\\x1b[0m: unknown column" in line


# ------------------------------------------------------------ output, pipes


def test_plain_failure_tail_has_no_escape_codes(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text('id,command\nf,"printf \'\\033[31mred\\033[0m\\n\\033]0;title\\007x\\n\'; exit 3"\n')
    r = tek("run", str(plan), env={**os.environ, "TERM": "xterm"})
    assert r.returncode == 1
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "         | red" in r.stdout.splitlines() and "         | x" in r.stdout.splitlines()


def test_live_view_shows_markup_like_output_as_text() -> None:
    from rich.console import Console

    from core.events import OutputLines, RunSnapshot, RunStatus, TaskChanged, TaskInfo, TaskState
    from tek_tui.run_watch import RunWatch, render

    class Client:
        def snapshot(self) -> RunSnapshot:
            tasks = tuple(TaskInfo(t, t, "shell", "shell", ()) for t in ("a", "b"))
            return RunSnapshot("r1", "p.csv", RunStatus.RUNNING, tasks)

    watch = RunWatch(Client())  # type: ignore[arg-type]
    for ev in (TaskChanged("a", TaskState.RUNNING, 1, 0.0),
               OutputLines("a", 1, ("[/red] [bold]x\x1b[2J",)),
               TaskChanged("b", TaskState.RUNNING, 1, 0.0),
               OutputLines("b", 1, ("[/]",)),
               TaskChanged("b", TaskState.FAILED, 1, 0.0, 1, "exit code 1")):
        watch.apply(ev)
    console = Console(width=100, record=True, color_system=None)
    console.print(render(watch, 100))  # raised MarkupError before
    text = console.export_text()
    assert "[/red] [bold]x" in text and "exit code 1  [/]" in text and "\x1b" not in text


def _closed_pipe() -> int:
    """A pipe's write end whose reader has already gone."""
    r, w = os.pipe()
    os.close(r)
    return w


def test_run_into_a_closed_pipe_finishes_the_run(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command,deps\n" + "".join(f"t{i},echo {i},\n" for i in range(40)))
    w = _closed_pipe()
    try:
        r = subprocess.run([*TEK, "run", str(plan)], stdout=w, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    finally:
        os.close(w)
    assert r.returncode == 0 and r.stderr == ""  # no BrokenPipeError traceback
    runs = json.loads(tek("runs", "--json").stdout)
    assert runs[0]["status"] == "succeeded" and runs[0]["counts"] == {"succeeded": 40}


@pytest.mark.parametrize("args", [["run"], ["run", "--json"]])
def test_run_onto_a_full_disk_finishes_the_run_and_says_so_once(
    tmp_path: Path, args: list[str]
) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\n" + "".join(f"t{i},echo {i}\n" for i in range(20)))
    with open("/dev/full", "w") as full:
        r = subprocess.run([*TEK, *args, str(plan)], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert r.returncode == 0
    assert r.stderr == ("tek: cannot write the output: No space left on device "
                        "(the journal and logs keep everything)\n")
    assert json.loads(tek("runs", "--json").stdout)[0]["status"] == "succeeded"


@pytest.mark.parametrize("closed", [1, 2])
@pytest.mark.parametrize("plan_rows", [["t0,true"], ["t0,true", "t0,true"]])
def test_a_closed_stdout_or_stderr_changes_nothing_but_what_is_seen(
    tmp_path: Path, closed: int, plan_rows: list[str]
) -> None:
    """``tek run PLAN >&-`` (or ``2>&-``): the run's own exit code, no traceback anywhere."""
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\n" + "\n".join(plan_rows) + "\n")
    other = subprocess.PIPE
    r = subprocess.run([*TEK, "run", str(plan)], stdout=other if closed == 2 else None,
                       stderr=other if closed == 1 else None, text=True, timeout=60,
                       preexec_fn=lambda: os.close(closed))
    bad = len(plan_rows) == 2  # a duplicate id
    assert r.returncode == (2 if bad else 0)
    seen = r.stderr if closed == 1 else r.stdout
    if closed == 1:
        assert seen == (f"tek: {plan}:3: id: duplicate id, first defined on line 2 (t0)\n"
                        if bad else "")
    else:
        assert "Traceback" not in seen and "tek:" not in seen  # errors never go to stdout


@pytest.mark.parametrize("args", [["runs"], ["show", "last"], ["logs", "last", "t0"],
                                  ["run", "--json", "PLAN"], ["validate", "PLAN"]])
def test_history_commands_into_a_closed_pipe(tmp_path: Path, args: list[str]) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\nt0,seq 1 30000\n")
    assert tek("run", str(plan)).returncode == 0
    w = _closed_pipe()
    try:
        r = subprocess.run([*TEK, *[str(plan) if a == "PLAN" else a for a in args]], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    assert r.returncode == 0 and r.stderr == ""


# ---------------------------------------------------------- TEK_HOME, journal


def test_uncreatable_tek_home_is_one_line(tmp_path: Path, ok_plan: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = {**os.environ, "TEK_HOME": str(blocker / "home")}
    for args in (["runs"], ["show", "last"], ["run", str(ok_plan)], ["models", "list"]):
        line = one_line(tek(*args, env=env))
        assert "TEK_HOME=" in line, line
    assert tek("validate", str(ok_plan), env=env).returncode == 0  # needs no data folder


def test_runs_folder_that_is_a_file_is_one_line(tek_home: Path, ok_plan: Path) -> None:
    (tek_home / "runs").write_text("")
    for extra in ([], ["--no-journal"]):
        line = one_line(tek("run", str(ok_plan), *extra))
        assert line == f"tek: {tek_home / 'runs'}: is not a folder: tek keeps task logs there " \
            "(move it away, or set TEK_HOME to another folder)"
    assert not (tek_home / "tek.db").exists()


_AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
needs_other_user = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run tek as another user",
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user may enter (pytest's own tmp folders are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="tek-audit-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path)


def _read_only_home(shared_dir: Path) -> tuple[dict[str, str], Path, Path]:
    """A journal with one run of ``ok.csv``, then made read-only for everyone."""
    home, plan = shared_dir / "home", shared_dir / "ok.csv"
    plan.write_text("id,command,deps\na,echo A,\nb,echo B,a\n")
    env = {**os.environ, "TEK_HOME": str(home)}
    assert tek("run", str(plan), env=env).returncode == 0
    for path in [*home.rglob("*"), home]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return env, home, plan


@needs_other_user
def test_read_only_home_run_is_one_line_not_a_hang(shared_dir: Path) -> None:
    env, _, plan = _read_only_home(shared_dir)
    for extra in ([], ["--no-journal"]):
        r = subprocess.run([*_AS_NOBODY, *TEK, "run", str(plan), *extra], env=env,
                           capture_output=True, text=True, timeout=30)
        assert "cannot write task logs here: permission denied" in one_line(r)


@needs_other_user
def test_read_only_journal_can_still_be_read(shared_dir: Path) -> None:
    env, home, _ = _read_only_home(shared_dir)
    for args in (["runs", "--json"], ["show", "last", "--json"], ["logs", "last", "a"]):
        r = subprocess.run([*_AS_NOBODY, *TEK, *args], env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
    assert r.stdout == "A\n"
    assert not list(home.glob("tek.db-*"))


def test_read_only_opening_refuses_a_foreign_file(tmp_path: Path) -> None:
    from core.store_schema import connect_read_only

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    assert connect_read_only(other) is None


# ------------------------------------------------------------- logs, console


def test_logs_of_a_skipped_task_says_why(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command,deps\na,exit 1,\nb,echo B,a\n")
    assert tek("run", str(plan)).returncode == 1
    assert one_line(tek("logs", "last", "b")).endswith(
        "has not started (skipped: upstream a failed)")


def test_logs_whose_run_folder_is_gone_is_not_an_empty_log(tek_home: Path, ok_plan: Path) -> None:
    assert tek("run", str(ok_plan)).returncode == 0
    (log,) = tek_home.glob("runs/*/a.1.log")
    shutil.rmtree(log.parent)
    run_id = log.parent.name
    assert one_line(tek("logs", "last", "a")) == (
        f"tek: {log.parent}: the logs of run {run_id} are gone (removed?)")


def test_a_task_that_printed_nothing_has_an_empty_log_and_no_file(
    tek_home: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\nquiet,true\nloud,echo hi\n")
    assert tek("run", str(plan)).returncode == 0
    (folder,) = tek_home.glob("runs/*")
    assert sorted(p.name for p in folder.iterdir()) == ["loud.1.log"]
    r = tek("logs", "last", "quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert tek("logs", "last", "loud").stdout == "hi\n"


def test_tui_without_a_terminal_is_one_line_not_a_hang(ok_plan: Path) -> None:
    r = subprocess.run([*TEK, "tui", str(ok_plan)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert one_line(r) == ("tek: tek tui needs a terminal: stdin and stderr are not one "
                           "(for a headless run use `tek run PLAN`)")
    assert r.stdout == ""


# ------------------------------------------------------------------ headers


def test_capitalised_header_is_not_called_missing(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("ID,Command\na,echo\n")
    assert tek("validate", str(plan)).stderr.splitlines() == [
        f'tek: {plan}:1: ID: unknown column; did you mean "id"? (column names are lower case)',
        f'tek: {plan}:1: Command: unknown column; did you mean "command"? '
        "(column names are lower case)",
    ]


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_other_separators_are_named(tmp_path: Path, sep: str, word: str) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text(f"id{sep}command\na{sep}echo\n")
    assert one_line(tek("validate", str(plan))).endswith(
        f"e.g. id,agent,command,deps; plans are comma-separated, this header is split by {word} "
        f"(id{sep.replace(chr(9), chr(92) + 't')}command)")


# ------------------------------------------------------------------- resume


def _last_run_id() -> str:
    return str(json.loads(tek("runs", "--json").stdout)[0]["id"])


def test_resume_with_another_plan_file_is_refused(tmp_path: Path, ok_plan: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("id,command\nx,exit 1\n")
    assert tek("run", str(other)).returncode == 1
    run_id = _last_run_id()
    before = tek("show", run_id, "--json").stdout
    assert one_line(tek("run", str(ok_plan), "--resume", run_id)) == (
        f"tek: run {run_id} ran {other}, not {ok_plan}: resume it with its own plan "
        "(or leave PLAN out)")
    assert tek("show", run_id, "--json").stdout == before  # nothing rewritten


def test_resume_of_a_moved_plan(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\nx,exit 1\n")
    assert tek("run", str(plan)).returncode == 1
    run_id = _last_run_id()
    moved = plan.rename(tmp_path / "q.csv")
    assert one_line(tek("run", "--resume")) == (
        f"tek: run {run_id}'s plan file {plan} is gone; if it moved: "
        f"tek run NEW_PATH --resume {run_id}")
    r = tek("run", str(moved), "--resume", run_id, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["tasks"]["x"]["attempts"] == 2


def test_logs_of_a_sub_plan_task_points_at_its_parent(tmp_path: Path) -> None:
    (tmp_path / "child.csv").write_text("id,command\nx,echo child-x\n")
    plan = tmp_path / "parent.csv"
    plan.write_text("id,agent,command\nsub,plan,child.csv\n")
    assert tek("run", str(plan)).returncode == 0
    assert one_line(tek("logs", "last", "sub/x")).endswith(
        "has no task 'sub/x'; a sub-plan's tasks log into their parent's log: tek logs last sub")
    assert "child-x" in tek("logs", "last", "sub").stdout


def test_dry_run_of_a_resume_shows_only_what_would_rerun(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command,deps\na,echo,\nb,exit 1,a\nc,echo,b\nd,echo,a\n")
    assert tek("run", str(plan)).returncode == 1
    run_id = _last_run_id()
    before = tek("show", run_id, "--json").stdout
    r = tek("run", str(plan), "--dry-run", "--resume")
    assert r.returncode == 0
    assert r.stdout.splitlines() == [
        f"resume of run {run_id}: 2 to run, 2 already succeeded",
        "   1  b  (shell, pool shell)  was failed",
        "   2  c  (shell, pool shell)  was skipped",
    ]
    data = json.loads(tek("run", str(plan), "--dry-run", "--json", "--from", "d").stdout)
    assert tek("show", run_id, "--json").stdout == before  # a preview writes nothing
    assert data["order"] == ["b", "c", "d"]
    assert data["resume"] == {"run_id": run_id, "completed": ["a"], "skipped": [],
                              "why": {**data["resume"]["why"], "d": "--from"}}
    with sqlite3.connect(Path(os.environ["TEK_HOME"]) / "tek.db") as db:  # as `tek ctl skip d` does
        db.execute("UPDATE tasks SET state = 'skipped', reason = 'skipped by user' "
                   "WHERE run_id = ? AND task_id = 'd'", (run_id,))
    kept = tek("run", str(plan), "--dry-run", "--resume")
    assert kept.stdout.splitlines()[0] == (
        f"resume of run {run_id}: 2 to run, 1 already succeeded, 1 skipped by you (kept skipped)")
    data = json.loads(tek("run", str(plan), "--dry-run", "--json", "--resume").stdout)
    assert data["resume"]["skipped"] == ["d"]


def test_dependency_hints_for_commas_and_case(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text('id,command,deps\na,echo,\nb,echo,\nc,echo,"a, b"\ne,echo,A\n')
    assert tek("validate", str(plan)).stderr.splitlines() == [
        f"tek: {plan}:4: deps: no task has this id; separate ids with ; or spaces, not commas (a,)",
        f'tek: {plan}:5: deps: no task has this id; did you mean "a"? (A)',
    ]


def test_resume_without_a_journal_creates_none(ok_plan: Path, tek_home: Path) -> None:
    for args in (["--resume", "nosuch"], ["--from", "a"]):
        assert one_line(tek("run", str(ok_plan), *args)) == (
            f"tek: {tek_home / 'tek.db'}: no journal here (no run has been recorded yet)")
    assert not (tek_home / "tek.db").exists()


def test_resume_with_options_the_engine_refuses_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command,deps\na,echo,\nb,exit 1,a\n")
    assert tek("run", str(plan)).returncode == 1
    run_id = _last_run_id()
    before = tek("show", run_id, "--json").stdout
    assert one_line(tek("run", str(plan), "--resume", "--pool", "nosuch=2")).startswith(
        "tek: --pool nosuch: no task uses this pool")
    assert tek("show", run_id, "--json").stdout == before  # was: interrupted, b pending
    r = tek("run", str(plan), "--resume", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["tasks"]["b"]["attempts"] == 2
    assert r.stderr.startswith(f"tek: resuming run {run_id}: 1 to run, 1 already succeeded")


def test_a_nul_byte_in_any_cell_is_bad_input_at_validation(tmp_path: Path) -> None:
    """It used to pass validation and fail at run time (the shell cannot take it)."""
    plan = tmp_path / "nul.csv"
    plan.write_bytes(b"id,command,env,cwd,x_note\na,echo \x00zero,K=\x00,,\nb,true,,d\x00,x\x00y\n")
    r = tek("validate", str(plan))
    assert r.returncode == 2
    assert sorted(r.stderr.splitlines()) == [
        f"tek: {plan}:2: command: contains a NUL byte: a plan is text (echo \\0zero)",
        f"tek: {plan}:2: env: contains a NUL byte: a plan is text (K=\\0)",
        f"tek: {plan}:3: cwd: contains a NUL byte: a plan is text (d\\0)",
        f"tek: {plan}:3: x_note: contains a NUL byte: a plan is text (x\\0y)",
    ]


def test_tek_home_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("")
    r = tek("runs", env={**os.environ, "TEK_HOME": str(home)})
    assert (r.returncode, r.stderr) == (2, f"tek: TEK_HOME={home} is a file, not a folder: tek "
                                           "keeps its runs, logs and models there (point "
                                           "TEK_HOME at a folder)\n")


@pytest.mark.parametrize("args", [["run", "PLAN", "--json"], ["show", "nosuch", "--json"],
                                  ["runs", "-n", "-1", "--json"]])
def test_json_commands_answer_bad_input_in_json_too(tmp_path: Path, args: list[str]) -> None:
    plan = tmp_path / "dup.csv"
    plan.write_text("id,command\na,true\na,true\n")
    r = tek(*[str(plan) if a == "PLAN" else a for a in args])
    assert r.returncode == 2
    errors = json.loads(r.stdout)["errors"]
    assert len(errors) == 1 and r.stderr == f"tek: {errors[0]}\n"


def test_a_read_only_mount_is_named_as_such(
    tek_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from core.errors import TekError
    from tek_tui.commands.run import check_log_folder

    monkeypatch.setattr(os, "access", lambda *_: False)  # as on a ro mount, even for root
    monkeypatch.setattr(os, "statvfs", lambda _: SimpleNamespace(f_flag=os.ST_RDONLY))
    with pytest.raises(TekError, match="cannot write task logs here: read-only file system"):
        check_log_folder()
