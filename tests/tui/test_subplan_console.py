"""A ``plan`` task's sub-tasks in the console: rows ``<task>/<sub-task>`` that show,
filter, select, take the task keys and follow their output (``TasksAdded``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.events import (
    CancelTask,
    OutputLines,
    Progress,
    RetryTask,
    RunStarted,
    RunStatus,
    SkipTask,
    TaskChanged,
    TaskInfo,
    TasksAdded,
    TaskState,
)
from tek_tui.app import TekApp
from tek_tui.screens.confirm import ConfirmModal
from tek_tui.screens.main import MainScreen
from tek_tui.screens.run_state import RunState
from tek_tui.widgets.dag_view import DagView
from tests.tui.fakes import T0, FakeClient, demo_snapshot, make_app, until
from tests.tui.widget_host import run_host, screen_text

SIZE = (120, 40)
R, S, F = TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.FAILED


def _info(task_id: str, agent: str = "shell", deps: tuple[str, ...] = (),
          pool: str = "") -> TaskInfo:
    return TaskInfo(task_id, task_id.rpartition("/")[2], agent, pool or agent, deps)


PARENT = (_info("pre"), _info("nested", "plan", ("pre",)), _info("post", deps=("nested",)))
SUBS = (_info("nested/s1"), _info("nested/s2", deps=("nested/s1",)))


def sub_plan_started() -> list[object]:
    """``pre`` done, ``nested`` running its sub-plan, ``nested/s1`` running."""
    return [
        RunStarted("run-demo", "plans/p.csv", 3, T0),
        TaskChanged("pre", R, 1, T0), TaskChanged("pre", S, 1, T0 + 1, 0),
        TaskChanged("nested", R, 1, T0 + 1),
        TasksAdded("nested", 1, SUBS),
        TaskChanged("nested/s1", R, 1, T0 + 1, pid=None),
        OutputLines("nested/s1", 1, ("s1 1", "s1 2")),
    ]


# ------------------------------------------------------------ the run state


def test_sub_tasks_join_after_their_plan_task_with_their_own_pool() -> None:
    state = RunState(demo_snapshot(RunStatus.RUNNING, PARENT))
    state.take_dirty()
    for event in sub_plan_started():
        state.apply(event)  # type: ignore[arg-type]
    assert state.order == ["pre", "nested", "nested/s1", "nested/s2", "post"]
    s1 = state.tasks["nested/s1"]
    assert (s1.state, s1.agent, s1.pool, s1.started_ts) == (R, "shell", "nested/shell", T0 + 1)
    assert state.counts[R] == 2 and state.counts[TaskState.PENDING] == 2
    assert sum(state.counts.values()) == len(state.tasks) == 5
    dirty = state.take_dirty()
    assert dirty.added and dirty.run
    # in the order they changed: the table adds the sub-plan's rows in its order
    assert [t for t in dirty.tasks if t.startswith("nested/")] == ["nested/s1", "nested/s2"]
    assert state.downstream("nested/s1") == ["nested/s2"]


def test_a_snapshot_with_sub_tasks_lists_them_after_their_plan_task() -> None:
    """An attach after the sub-plan started: the engine's snapshot has them at its end."""
    state = RunState(demo_snapshot(RunStatus.RUNNING, PARENT + SUBS))
    assert state.order == ["pre", "nested", "nested/s1", "nested/s2", "post"]
    assert state.tasks["nested/s2"].pool == "nested/shell"


def test_a_retried_plan_task_starts_its_sub_tasks_afresh_without_old_progress() -> None:
    state = RunState(demo_snapshot(RunStatus.RUNNING, PARENT))
    for event in sub_plan_started():
        state.apply(event)  # type: ignore[arg-type]
    state.apply(Progress("nested", 1, T0 + 2, {"done": 2, "total": 2}, 1.0))
    state.apply(TaskChanged("nested/s1", F, 1, T0 + 2, 1, "exit code 1"))
    state.apply(TaskChanged("nested", F, 1, T0 + 2, None, "sub-plan failed: s1 (exit code 1)"))
    state.apply(TaskChanged("nested", R, 2, T0 + 3))  # retried by the user
    assert state.tasks["nested"].fraction is None and not state.tasks["nested"].progress
    state.apply(TasksAdded("nested", 2, SUBS))
    assert state.tasks["nested/s1"].state is TaskState.PENDING
    assert state.order == ["pre", "nested", "nested/s1", "nested/s2", "post"]  # not twice
    assert sum(state.counts.values()) == 5 and state.counts[F] == 0


# ------------------------------------------------------------- the console


