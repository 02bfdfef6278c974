"""``tek run --resume`` end to end: the run's own options, the same refusals in a dry run,
the same folder through a symlink, and edits to labels that rerun nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TEK = [sys.executable, "-m", "tek_tui.cli"]


def tek(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEK, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def show(run: str = "last") -> dict[str, Any]:
    r = tek("show", run, "--json")
    assert r.returncode == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    """``bad`` fails first (higher priority); ``later`` then runs only without --fail-fast."""
    plan = tmp_path / "ff.csv"
    plan.write_text(f"id,command,priority\nbad,exit 1,1\nlater,echo ran >> {tmp_path / 'ran.txt'},0\n")
    return plan


def test_a_resume_runs_with_the_options_the_run_recorded(tmp_path: Path, failing: Path) -> None:
    assert tek("run", str(failing), "-j", "1", "--fail-fast", "--grace", "0.5", "--plain").returncode == 1
    assert not (tmp_path / "ran.txt").exists()
    first = show()["options"]
    assert (first["jobs"], first["fail_fast"], first["grace_s"]) == (1, True, 0.5)

    for resume in ([str(failing), "--resume"], ["--resume", "last"], ["--from", "bad"]):
        r = tek("run", *resume, "--plain")
        assert r.returncode == 1 and "resuming run" in r.stderr
        assert not (tmp_path / "ran.txt").exists()  # --fail-fast still cancels `later`
        assert show()["options"] == first  # and the recorded options stay what they were
    assert show()["resumes"] == 3


def test_an_option_given_to_a_resume_wins_and_is_recorded(tmp_path: Path, failing: Path) -> None:
    assert tek("run", str(failing), "-j", "1", "--fail-fast", "--grace", "0.5", "--plain").returncode == 1
    r = tek("run", str(failing), "--resume", "--no-fail-fast", "--grace", "2", "--pool", "shell=1")
    assert r.returncode == 1, r.stderr
    assert (tmp_path / "ran.txt").read_text() == "ran\n"  # no fail-fast this time
    opts = show()["options"]
    assert (opts["jobs"], opts["fail_fast"], opts["grace_s"], opts["pool_sizes"]) == (1, False, 2.0, {"shell": 1})
    assert opts["cpus"] is None and opts["gpus"] is None  # the machine's, as before
    assert tek("run", "--resume", "last", "--fail-fast").returncode == 1
    assert show()["options"] == {**opts, "fail_fast": True}


def test_recorded_options_come_before_the_config_file(tmp_path: Path, tek_home: Path) -> None:
    config = tek_home / "config.toml"
    plan = tmp_path / "c.csv"
    plan.write_text("id,command\nx,exit 1\n")
    config.write_text("run_grace_s = 3\nrun_memory_floor_mb = 0\n")
    assert tek("run", str(plan), "--grace", "0.5").returncode == 1
    opts = show()["options"]
    assert (opts["grace_s"], opts["memory_floor_mb"], opts["jobs"]) == (0.5, 0, None)

    config.write_text("run_grace_s = 7\nrun_memory_floor_mb = 100\nrun_jobs = 4\n")
    assert tek("run", str(plan), "--resume").returncode == 1
    assert show()["options"] == opts  # jobs None stays the machine's CPU count, not the config's

    # A run that recorded only some options (the console records its jobs):
    # the others come from the config file, then the defaults.
    with sqlite3.connect(tek_home / "tek.db") as conn:
        conn.execute("""UPDATE runs SET options = '{"jobs": 2, "console": true}'""")
    assert tek("run", str(plan), "--resume").returncode == 1
    opts = show()["options"]
    assert (opts["jobs"], opts["grace_s"], opts["memory_floor_mb"], opts["fail_fast"]) == (2, 7.0, 100, False)


def _journal(tek_home: Path) -> list[tuple[Any, ...]]:
    """What a resume would change in the runs (a live run still writes its status and times)."""
    with sqlite3.connect(tek_home / "tek.db") as conn:
        return conn.execute("SELECT id, plan_path, plan_hash, options, resumes, pid, pid_ts, host"
                            " FROM runs ORDER BY id").fetchall()


def test_a_dry_run_refuses_a_run_of_another_plan_file_as_the_resume_does(
    tmp_path: Path, tek_home: Path
) -> None:
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    for p in (one, two):
        p.write_text("id,command\na,true\n")
    assert tek("run", str(one)).returncode == 0
    run_id = show()["id"]
    before = _journal(tek_home)
    real = tek("run", str(two), "--resume", run_id)
    dry = tek("run", str(two), "--resume", run_id, "--dry-run")
    assert (real.returncode, dry.returncode) == (2, 2)
    assert dry.stderr == real.stderr == (f"tek: run {run_id} ran {one}, not {two}: resume it with its own "
                                         "plan (or leave PLAN out)\n")
    assert dry.stdout == "" and _journal(tek_home) == before


def test_a_dry_run_refuses_a_run_still_going_as_the_resume_does(
    served_run: tuple[subprocess.Popen[bytes], Path], tmp_path: Path, tek_home: Path
) -> None:
    proc, _ = served_run
    plan = tmp_path / "long.csv"  # the plan the fixture runs
    before = _journal(tek_home)
    for args in ([str(plan), "--resume"], ["--resume", "last"], [str(plan), "--from", "nap2"]):
        dry = tek("run", *args, "--dry-run")
        assert dry.returncode == 2 and dry.stdout == ""
        assert dry.stderr.endswith(f"is still running (pid {proc.pid}); stop it before resuming\n")
        assert dry.stderr.count("\n") == 1
        assert tek("run", *args).stderr == dry.stderr
    assert _journal(tek_home) == before and proc.poll() is None


def test_a_plan_reached_through_a_symlink_resumes_in_the_same_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "linkdir").mkdir()
    (tmp_path / "real" / "plan.csv").write_text("id,command\nw,pwd; exit 1\n")
    link = tmp_path / "linkdir" / "plan.csv"
    link.symlink_to(tmp_path / "real" / "plan.csv")
    assert tek("run", "linkdir/plan.csv", cwd=tmp_path).returncode == 1
    assert show()["plan"] == str(link)
    for n, args in enumerate((["--resume", "last"], ["real/plan.csv", "--resume"],
                              ["linkdir/plan.csv", "--resume"]), 2):
        r = tek("run", *args, cwd=tmp_path)
        assert r.returncode == 1, r.stderr
        assert show()["resumes"] == n - 1
    for n in (1, 2, 3, 4):  # every attempt ran in the folder the run started in
        assert tek("logs", "last", "w", "--attempt", str(n)).stdout == f"{tmp_path / 'linkdir'}\n"
    for plan in ("real/plan.csv", "linkdir/plan.csv"):
        runs = json.loads(tek("runs", "--plan", plan, "--json", cwd=tmp_path).stdout)
        assert [r["id"] for r in runs] == [show()["id"]]


def test_editing_labels_metadata_and_scheduling_reruns_nothing(tmp_path: Path) -> None:
    """Only what changes what a task does reruns it: a label's typo costs nothing."""
    out = tmp_path / "out.txt"
    plan = tmp_path / "night.csv"
    header = "id,command,deps,name,tags,priority,retries,timeout_s,x_owner\n"
    plan.write_text(header + f"a,echo a >> {out},,Lable,t,0,0,,me\n"
                             f"b,echo b >> {out}; exit 1,a,,,,,,\n")
    assert tek("run", str(plan)).returncode == 1
    plan.write_text(header + f"a,echo a >> {out},,Label,t;nightly,5,2,600,you\n"
                             f"b,echo b >> {out},a,,,,,,\n")
    dry = tek("run", str(plan), "--resume", "--dry-run", "--json")
    assert json.loads(dry.stdout)["resume"]["why"] == {"b": "row changed"}  # its fixed command
    assert tek("run", str(plan), "--resume").returncode == 0
    assert out.read_text().split() == ["a", "b", "b"]  # a ran once
    plan.write_text(header + f"a,echo A >> {out},,Label,,,,,\n"  # its command: it reruns
                             f"b,echo b >> {out},a,,,,,,\n")
    dry = tek("run", str(plan), "--resume", "--dry-run", "--json")
    assert json.loads(dry.stdout)["resume"]["why"] == {"a": "row changed", "b": "downstream of a"}


def test_flags_are_still_checked_before_anything_else_on_a_resume(tmp_path: Path, failing: Path) -> None:
    assert tek("run", str(failing)).returncode == 1
    r = tek("run", str(failing), "--resume", "--grace", "-1")
    assert r.returncode == 2 and r.stderr == "tek: --grace -1: must be at least 0\n"
    assert show()["resumes"] == 0 and os.path.exists(failing)
