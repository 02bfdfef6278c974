"""The task table with thousands of rows: diffs by key, paints only what is on screen."""

from __future__ import annotations

from core.events import RunStatus, TaskChanged, TaskInfo, TaskState
from tests.tui.fakes import T0, FakeClient, demo_snapshot, make_app, ready, until

N = 3000


def _tasks() -> list[TaskInfo]:
    return [TaskInfo(id=f"t{i:05d}", name=f"task {i}", agent="noop", pool="noop", deps=(),
                     tags=("even",) if i % 2 == 0 else ()) for i in range(N)]


async def test_thousands_of_rows_update_by_key() -> None:
    client = FakeClient(demo_snapshot(status=RunStatus.RUNNING, tasks=_tasks()))
    app = make_app(client)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await ready(pilot)
        table = screen.table
        assert table.row_count == N
        client.emit(*(TaskChanged(f"t{i:05d}", TaskState.SUCCEEDED, 1, T0 + 1)
                      for i in range(0, N, 3)))
        await until(pilot, lambda: screen.state.counts[TaskState.SUCCEEDED] == N // 3)
        await until(pilot, lambda: table.cell_values(f"t{N - 3:05d}")["state"]
                    is TaskState.SUCCEEDED)
        # on screen: painted at once; far below: recorded, painted when scrolled to
        assert str(table.get_cell("t00000", "state")) == "✓ succeeded"
        assert str(table.get_cell(f"t{N - 3:05d}", "state")) == "○ pending"
        table.move_cursor(row=N - 3)
        await pilot.pause()
        assert str(table.get_cell(f"t{N - 3:05d}", "state")) == "✓ succeeded"
        # a filter over thousands of rows, then rows leaving it as they change
        table.set_filter("state:pending tag:even")
        assert table.row_count == len([i for i in range(N) if i % 2 == 0 and i % 3])
        client.emit(TaskChanged("t00002", TaskState.RUNNING, 1, T0 + 2))
        await until(pilot, lambda: "t00002" not in table.shown_ids)
