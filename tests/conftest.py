"""Suite-wide fixtures: every test gets its own empty ``$TEK_HOME``.

Nothing a test does may touch the user's real journal, logs or models.
Area-specific fixtures live beside their tests (``tests/core/``, ``tests/tui/``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def tek_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty tek data folder, exported as ``$TEK_HOME``."""
    home = tmp_path_factory.mktemp("tek_home")
    monkeypatch.setenv("TEK_HOME", str(home))
    yield home
