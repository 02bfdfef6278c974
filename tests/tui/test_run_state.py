"""RunState folds protocol events into the console's picture of a run (no app needed)."""

from __future__ import annotations

from core.events import (
    AdmissionChanged,
    OutputDropped,
    OutputLines,
    PoolChanged,
    Progress,
    RunFinished,
    RunStarted,
    RunStatus,
    TaskChanged,
    TaskState,
)
from tek_tui.screens.run_state import LOSS_POINTS, RunState
from tests.tui.fakes import T0, demo_events, demo_snapshot


def test_snapshot_then_events() -> None:
    state = RunState(demo_snapshot())
    assert state.status is RunStatus.PENDING and not state.active
    assert state.take_dirty().tasks == set(state.tasks)  # first paint draws everything
    for event in demo_events():
        state.apply(event)
    assert state.status is RunStatus.RUNNING and state.active
    assert state.counts[TaskState.SUCCEEDED] == 4
    assert state.counts[TaskState.FAILED] == 1
    assert sum(state.counts.values()) == len(state.tasks)
    train = state.tasks["train_model"]
    assert train.state is TaskState.RUNNING and train.started_ts == T0 + 30
    assert train.fraction == 0.4 and train.progress["epoch"] == 8
    assert list(state.loss["train_model"])[-1] == 0.55
    dirty = state.take_dirty()
    assert "train_model" in dirty.tasks and dirty.pools and dirty.run
    assert state.take_dirty().tasks == set()


def test_durations_restart_on_a_new_attempt() -> None:
    state = RunState(demo_snapshot())
    state.apply(TaskChanged("lint", TaskState.RUNNING, 1, T0))
    state.apply(TaskChanged("lint", TaskState.FAILED, 1, T0 + 5, exit_code=2))
    assert state.tasks["lint"].finished_ts == T0 + 5
    state.apply(TaskChanged("lint", TaskState.RUNNING, 2, T0 + 9, pid=4242))
    lint = state.tasks["lint"]
    assert (lint.started_ts, lint.finished_ts, lint.attempt) == (T0 + 9, None, 2)
    assert state.running_pids() == {"lint": 4242}


def test_only_the_watched_task_keeps_output() -> None:
    state = RunState(demo_snapshot())
    state.watch("lint")
    state.apply(OutputLines("lint", 1, ("a", "b")))
    state.apply(OutputLines("fetch_data", 1, ("not kept",)))
    assert state.take_lines() == [(1, "a"), (1, "b")]
    assert state.take_lines() == []
    state.watch("fetch_data")
    state.apply(OutputLines("lint", 1, ("dropped",)))
    assert state.take_lines() == []


def test_pause_pools_drops_and_finish() -> None:
    state = RunState(demo_snapshot())
    state.apply(RunStarted("run-demo", "plans/demo.csv", 12, T0))
    state.apply(AdmissionChanged(True, "paused by user", T0 + 1))
    assert state.status is RunStatus.PAUSED
    state.apply(AdmissionChanged(True, "available memory 100 MiB below floor 256 MiB", T0 + 2))
    assert state.status is RunStatus.RUNNING and state.admission_paused
    state.apply(PoolChanged("shell", 4, 2, 7, 11, T0 + 3))
    assert state.pools["shell"].size == 4 and state.pools["shell"].queued == 7
    state.apply(OutputDropped("lint", 1, 40))
    assert state.dropped_lines == 40
    state.apply(RunFinished("run-demo", RunStatus.CANCELLED, {}, 4.0, T0 + 4))
    assert state.finished and state.status is RunStatus.CANCELLED and not state.active


def test_loss_history_is_bounded_and_unknown_tasks_ignored() -> None:
    state = RunState(demo_snapshot())
    for i in range(LOSS_POINTS + 50):
        state.apply(Progress("train_model", 1, T0 + i, {"loss": float(i)}))
    assert len(state.loss["train_model"]) == LOSS_POINTS
    state.apply(TaskChanged("no_such_task", TaskState.RUNNING, 1, T0))
    state.apply(Progress("no_such_task", 1, T0, {"loss": 1.0}))
    assert "no_such_task" not in state.tasks


def test_open_run_with_every_task_ended_is_not_active() -> None:
    snapshot = demo_snapshot(status=RunStatus.RUNNING)
    state = RunState(snapshot)
    for task in snapshot.tasks:
        state.apply(TaskChanged(task.id, TaskState.SUCCEEDED, 1, T0))
    assert state.status is RunStatus.RUNNING and not state.active
