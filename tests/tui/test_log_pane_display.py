"""The log pane draws what it counts: colour codes, binary, emoji and ``\\r`` progress.

A tester found coloured output leaving the previous log's text on screen:
the escape codes went to the terminal (which ran them, in no cells) while
the pane counted their bytes, so each coloured row ended short and its end
kept the old text. The same with emoji whose width terminals count
otherwise, and with random binary. ``\\r`` progress became one line per update.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot

from core.events import Event, OutputLines, RunStarted, TaskChanged, TaskInfo, TaskState
from core.paths import run_log_path
from tek_tui.screens.main import MainScreen
from tek_tui.widgets.log_text import read_tail, shown_line
from tek_tui.widgets.log_view import LogView
from tests.tui.fakes import T0, FakeClient, demo_snapshot, make_app, ready, until

#: The sizes the log pane is checked at: narrow (one pane at a time) and wide.
PANE_SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])

LONG = b"".join(b"LONG" * 40 + b"\n" for _ in range(30))
COLOURED = b"".join(
    b"\x1b[31mred %d\x1b[0m \x1b[1;32mgreen bold\x1b[0m \x1b[44mbluebg\x1b[0m\n" % i
    for i in range(1, 31)
)
#: Bytes no terminal draws as they are: C0 and C1 controls, DEL, a CSI that
#: clears the screen, an unassigned code point, invalid UTF-8.
BINARY = b"".join(
    b"%02d \x00\x07\x1b[2J\x9b\xc2\x9b\x7f\xf3\xa0\x82\xad\xff\xfe\x0c\x0bend\n" % i
    for i in range(30)
)
EMOJI = "".join(f"emoji {i} ❤️ ⚠️ 👍🏽 👨‍👩‍👧 漢字 ok\n" for i in range(30)).encode()


def log_client(logs: Mapping[str, bytes], running: tuple[str, ...] = ()) -> FakeClient:
    """A run of one task per ``logs`` key, each with that first attempt log.

    Tasks in ``running`` are still running; the others succeeded.
    """
    tasks = tuple(TaskInfo(task_id, task_id, "shell", "shell", ()) for task_id in logs)
    events: list[Event] = [RunStarted("run-demo", "plans/demo.csv", len(tasks), T0)]
    for i, (task_id, data) in enumerate(logs.items()):
        path = run_log_path("run-demo", task_id, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        events.append(TaskChanged(task_id, TaskState.RUNNING, 1, T0 + i))
        if task_id not in running:
            events.append(TaskChanged(task_id, TaskState.SUCCEEDED, 1, T0 + i + 1, exit_code=0))
    return FakeClient(demo_snapshot(tasks=tasks), events)


async def show_log(pilot: Pilot[Any], screen: MainScreen, task_id: str) -> LogView:
    """Select ``task_id`` in the table and wait until its log file is in the pane."""
    screen.table.focus()
    screen.table.select(task_id)
    log = screen.log_view
    await until(pilot, lambda: screen.selected == task_id and log.task_id == task_id
                and not log._loading and log.lines_widget.line_count > 0)
    await pilot.pause()
    return log


def rows(log: LogView) -> list[str]:
    """The log's rows as painted (the text of each row's segments)."""
    lines = log.lines_widget
    return ["".join(seg.text for seg in lines.render_line(y)) for y in range(lines.size.height)]


def assert_drawn_as_counted(log: LogView) -> None:
    """Every row holds only characters a terminal draws in the cells the pane counts."""
    lines = log.lines_widget
    for y in range(lines.size.height):
        strip = lines.render_line(y)
        text = "".join(seg.text for seg in strip)
        assert all(ch.isprintable() or ch == " " for ch in text), repr(text)
        assert "\ufe0f" not in text and "\u200d" not in text, repr(text)
        assert cell_len(text) == strip.cell_length == lines.size.width, repr(text)


class TestWhatThePaneDraws:
    @PANE_SIZES
    async def test_coloured_output_is_shown_escaped_and_leaves_nothing_of_the_last_log(
        self, size: tuple[int, int]
    ) -> None:
        client = log_client({"long": LONG, "c_bg": COLOURED})
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            log = await show_log(pilot, screen, "long")
            assert any("LONGLONG" in row for row in rows(log))
            log = await show_log(pilot, screen, "c_bg")
            shown = [row for row in rows(log) if row.strip()]
            assert shown, rows(log)
            assert shown[-1].startswith("\\x1b[31mred 30\\x1b[0m \\x1b[1;32mgreen bold\\x1b[0m")
            assert not any("LONG" in row or "ONG" in row for row in rows(log))
            assert_drawn_as_counted(log)

    @PANE_SIZES
    async def test_binary_and_emoji_rows_are_drawn_in_the_cells_counted(
        self, size: tuple[int, int]
    ) -> None:
        client = log_client({"long": LONG, "bin": BINARY, "emoji": EMOJI})
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            await show_log(pilot, screen, "long")
            log = await show_log(pilot, screen, "bin")
            assert log.lines_widget.lines[-1] == (
                "29 \\x00\\x07\\x1b[2J�\\x9b\\x7f\\U000e00ad��\\x0c\\x0bend")
            assert_drawn_as_counted(log)
            await show_log(pilot, screen, "long")
            log = await show_log(pilot, screen, "emoji")
            assert log.lines_widget.lines[-1] == "emoji 29 ❤ ⚠ 👍 👨👩👧 漢字 ok"
            assert_drawn_as_counted(log)
            # Live lines are shown the same way as the file's.
            client.emit(OutputLines("emoji", 1, ("\x1b[1mlive ❤️\x1b[0m",)))
            await until(pilot, lambda: log.lines_widget.lines[-1] == "\\x1b[1mlive ❤\\x1b[0m")


PROGRESS = "".join(f"\rprogress {2 * i}%" for i in range(1, 51))


class TestCarriageReturns:
    @PANE_SIZES
    async def test_progress_redrawn_with_cr_is_one_line_showing_its_last_state(
        self, size: tuple[int, int]
    ) -> None:
        data = f"start\n{PROGRESS}\ndone\r\n".encode()
        client = log_client({"bar": data}, running=("bar",))
        async with make_app(client).run_test(size=size) as pilot:
            screen = await ready(pilot)
            log = await show_log(pilot, screen, "bar")
            assert list(log.lines_widget.lines) == ["start", "progress 100%", "done"]
            client.emit(OutputLines("bar", 1, (PROGRESS.replace("progress", "upload"), "after")))
            await until(pilot, lambda: log.lines_widget.lines[-1] == "after")
            assert list(log.lines_widget.lines[-2:]) == ["upload 100%", "after"]
            # The file keeps what the task printed, every update.
            assert run_log_path("run-demo", "bar", 1).read_bytes() == data


@pytest.mark.parametrize(("printed", "shown"), [
    ("plain text", "plain text"),
    ("tab\tkept", "tab\tkept"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("a\rb\rc", "c"),
    ("crlf\r", "crlf"),
    ("100%\r\r", "100%"),
    ("form\x0cfeed\x85next\u2028line", "form\\x0cfeed\\x85next\\u2028line"),
    ("bidi \u202eevil", "bidi \\u202eevil"),
    ("❤️ 👍🏽 👨‍👩‍👧", "❤ 👍 👨👩👧"),
    ("unassigned \U000e05a7 \u0378", "unassigned \\U000e05a7 \\u0378"),
    ("漢字 é\u0301 \xa0nbsp", "漢字 é\u0301 \xa0nbsp"),
])
def test_shown_line(printed: str, shown: str) -> None:
    assert shown_line(printed) == shown


def test_read_tail_ends_lines_at_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(f"one\x0cstill one\n{PROGRESS}\nlast\u2028same\r\n".encode())
    assert read_tail(path, 10) == ["one\\x0cstill one", "progress 100%", "last\\u2028same"]
    assert read_tail(path, 1) == ["last\\u2028same"]