async def test_sub_task_rows_show_filter_select_and_take_the_task_keys() -> None:
    client = FakeClient(demo_snapshot(RunStatus.RUNNING, PARENT), sub_plan_started())  # type: ignore[arg-type]
    app = make_app(client)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.table.row_count == 5)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        table = screen.table
        assert table.shown_ids == ["pre", "nested", "nested/s1", "nested/s2", "post"]
        dag = screen.query_one(DagView)  # the DAG took them in as the sub-plan started
        await until(pilot, lambda: "nested/s2" in dag._index.position)
        cells = table.cell_values("nested/s1")
        assert (cells["state"], cells["agent"], cells["duration"]) == (R, "shell", "1m04s")
        await pilot.press("down", "down")
        await until(pilot, lambda: screen.selected == "nested/s1")
        # its live output reaches the log pane
        client.emit(OutputLines("nested/s1", 1, ("s1 3 from the sub-plan",)))
        await until(pilot, lambda: "s1 3 from the sub-plan" in screen_text(app))
        await pilot.press("c")  # nested/s2 waits for it: asks first, naming it
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert "nested/s2" in screen_text(app)
        await pilot.press("y")
        await until(pilot, lambda: client.controls == [CancelTask("nested/s1")])
        client.emit(TaskChanged("nested/s1", TaskState.CANCELLED, 1, T0 + 5, None,
                                "cancelled by user"),
                    TaskChanged("nested/s2", TaskState.SKIPPED, 0, T0 + 5, None,
                                "upstream s1 cancelled"))
        await until(pilot, lambda: table.cell_values("nested/s2")["progress"]
                    == "upstream s1 cancelled")
        await pilot.press("r")
        await until(pilot, lambda: client.controls[-1] == RetryTask("nested/s1"))
        await pilot.press("down")  # nested/s2, ended: skipped without a question
        await until(pilot, lambda: screen.selected == "nested/s2")
        await pilot.press("x")
        await until(pilot, lambda: client.controls[-1] == SkipTask("nested/s2"))
        # `/` finds sub-tasks by their name
        await pilot.press("escape", "slash", "s", "1", "enter")
        await until(pilot, lambda: table.shown_ids == ["nested/s1"])
        assert "Tasks · s1 · 1 of 5" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: table.row_count == 5)
        # pool:nested/shell picks the sub-plan's pool, pool:shell the parent's
        await pilot.press("slash", *"pool:nested/shell", "enter")
        await until(pilot, lambda: table.shown_ids == ["nested/s1", "nested/s2"])


@pytest.mark.parametrize("size", [(80, 24), SIZE], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_a_real_sub_plan_shows_and_its_task_is_cancelled_by_its_row(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    (tmp_path / "sub.csv").write_text("id,command,deps\ns1,sleep 30,\ns2,echo s2,s1\n")
    plan = tmp_path / "parent.csv"
    plan.write_text("id,agent,command,deps\npre,shell,echo pre,\nnested,plan,sub.csv,pre\n"
                    "post,shell,echo post,nested\n")
    app = TekApp(plan_path=plan, search_dirs=[tmp_path], theme="tek-dark", start=True)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MainScreen)
                    and app.screen.state is not None
                    and "nested/s1" in app.screen.table.tasks
                    and app.screen.table.tasks["nested/s1"].state is R, limit=20)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert screen.table.shown_ids == ["pre", "nested", "nested/s1", "nested/s2", "post"]
        screen.table.focus()
        screen.table.move_cursor(row=2)
        await until(pilot, lambda: screen.selected == "nested/s1")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        state = screen.state
        assert state is not None
        await until(pilot, lambda: state.tasks["nested"].state is F, limit=20)
        assert state.tasks["nested/s1"].state is TaskState.CANCELLED
        assert state.tasks["nested/s2"].reason == "upstream s1 cancelled"
        assert state.tasks["nested"].reason.startswith("sub-plan failed: s1 (cancelled by user)")
        assert state.tasks["post"].state is TaskState.SKIPPED


# ------------------------------------------------------------------- the DAG


async def test_the_dag_draws_sub_tasks_after_their_plan_task() -> None:
    async with run_host(DagView, SIZE) as (app, pilot, _):
        view = app.query_one(DagView)
        view.set_tasks(list(PARENT + SUBS))
        view.update_states({"nested/s1": R, "nested/s9": R})  # an unknown id is ignored
        await pilot.pause()
        text = screen_text(app)

        def column(label: str) -> int:
            return next(line.index(label) for line in text.splitlines() if label in line)

        # s1 waits for no other sub-task: it hangs from its plan task, as post does
        assert column("○ nested") < column("● s1") < column("○ s2")
        assert column("○ nested") < column("○ post")
