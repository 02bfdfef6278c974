"""Following the log and the log pane's header.

A tester found that a followed log could not be read back: ``k``, ``PgUp``
and ``Home`` snapped to the bottom at the next output line (Home did
nothing), and the header went on saying "following". Now any move up pauses
it (as ``less +F`` and k9s do), ``G``/``End``/``f`` follow again. A long
failure reason cut the header mid-sentence and hid the attempt and follow
state; the header now stays one line and shortens the reason with ``…``.
"""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from textual import events

from core.events import OutputLines, TaskChanged, TaskState
from tek_tui.widgets.log_header import LogHeader, fit_header
from tek_tui.widgets.log_view import LogView
from tests.tui.fakes import T0, make_app, ready, until
from tests.tui.test_log_pane_display import PANE_SIZES, log_client, show_log

TICKS = "".join(f"a1 tick {i}\n" for i in range(1, 101)).encode()


def header(log: LogView) -> str:
    """The header as painted."""
    return str(log.query_one("#log-header", LogHeader).render())


def at_end(log: LogView) -> bool:
    lines = log.lines_widget
    return lines.max_scroll_y > 0 and lines.scroll_y == lines.max_scroll_y


class TestScrollingBackPausesFollowing:
    @PANE_SIZES
    async def test_every_move_up_pauses_and_end_follows_again(self, size: tuple[int, int]) -> None:
        client = log_client({"a1": TICKS}, running=("a1",))
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            log = await show_log(pilot, screen, "a1")
            lines = log.lines_widget
            await pilot.press("l")
            await until(pilot, lambda: lines.has_focus and at_end(log))
            ticks = 100

            async def tick() -> None:
                """One more output line, written to the pane."""
                nonlocal ticks
                ticks += 1
                client.emit(OutputLines("a1", 1, (f"a1 tick {ticks}",)))
                await until(pilot, lambda: lines.lines[-1] == f"a1 tick {ticks}")

            for up, resume in (("k", "G"), ("up", "end"), ("pageup", "f"), ("home", "G"),
                               ("g", "end")):
                await pilot.press(up)
                assert not log.follow, up
                assert header(log).endswith("attempt 1 · paused"), (up, header(log))
                held = lines.scroll_y
                assert held < lines.max_scroll_y
                if up in ("home", "g"):
                    assert held == 0 and lines.scroll_x == 0
                await tick()  # the view stays where the key put it
                assert lines.scroll_y == held and not log.follow, up
                await pilot.press(resume)
                assert log.follow, resume
                assert header(log).endswith("attempt 1 · following"), (resume, header(log))
                await until(pilot, lambda: at_end(log))
                await tick()
                await until(pilot, lambda: at_end(log))

    @PANE_SIZES
    async def test_the_mouse_wheel_up_pauses(self, size: tuple[int, int]) -> None:
        client = log_client({"a1": TICKS}, running=("a1",))
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            log = await show_log(pilot, screen, "a1")
            await until(pilot, lambda: at_end(log))
            await pilot._post_mouse_events([events.MouseScrollUp], log.lines_widget, (2, 2))
            assert not log.follow and "paused" in header(log)
            held = log.lines_widget.scroll_y
            assert held < log.lines_widget.max_scroll_y
            client.emit(OutputLines("a1", 1, ("after the wheel",)))
            await until(pilot, lambda: log.lines_widget.lines[-1] == "after the wheel")
            assert log.lines_widget.scroll_y == held

    @PANE_SIZES
    async def test_g_on_a_finished_log_shows_its_first_line_and_says_paused(
        self, size: tuple[int, int]
    ) -> None:
        client = log_client({"done": TICKS})
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            log = await show_log(pilot, screen, "done")
            await pilot.press("l", "g")
            assert log.lines_widget.scroll_y == 0
            first = "".join(seg.text for seg in log.lines_widget.render_line(0))
            assert first.startswith("a1 tick 1 ")
            assert "following" not in header(log) and header(log).endswith("· paused")
            await pilot.press("G")
            await until(pilot, lambda: at_end(log))
            assert header(log).endswith("· following")


REASON = ("the training job could not reach the parameter server at 10.0.0.17:2222 after "
          "12 tries; check the network policy of namespace ml-batch and the firewall rules")


class TestHeaderStaysOneLine:
    @PANE_SIZES
    async def test_a_long_reason_is_shortened_and_attempt_and_follow_stay(
        self, size: tuple[int, int]
    ) -> None:
        assert len(REASON) > 150
        client = log_client({"a1": TICKS}, running=("a1",))
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            log = await show_log(pilot, screen, "a1")
            client.emit(TaskChanged("a1", TaskState.FAILED, 1, T0 + 9, exit_code=2, reason=REASON))
            bar = log.query_one("#log-header", LogHeader)
            await until(pilot, lambda: "✗ failed" in header(log))
            text = header(log)
            assert text.startswith("a1 · ✗ failed: the training job")
            assert "…" in text and text.endswith(" · attempt 1 · following")
            assert bar.size.height == 1
            assert cell_len(text) <= bar.content_size.width
            await pilot.press("l", "k")
            assert header(log).endswith("… · attempt 1 · paused")
            # A search match adds its note; the attempt and follow state stay.
            await pilot.press("slash", *"tick 42", "enter")
            await until(pilot, lambda: log.match_line is not None)
            text = header(log)
            assert " · attempt 1 · paused · match 1/1" in text, text
            assert cell_len(text) <= bar.content_size.width and bar.size.height == 1


def test_fit_header_shortens_the_reason_first_then_the_note_then_the_id() -> None:
    parts = ("build_all", "✗ failed: " + REASON, "attempt 2 · following", "")
    full = " · ".join(p for p in parts if p)
    assert fit_header(parts, 0) == full  # not laid out yet
    assert fit_header(parts, len(full)) == full
    fitted = fit_header(parts, 60)
    assert 58 <= len(fitted) <= 60  # a space before the cut is dropped
    assert fitted.startswith("build_all · ✗ failed: the train") and fitted.endswith(
        "… · attempt 2 · following")
    note = "match 3/10 at line 4,242 of the last 5,000"
    fitted = fit_header((*parts[:3], note), 60)
    assert fitted.startswith("build_all · ✗ failed:…") and "attempt 2 · following · match" in fitted
    assert len(fitted) <= 60 and fitted.endswith("…")
    # Wide characters count two cells; control characters are shown escaped.
    fitted = fit_header(("任务_一二三四五六", "✗ failed: 错误\n" * 20, "attempt 1 · paused", ""), 50)
    assert cell_len(fitted) <= 50 and "\n" not in fitted and fitted.endswith("attempt 1 · paused")


@pytest.mark.parametrize("width", [1, 5, 20])
def test_fit_header_never_overflows(width: int) -> None:
    parts = ("a_rather_long_task_id", "✗ failed: " + REASON, "attempt 12 · following", "match")
    assert cell_len(fit_header(parts, width)) <= width
