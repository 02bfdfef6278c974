"""What tek prints where: odd encodings, and argparse's errors with ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEK = [sys.executable, "-m", "tek_tui.cli"]


def tek(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEK, *args], capture_output=True, text=True, timeout=60,
                          env=env, encoding="utf-8", errors="replace")


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_output_the_terminal_cannot_encode_never_stops_a_run(tmp_path: Path, encoding: str) -> None:
    plan = tmp_path / "p.csv"
    plan.write_bytes("id,command\nu,echo café ✓; exit 2\nv,echo later\n".encode())
    env = {**os.environ, "PYTHONIOENCODING": encoding, "TEK_HOME": str(tmp_path / "home")}
    r = tek("run", str(plan), env=env)
    assert r.returncode == 1, r.stderr  # u failed; nothing crashed
    assert "Traceback" not in r.stderr
    assert "\\u2713" in r.stdout  # shown as an escape
    assert "failed: 1 succeeded, 1 failed in" in r.stdout.splitlines()[-1]  # v ran too
    logs = tek("logs", "last", "u", env=env)
    assert logs.returncode == 0 and "\\u2713" in logs.stdout and "Traceback" not in logs.stderr


@pytest.mark.parametrize("argv", [
    ["run", "p.csv", "--bogus", "--json"],
    ["run", "--json", "p.csv", "--from"],
    ["validate", "--json"],
    ["show", "--json"],
])  # fmt: skip
def test_argument_errors_with_json_print_json_errors_too(argv: list[str]) -> None:
    r = tek(*argv)
    assert r.returncode == 2
    (line,) = json.loads(r.stdout)["errors"]
    assert r.stderr == f"tek: {line}\n" and "--help" in line


def test_argument_errors_without_json_leave_stdout_empty() -> None:
    r = tek("show")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.startswith("tek: the following arguments are required: RUN")
