"""``tek run -d``: a run in the background, reported once it is going."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from core.store import open_store


def _tek(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tek_tui", *args], capture_output=True, text=True,
                          env={**os.environ, "TEK_HOME": str(home)}, timeout=120, check=False)


def _ended(run_id: str) -> str:
    """The status of a detached run once it is no longer live (up to 60 s)."""
    deadline = time.monotonic() + 60
    while True:  # polling the journal for the run's end; bounded by the deadline
        with open_store() as store:
            run = store.get_run(run_id)
        if not run.is_live or time.monotonic() > deadline:
            return run.effective_status
        time.sleep(0.1)


def test_detach_reports_the_run_and_it_runs_on_in_its_own_session(tmp_path: Path, tek_home: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text(f"id,command,deps\na,sleep 2,\nb,echo $TEK_READY_FD. > {tmp_path}/b.out,a\n")
    done = _tek(tek_home, "run", "-d", str(plan))
    assert done.returncode == 0, done.stderr
    found = re.match(r"run (\S+) started in the background \(pid (\d+)\)\n", done.stdout)
    assert found, done.stdout
    run_id, pid = found[1], int(found[2])
    assert f"tek tui --attach {run_id}" in done.stdout
    assert os.getsid(pid) == pid  # its own session (checked while `a` sleeps): a closing terminal does not stop it
    assert _ended(run_id) == "succeeded"
    assert (tmp_path / "b.out").read_text() == ".\n"  # tasks never see the ready pipe
    out = tek_home / "runs" / run_id / "tek-run.out"
    assert f"run {run_id} succeeded" in out.read_text()


def test_a_detached_run_that_cannot_start_says_why_here(tmp_path: Path, tek_home: Path) -> None:
    plan = tmp_path / "dup.csv"
    plan.write_text("id,command\na,true\na,true\n")
    done = _tek(tek_home, "run", "-d", str(plan))
    assert done.returncode == 2
    assert done.stderr == f"tek: {plan}:3: id: duplicate id, first defined on line 2 (a)\n"
    assert done.stdout == ""
    assert not list((tek_home / "detached").glob("*"))  # nothing left behind


def test_the_started_run_never_detaches_again(tmp_path: Path, tek_home: Path) -> None:
    """`-dj1` (or `--det`) reached the child still asking to detach: each generation
    would have started the next."""
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\na,true\n")
    done = _tek(tek_home, "run", "-dj1", str(plan))
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    assert _ended(run_id) == "succeeded"
    with open_store() as store:
        assert [(r.id, r.status) for r in store.list_runs()] == [(run_id, "succeeded")]  # not a chain


def test_a_run_that_cannot_be_served_says_it_cannot_be_attached_to(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "sockets").write_text("")  # the sockets' folder cannot be made
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\na,true\n")
    done = _tek(home, "run", "-d", str(plan))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == "  it cannot be attached to: no socket could be made under $TEK_HOME/sockets"
    assert "--attach" not in done.stdout


def test_a_run_under_a_deep_tek_home_is_served_and_steered(tmp_path: Path) -> None:
    """A Unix socket's path is at most ~107 bytes: such a home serves from a short folder."""
    home = tmp_path / ("x" * 110)
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\na,sleep 30\n")
    done = _tek(home, "run", "-d", str(plan))
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[1]
    assert f"tek tui --attach {run_id}" in done.stdout
    steered = _tek(home, "ctl", "cancel", "--run", run_id)
    assert steered.returncode == 0, steered.stderr
    deadline = time.monotonic() + 30
    while "cancelled" not in _tek(home, "runs").stdout:  # polling for its end, bounded
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_detached_resume_keeps_the_first_output(tmp_path: Path, tek_home: Path) -> None:
    """`tek run --from a -d` (no PLAN: --from implies --resume last) writes a second file."""
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\na,echo first\n")
    run_id = _tek(tek_home, "run", "-d", str(plan)).stdout.split()[1]
    assert _ended(run_id) == "succeeded"
    again = _tek(tek_home, "run", "--from", "a", "-d")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[1] == run_id
    assert _ended(run_id) == "succeeded"
    folder = tek_home / "runs" / run_id
    assert "start a (attempt 1)" in (folder / "tek-run.out").read_text()
    assert "start a (attempt 2)" in (folder / "tek-run.2.out").read_text()
    assert f"its output:       {folder / 'tek-run.2.out'}" in again.stdout


def test_detach_with_json_prints_one_object(tmp_path: Path, tek_home: Path) -> None:
    plan = tmp_path / "p.csv"
    plan.write_text("id,command\na,true\n")
    done = _tek(tek_home, "run", "-d", "--json", str(plan))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["attachable"] is True and isinstance(info["pid"], int)
    assert _ended(info["run_id"]) == "succeeded"
    summary = json.loads(Path(info["output"]).read_text())  # the run's own --json summary
    assert summary["run_id"] == info["run_id"] and summary["status"] == "succeeded"
