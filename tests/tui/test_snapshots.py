"""SVG snapshots of the main screen in every theme, from the recorded demo run.

Deterministic: frozen clock, fixed event script, fake telemetry without GPUs,
no hostnames, PIDs or wall-clock times. Update only after viewing the report:
``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from tek_tui.themes import load_themes
from tests.tui.fakes import FakeTelemetry, FrozenClock, make_app, ready, until

THEMES = sorted(load_themes().themes)


def snapshot_app(theme: str = "tek-dark"):  # type: ignore[no-untyped-def]
    """The demo run with frozen clocks and one fake telemetry sample."""
    return make_app(theme=theme, sampler=FakeTelemetry(), telemetry_s=3600.0,
                    pane_clock=FrozenClock(1000.0))


async def _settle(pilot) -> None:  # type: ignore[no-untyped-def]
    screen = await ready(pilot)
    await pilot.press("down", "down", "down")  # select the ML task: log and loss curve
    system = screen.query_one("#system-pane")
    await until(pilot, lambda: screen.selected == "train_model" and not screen.log_view._loading
                and system.samples >= 1)
    screen._flush()
    await pilot.pause()


class TestMainScreen:
    @pytest.mark.parametrize("theme", THEMES)
    def test_main_screen_wide(self, snap_compare, theme: str) -> None:  # type: ignore[no-untyped-def]
        app = snapshot_app(theme=theme)
        assert snap_compare(app, terminal_size=(160, 45), run_before=_settle)

    @pytest.mark.parametrize("theme", THEMES)
    def test_main_screen_80x24(self, snap_compare, theme: str) -> None:  # type: ignore[no-untyped-def]
        app = snapshot_app(theme=theme)
        assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


class TestOverlays:
    def test_help_screen(self, snap_compare) -> None:  # type: ignore[no-untyped-def]
        async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
            await _settle(pilot)
            await pilot.press("question_mark")
            await pilot.pause()

        app = snapshot_app()
        assert snap_compare(app, terminal_size=(100, 40), run_before=run_before)

    def test_filtered_and_zoomed(self, snap_compare) -> None:  # type: ignore[no-untyped-def]
        async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
            await _settle(pilot)
            await pilot.press("slash", *"tag:ci", "enter", "z")
            await pilot.pause()

        app = snapshot_app()
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
