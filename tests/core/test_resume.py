"""What a resume reruns: not succeeded, changed rows and downstream, --from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from core.errors import PlanError, StoreError
from core.journal import create_journal
from core.plan import Plan, Task
from core.resume import HASH_LEN, decide_resume, full_row_hash, legacy_row_hash, row_hash
from core.store import Store, TaskRecord, open_store
from tests.core.journal_helpers import diamond_plan


def _journal(plan: Plan, states: dict[str, str], attempts: dict[str, int] | None = None) -> list[TaskRecord]:
    attempts = attempts or {}
    return [
        TaskRecord(t.id, i, row_hash(t), states.get(t.id, "pending"), attempts.get(t.id, 0), None, "")
        for i, t in enumerate(plan.tasks)
    ]


def _replace(plan: Plan, task_id: str, **changes: Any) -> Plan:
    return Plan(tuple(dataclasses.replace(t, **changes) if t.id == task_id else t for t in plan.tasks))


ALL_OK = {tid: "succeeded" for tid in "abcde"}


def test_only_what_did_not_succeed_reruns() -> None:
    plan = diamond_plan()
    states = {"a": "succeeded", "b": "succeeded", "c": "running", "d": "pending", "e": "failed"}
    d = decide_resume(plan, _journal(plan, states, {"a": 1, "b": 1, "c": 1, "e": 3}))
    assert d.rerun == {"c", "d", "e"}
    assert d.completed == {"a", "b"}
    assert d.why == {"c": "was running", "d": "was pending", "e": "was failed"}
    assert d.attempts_so_far == {"a": 1, "b": 1, "c": 1, "e": 3}


def test_everything_succeeded_reruns_nothing() -> None:
    plan = diamond_plan()
    d = decide_resume(plan, _journal(plan, ALL_OK))
    assert d.rerun == frozenset() and d.completed == set("abcde")


def test_changed_row_reruns_it_and_its_downstream() -> None:
    plan = diamond_plan()
    journal = _journal(plan, ALL_OK)
    edited = _replace(plan, "b", command="2")
    d = decide_resume(edited, journal)
    assert d.rerun == {"b", "d"}
    assert d.why == {"b": "row changed", "d": "downstream of b"}


@pytest.mark.parametrize(
    "change",
    [{"agent": "shell"}, {"command": "2"}, {"deps": ("e",)}, {"env": (("K", "V"),)},
     {"cwd": "sub"}, {"cpus": 2.0}, {"gpus": 1}, {"memory_mb": 512}],
)
def test_an_edit_to_what_a_task_does_is_a_change(change: dict[str, Any]) -> None:
    plan = diamond_plan()
    d = decide_resume(_replace(plan, "a", **change), _journal(plan, ALL_OK))
    assert d.rerun >= set("abcd") and d.why["a"] == "row changed"


@pytest.mark.parametrize(
    "change",
    [{"name": "B"}, {"tags": ("nightly",)}, {"priority": 5}, {"pool": "io"}, {"retries": 2},
     {"retry_backoff_s": 9.0}, {"timeout_s": 60.0}, {"meta": (("x_owner", "me"),)}],
)
def test_an_edit_to_how_a_task_is_labelled_or_scheduled_reruns_nothing(change: dict[str, Any]) -> None:
    """Fixing a label's typo in a 90-task plan must not rerun the night."""
    plan = diamond_plan()
    assert decide_resume(_replace(plan, "a", **change), _journal(plan, ALL_OK)).rerun == frozenset()


def test_the_order_of_distinct_env_keys_is_not_a_change() -> None:
    plan = _replace(diamond_plan(), "b", env=(("A", "1"), ("B", "2")))
    journal = _journal(plan, ALL_OK)
    assert decide_resume(_replace(plan, "b", env=(("B", "2"), ("A", "1"))), journal).rerun == frozenset()
    assert decide_resume(_replace(plan, "b", env=(("A", "1"), ("B", "3"))), journal).rerun == {"b", "d"}


def test_line_number_and_dependency_order_are_not_changes() -> None:
    plan = diamond_plan()
    moved = Plan(tuple(dataclasses.replace(t, line=t.line + 10, deps=tuple(reversed(t.deps))) for t in plan.tasks))
    assert decide_resume(moved, _journal(plan, ALL_OK)).rerun == frozenset()


def test_new_task_runs_and_its_downstream_too() -> None:
    plan = diamond_plan()
    journal = _journal(plan, ALL_OK)
    grown = Plan((*plan.tasks[:4], Task(id="f", agent="noop"), dataclasses.replace(plan.tasks[4], deps=("f",))))
    d = decide_resume(grown, journal)
    assert d.rerun == {"f", "e"}
    assert d.why["f"] == "new task"


def test_from_forces_a_task_and_its_downstream() -> None:
    plan = diamond_plan()
    d = decide_resume(plan, _journal(plan, ALL_OK), from_tasks=["c"])
    assert d.rerun == {"c", "d"} and d.why["c"] == "--from"
    d = decide_resume(plan, _journal(plan, ALL_OK), from_tasks=["a", "e"])
    assert d.rerun == set("abcde")


