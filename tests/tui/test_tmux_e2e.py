"""End to end: ``tek tui`` on the 90-task sample plan in a real terminal (tmux).

Starts the console in a detached tmux session on its own server socket, starts
the run, moves around, opens a log, cancels a task and quits, checking the
screen with ``capture-pane`` after each step (polled with a deadline, never a
fixed sleep). Runs at 120x40 with 256 colours and at 80x24 with 16 colours.
``.ci/run`` installs tmux.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NIGHTLY = REPO / "sample_plans" / "nightly.csv"
TEK = Path(sys.executable).parent / "tek"

pytestmark = pytest.mark.slow


def footer(screen: str) -> str:
    """The footer line (key bindings) of a captured screen."""
    lines = screen.rstrip("\n").splitlines()
    return lines[-1].strip() if lines else ""


class Tmux:
    """One tmux server and session running a command."""

    def __init__(self, width: int, height: int) -> None:
        self.socket = f"tek-test-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height

    def cmd(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                             text=True, timeout=30, check=True)
        return out.stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        self.cmd("new-session", "-d", "-s", "e2e", "-x", str(self.width), "-y", str(self.height),
                 f"cd {REPO} && env -u COLUMNS -u LINES {exports} {command}; echo TEK-EXIT=$?; sleep 600")

    def screen(self) -> str:
        return self.cmd("capture-pane", "-p", "-t", "e2e")

    def keys(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", "e2e", *keys)

    def wait(self, check: Callable[[str], bool], what: str, limit: float = 60.0) -> str:
        deadline = time.monotonic() + limit
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                size = self.cmd("display", "-p", "-t", "e2e", "#{window_width}x#{window_height}")
                raise AssertionError(f"timed out waiting for {what} ({size.strip()}); screen:\n{text}")
            time.sleep(0.1)  # polling the terminal; each check has a deadline

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=30, check=False)


@pytest.fixture
def plan() -> Path:
    assert NIGHTLY.exists(), "sample_plans/nightly.csv is the plan this test drives"
    return NIGHTLY


@pytest.fixture(params=[(120, 40, "xterm-256color"), (80, 24, "xterm")],
                ids=["120x40-256colours", "80x24-16colours"])
def tmux(request: pytest.FixtureRequest) -> Iterator[tuple[Tmux, str]]:
    assert shutil.which("tmux"), "tmux is needed (the CI script installs it)"
    width, height, term = request.param
    session = Tmux(width, height)
    try:
        yield session, term
    finally:
        session.kill()


def test_console_in_tmux(tmux: tuple[Tmux, str], plan: Path, tek_home: Path) -> None:
    term, term_name = tmux
    env = {"TEK_HOME": str(tek_home), "TERM": term_name, "COLORTERM": "",
           "PATH": os.environ.get("PATH", "")}
    term.start(f"{TEK} tui {plan.relative_to(REPO)} -j 2", env)
    term.wait(lambda s: "waiting for start" in s and "○" in s, "the plan to load")

    term.keys("s")
    term.wait(lambda s: "● " in s or "✓ " in s, "tasks to run")

    # Move down and open a log: the log pane names the selected task and has the focus.
    term.keys("Down", "Down", "l")
    term.wait(lambda s: footer(s).startswith("f Follow")
              and (" · attempt " in s or " · not started" in s), "the log pane")

    # Tab walks the panes; each pane's keys lead the footer.
    # (The system pane has no keys of its own; `s` has left the footer: the run started.)
    for lead in ("← Upstream", "+ Grow pool", "p Pause", "o Sort"):
        term.keys("Tab")
        term.wait(lambda s, lead=lead: footer(s).startswith(lead), f"the pane with {lead!r}")

    # Cancel a task that has not run yet: filter to pending ones, cancel the first.
    term.keys("/")
    term.keys("state:pending", "Enter")
    term.wait(lambda s: "Tasks · state:pending" in s, "the filter")
    term.keys("c")
    # With tasks downstream it asks first, naming the task and what it skips.
    term.wait(lambda s: "downstream task" in s or "⊘ 1" in s, "the cancel question")
    if "downstream task" in term.screen():
        term.keys("y")
    text = term.wait(lambda s: "⊘ 1" in s, "a cancelled task in the run bar")
    assert "Traceback" not in text

    # Quit: asks during the run, then stops it cleanly and exits 0.
    term.keys("q")
    term.wait(lambda s: "Cancel it and quit?" in s or "TEK-EXIT=" in s, "the quit question")
    if "TEK-EXIT=" not in term.screen():
        term.keys("y")
    text = term.wait(lambda s: "TEK-EXIT=" in s, "the console to exit", limit=60)
    assert "TEK-EXIT=1" in text  # a task was cancelled: as `tek run`, exit 1
    assert "Traceback" not in text


def _processes_with_home(home: Path) -> list[int]:
    """Pids of live processes whose environment names ``home`` as TEK_HOME (tek and its tasks)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TEK_HOME") == str(home) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def _describe(pids: list[int]) -> list[str]:
    import psutil

    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
        except psutil.Error:
            out.append(f"{pid}: gone")
    return out


@pytest.mark.parametrize("how", ["hangup", "sigterm"])
def test_a_dropped_terminal_or_sigterm_stops_the_run_and_its_tasks(
    tmp_path: Path, tek_home: Path, how: str
) -> None:
    """The SSH session drops (SIGHUP to all in the terminal), or tek gets SIGTERM.

    Either ended the console at once, and its tasks lived on, orphaned.
    """
    import signal

    import psutil

    assert shutil.which("tmux"), "tmux is needed (the CI script installs it)"
    plan = tmp_path / "sleepy.csv"
    plan.write_text("id,command\nnap1,sleep 300\nnap2,sleep 301\n")
    term = Tmux(100, 30)
    try:
        term.start(f"{TEK} tui {plan} --start",
                   {"TEK_HOME": str(tek_home), "TERM": "xterm", "PATH": os.environ.get("PATH", "")})
        term.wait(lambda s: "● 2" in s, "both tasks to run")
        ours = _processes_with_home(tek_home)
        assert len(ours) >= 3  # tek and at least one process per task
        if how == "sigterm":
            (tek,) = [p for p in ours if "tui" in psutil.Process(p).cmdline()]
            os.kill(tek, signal.SIGTERM)
            text = term.wait(lambda s: "TEK-EXIT=" in s, "the console to exit", limit=60)
            assert "TEK-EXIT=130" in text and "Traceback" not in text
    finally:
        term.kill()  # the terminal goes away: SIGHUP to everything in it
    deadline = time.monotonic() + 30
    while (left := _processes_with_home(tek_home)) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling for the processes to end; bounded by the deadline
    assert not left, f"processes outlived the console: {_describe(left)}"
    from core.store import open_store

    with open_store() as store:
        (run,) = store.list_runs()
        assert run.status == "cancelled" and run.counts == {"cancelled": 2}
