"""``tek ctl``: one control to a running run, from a script, with the run's answer."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from core.store import open_store
from tek_tui.cli import main


def _states(run_id: str) -> dict[str, str]:
    with open_store() as store:
        return {t.task_id: t.state for t in store.read_run(run_id)[1]}


def test_ctl_steers_a_running_run(
    served_run: tuple[subprocess.Popen[bytes], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _proc, path = served_run
    run_id = path.stem
    assert main(["ctl", "pause"]) == 0
    assert capsys.readouterr().out == f"run {run_id}: pause: done\n"
    assert main(["ctl", "cancel", "nap1", "--run", run_id[:12]]) == 0
    deadline = time.monotonic() + 30
    while _states(run_id)["nap1"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the journal (written at the run's next turn); bounded
    assert _states(run_id)["nap1"] == "cancelled"
    assert main(["ctl", "retry", "nap9"]) == 2
    assert capsys.readouterr().err == f"tek: run {run_id} refused it: unknown task 'nap9'\n"
    assert main(["ctl", "resize", "shell", "3"]) == 0
    assert main(["ctl", "cancel"]) == 0  # the whole run: its process ends (exit 1: cancelled)
    proc = served_run[0]
    assert proc.wait(timeout=30) == 1
    with open_store() as store:
        assert store.get_run(run_id).status == "cancelled"


@pytest.mark.parametrize(("argv", "message"), [
    (["ctl", "retry"], "ctl retry takes TASK (got nothing)"),
    (["ctl", "pause", "extra"], "ctl pause takes no arguments (got extra)"),
    (["ctl", "resize", "shell", "-1"], "ctl resize shell -1: SIZE must be a whole number, 0 or more"),
    (["ctl", "pause"], "no run is being served: nothing is running now (`tek runs` lists "
                       "finished runs; start one with `tek run PLAN`)"),
    (["ctl", "pause", "--run", "nosuch"], "no live run 'nosuch' is being served: nothing is "
     "running now (`tek runs` lists finished runs; start one with `tek run PLAN`)"),
])
def test_bad_ctl_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"tek: {message}\n"


def test_with_two_runs_going_ctl_makes_the_script_say_which(
    served_run: tuple[subprocess.Popen[bytes], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    _proc, path = served_run
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path.with_name("29990101-000000-ffff.sock")))  # a newer run, also served
    other.listen()
    try:
        assert main(["ctl", "cancel"]) == 2
        err = capsys.readouterr().err
        assert err == (f"tek: 2 runs are going (29990101-000000-ffff, {path.stem}): say which "
                       "with --run RUN_ID (or --run last for the newest)\n")
        assert main(["ctl", "pause", "--run", path.stem]) == 0
    finally:
        other.close()