def test_from_unknown_task_is_bad_input() -> None:
    plan = diamond_plan()
    with pytest.raises(PlanError, match="--from: no task 'zz'"):
        decide_resume(plan, _journal(plan, ALL_OK), from_tasks=["zz"])


def test_tasks_gone_from_the_plan_are_ignored() -> None:
    plan = diamond_plan()
    journal = _journal(plan, ALL_OK, {"e": 2})
    smaller = Plan(plan.tasks[:4])
    d = decide_resume(smaller, journal)
    assert d.rerun == frozenset() and "e" not in d.attempts_so_far


def test_row_hash_is_stable_and_sensitive() -> None:
    t = Task(id="a", command="echo hi", deps=("x", "y"))
    assert row_hash(t) == row_hash(dataclasses.replace(t, deps=("y", "x"), line=9))
    assert row_hash(t) != row_hash(dataclasses.replace(t, command="echo ho"))
    assert len(row_hash(t)) == HASH_LEN


def test_hashes_of_an_older_tek_still_match() -> None:
    """Rows journaled before v3 hold the repr-based hash: unchanged rows do not rerun."""
    plan = diamond_plan()
    old = [dataclasses.replace(r, row_hash=legacy_row_hash(plan.task(r.task_id))) for r in _journal(plan, ALL_OK)]
    assert {len(r.row_hash) for r in old} == {24}
    assert decide_resume(plan, old).rerun == frozenset()
    changed = _replace(plan, "b", command="2")
    assert decide_resume(changed, old).why == {"b": "row changed", "d": "downstream of b"}


def test_full_row_hashes_of_the_previous_tek_still_match() -> None:
    """Rows journaled with the hash over every column (16 digits): unchanged rows do not rerun."""
    plan = _replace(diamond_plan(), "b", name="B", meta=(("x_owner", "me"),), deps=("a", "c"))
    old = [dataclasses.replace(r, row_hash=full_row_hash(plan.task(r.task_id))) for r in _journal(plan, ALL_OK)]
    assert {len(r.row_hash) for r in old} == {16} and HASH_LEN != 16
    assert decide_resume(plan, old).rerun == frozenset()
    changed = _replace(plan, "c", command="2")
    assert decide_resume(changed, old).why == {"c": "row changed", "b": "downstream of c",
                                               "d": "downstream of c"}
    # Such a hash covers every column: it cannot tell a label from a command.
    assert decide_resume(_replace(plan, "e", name="E"), old).why == {"e": "row changed"}


def test_a_run_set_up_in_the_background_resumes_like_any_other(tmp_path: Path) -> None:
    """begin_run(background=True): a reader beside it sees the run whole or not at all."""
    plan = Plan(tuple(Task(id=f"t{i}", agent="noop", cpus=0.5 if i == 7 else 1.0) for i in range(3000)))
    path = tmp_path / "j.db"
    with open_store(path) as store, open_store(path, create=False) as reader:
        store.begin_run("R", plan, background=True)
        runs = reader.list_runs()
        assert runs == [] or sum(runs[0].counts.values()) == 3000
        store.settle()
        run, tasks, _ = reader.read_run("R")
        assert run.counts == {"pending": 3000} and [t.idx for t in tasks] == list(range(3000))
        assert all(t.row_hash == row_hash(plan.tasks[t.idx]) for t in tasks)
        with reader.read() as conn:
            assert conn.execute("SELECT cpus FROM tasks WHERE task_id = 't7'").fetchone() == (0.5,)
        with pytest.raises(StoreError, match="already in the journal"):
            store.begin_run("R", plan, background=True)
        assert decide_resume(plan, tasks).rerun == frozenset(plan.by_id)  # all pending


def _crashed_run(store: Store) -> tuple[str, Plan]:
    """A run of the diamond whose process died with ``c`` running."""
    from core.events import TaskChanged, TaskState
    from tests.core.journal_helpers import flat, ran, started

    plan = diamond_plan()
    j = create_journal(plan, store=store, options={"jobs": 2})
    j.recorder.record_sync(
        flat(started(j.run_id, 5), ran("a"), ran("b"), ran("e", ok=False), TaskChanged("c", TaskState.RUNNING, 1, 200.0))
    )
    # the writer is gone, and the run began long before this process did
    store._conn.execute("UPDATE runs SET pid = 2147483000, created_ts = 1000, pid_ts = 1000")
    return j.run_id, plan


