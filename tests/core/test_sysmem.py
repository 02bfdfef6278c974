"""System memory figures agree with psutil's, and fall back to it without /proc."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from core import sysmem

_MIB = 1 << 20


def test_total_and_available_match_psutil() -> None:
    vm = psutil.virtual_memory()
    assert sysmem.total_mb() == vm.total // _MIB
    assert abs(sysmem.available_mb() - vm.available // _MIB) < 256  # memory moves meanwhile


def test_without_proc_meminfo_psutil_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sysmem, "MEMINFO", str(tmp_path / "missing"))
    assert sysmem.total_mb() == psutil.virtual_memory().total // _MIB
    assert sysmem.available_mb() > 0
