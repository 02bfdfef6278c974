"""Suite-wide fixtures: every test gets its own empty ``$TEK_HOME``; ``served_run``
is a real ``tek run`` to attach to (``tek tui --attach``, ``tek ctl``).

Nothing a test does may touch the user's real journal, logs or models.
Area-specific fixtures live beside their tests (``tests/core/``, ``tests/tui/``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import TekError
from core.run_socket import find_served

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def tek_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty tek data folder, exported as ``$TEK_HOME``."""
    home = tmp_path_factory.mktemp("tek_home")
    monkeypatch.setenv("TEK_HOME", str(home))
    yield home


def _served(proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 30
    while True:
        try:
            return find_served("last")
        except TekError:
            assert proc.poll() is None, "tek run ended before serving its run"
            assert time.monotonic() < deadline, "tek run never served its run"
            time.sleep(0.05)  # polling for the socket; bounded by the deadline


@pytest.fixture
def served_run(tmp_path: Path, tek_home: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real `tek run` of two long tasks (nap1, nap2), and the socket it serves.

    A run still going at the end is SIGTERMed (it must exit 130).
    """
    plan = tmp_path / "long.csv"
    plan.write_text("id,command\nnap1,sleep 60\nnap2,sleep 61\n")
    proc = subprocess.Popen([sys.executable, "-m", "tek_tui", "run", "--plain", str(plan)],
                            env={**os.environ, "TEK_HOME": str(tek_home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc, _served(proc)
    finally:
        if proc.poll() is None:  # a test may have ended it already (`tek ctl cancel`)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 130