def test_create_journal_resumes_a_crashed_run(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, plan = _crashed_run(store)
        j = create_journal(plan, store=store, resume="last")
        assert (j.run_id, j.interrupted) == (run_id, 1)
        assert j.completed == {"a", "b"} and j.decision is not None and j.decision.rerun == {"c", "d", "e"}
        assert j.attempts_so_far == {"a": 1, "b": 1, "c": 1, "e": 1}
        run, tasks, attempts = store.read_run(run_id)
        assert run.resumes == 1 and run.is_live  # this (younger) process owns it now
        assert {a.task_id: a.state for a in attempts}["c"] == "interrupted"
        assert all(a.ended_ts is not None for a in attempts)
        assert {t.task_id: t.state for t in tasks} == {
            "a": "succeeded", "b": "succeeded", "c": "pending", "d": "pending", "e": "pending",
        }  # fmt: skip
        # a second resume while this process holds the run is refused
        with pytest.raises(StoreError, match=f"run {run_id} is still running"):
            create_journal(plan, store=store, resume=run_id)


def test_a_resumed_run_s_duration_leaves_out_the_time_it_was_down(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, plan = _crashed_run(store)  # started at 99, last seen at 200 (c started), died
        create_journal(plan, store=store, resume=run_id)
        run = store.get_run(run_id)
        assert run.earlier_s == 101.0  # not the decades from 200 to now
        assert run.duration_s is not None and 101.0 <= run.duration_s < 101.0 + 60
        # this session ends 7 s after its resume, and the run is resumed again later
        store._conn.execute("UPDATE runs SET status = 'failed', ended_ts = pid_ts + 7, pid = 2147483000")
        assert store.get_run(run_id).duration_s == pytest.approx(108.0)
        create_journal(plan, store=store, resume=run_id)
        assert store.get_run(run_id).earlier_s == pytest.approx(108.0)


def test_of_two_resumes_that_both_found_the_run_free_only_the_first_takes_it(tmp_path: Path) -> None:
    # Both checked before either wrote (two tek run --resume started together):
    # the check that decides is the one inside the write transaction.
    with open_store(tmp_path / "j.db") as store:
        run_id, plan = _crashed_run(store)
        first = create_journal(plan, store=store, resume=run_id, defer_reopen=True)
        second = create_journal(plan, store=store, resume=run_id, defer_reopen=True)
        first.commit_resume()
        with pytest.raises(StoreError, match=f"run {run_id} is still running"):
            store.reopen_run(run_id, plan, frozenset({"c"}))  # what second's commit_resume writes
        assert store.get_run(run_id).resumes == 1
        second.discard()


def test_create_journal_from_and_new_runs(tmp_path: Path) -> None:
    with open_store(tmp_path / "j.db") as store:
        run_id, plan = _crashed_run(store)
        j = create_journal(plan, store=store, resume=run_id[:10], from_tasks=["a"])
        assert j.completed == frozenset() and j.run_id == run_id
        fresh = create_journal(plan, store=store, run_id="new-run")
        assert (fresh.run_id, fresh.completed, fresh.decision) == ("new-run", frozenset(), None)
        assert store.resolve_run("last") == "new-run"


def test_a_task_the_user_skipped_stays_skipped() -> None:
    """Its downstream ran without it: running it now would put it after them. A task
    skipped because its upstream failed reruns, as before."""
    plan = diamond_plan()  # a -> (b, c) -> d, and e
    states = {"a": "succeeded", "b": "skipped", "c": "succeeded", "d": "succeeded",
              "e": "skipped"}
    reasons = {"b": "skipped by user", "e": "upstream x failed"}
    journal = [dataclasses.replace(r, reason=reasons.get(r.task_id, ""))
               for r in _journal(plan, states)]
    d = decide_resume(plan, journal)
    assert (d.skipped, d.rerun, d.completed) == ({"b"}, {"e"}, {"a", "c", "d"})
    d = decide_resume(plan, journal, ["b"])  # --from reruns it, and its downstream
    assert (d.skipped, d.rerun) == (frozenset(), {"b", "d", "e"})


async def test_the_engine_starts_kept_skips_as_skipped_and_runs_their_downstream() -> None:
    from core.engine import RunOptions, create_run
    from core.events import TaskState
    from tests.core.engine_helpers import noop, plan_of, run_collect

    run = create_run(plan_of(noop("x"), noop("y", deps=("x",)), noop("z", deps=("y",))),
                     RunOptions(memory_floor_mb=0), completed={"x"}, skipped={"y"})
    summary, _ = await run_collect(run)
    assert (summary.tasks["y"].state, summary.tasks["y"].reason) == (TaskState.SKIPPED,
                                                                     "skipped by user")
    assert summary.tasks["z"].state is TaskState.SUCCEEDED


async def test_a_kept_skip_still_waits_for_its_upstream_to_succeed() -> None:
    """U -> S -> D, S skipped by the user, U failed: resumed with U failing again, D must
    not run (it started beside U and succeeded)."""
    from core.engine import RunOptions, create_run
    from core.events import TaskState
    from tests.core.engine_helpers import new_probe, plan_of, probe, run_collect

    opts = RunOptions(jobs=4, memory_floor_mb=0)
    p = new_probe(opts, 4)
    plan = plan_of(probe("u", "0.05:1"), probe("s", deps=("u",)), probe("d", deps=("s",)))
    summary, _ = await run_collect(create_run(plan, opts, skipped={"s"}))
    assert summary.tasks["s"].state is TaskState.SKIPPED
    assert summary.tasks["d"].state is TaskState.SKIPPED and "d" not in {t for t, _ in p.starts}
