"""Reading history never creates tek's data folder, and a misspelt ``TEK_HOME`` says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEK = [sys.executable, "-m", "tek_tui.cli"]


def tek(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEK, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("argv", [["runs"], ["runs", "--json"], ["show", "last"],
                                  ["logs", "last", "a"], ["prune", "--keep", "1"]])
def test_a_tek_home_that_does_not_exist_is_an_error_and_is_not_created(
    tmp_path: Path, argv: list[str]
) -> None:
    home = tmp_path / "typo"
    r = tek(*argv, env={**os.environ, "TEK_HOME": str(home)})
    assert r.returncode == 2
    assert r.stderr == f"tek: TEK_HOME={home}: no such folder, so no runs are recorded there (is it spelt right?)\n"
    if "--json" in argv:
        assert json.loads(r.stdout)["errors"] == [r.stderr[5:-1]]
    assert not home.exists()


def test_without_tek_home_a_fresh_user_has_no_runs_yet_and_nothing_is_created(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TEK_HOME", "XDG_DATA_HOME")}
    env["HOME"] = str(tmp_path / "home")
    r = tek("runs", env=env)
    assert (r.returncode, r.stdout) == (0, "no runs yet\n")
    assert not (tmp_path / "home").exists()
