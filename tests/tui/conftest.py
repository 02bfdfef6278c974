"""Fixtures of the console tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.plan_console import PLAN


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    """``demo.csv``: prep -> train -> report, all noop."""
    path = tmp_path / "demo.csv"
    path.write_text(PLAN, encoding="utf-8")
    return path
