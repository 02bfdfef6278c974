"""core.plan_edit: add, replace, rename and delete tasks, checked as ``tek validate`` checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import PlanError
from core.plan import Plan
from core.plan_edit import (
    delete_task,
    dependants,
    new_task_id,
    put_task,
    same_tasks,
    task_cells,
)
from core.plan_io import read_plan
from core.plan_write import validate_plan, write_plan

PLAN = """id,agent,command,deps,cpus,x_owner
a,shell,echo a,,,me
b,shell,echo b,a,2,
c,noop,,a b,,you
"""


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    path = tmp_path / "plan.csv"
    path.write_text(PLAN, encoding="utf-8")
    return read_plan(path)


def test_task_cells_are_what_the_file_says(plan: Plan) -> None:
    cells = task_cells(plan.task("b"))
    assert cells["id"] == "b" and cells["command"] == "echo b"
    assert cells["deps"] == "a" and cells["cpus"] == "2"
    assert cells["gpus"] == "" and cells["timeout_s"] == ""  # defaults are empty cells
    assert task_cells(plan.task("c"))["deps"] == "a;b"


def test_add_after_selected(plan: Plan) -> None:
    new = put_task(plan, {"id": "d", "command": "echo d", "deps": "b"}, after="a")
    assert [t.id for t in new] == ["a", "d", "b", "c"]
    assert new.task("d").deps == ("b",) and new.task("d").agent == "shell"
    assert new.path == plan.path
    assert [t.line for t in new] == [2, 3, 4, 5]


def test_add_at_end_without_anchor(plan: Plan) -> None:
    new = put_task(plan, {"id": "d", "command": "true"})
    assert [t.id for t in new][-1] == "d"


def test_replace_command_keeps_everything_else(plan: Plan) -> None:
    cells = task_cells(plan.task("b")) | {"command": "echo changed"}
    new = put_task(plan, cells, replace="b")
    assert new.task("b").command == "echo changed"
    assert new.task("b").cpus == 2.0
    assert [t.id for t in new] == ["a", "b", "c"]


def test_rename_updates_deps_and_keeps_meta(plan: Plan) -> None:
    cells = task_cells(plan.task("a")) | {"id": "first"}
    new = put_task(plan, cells, replace="a")
    assert [t.id for t in new] == ["first", "b", "c"]
    assert new.task("b").deps == ("first",)
    assert new.task("c").deps == ("first", "b")
    assert new.task("first").meta == (("x_owner", "me"),)


def test_bad_value_names_the_column_without_line(plan: Plan) -> None:
    with pytest.raises(PlanError) as err:
        put_task(plan, {"id": "d", "command": "true", "cpus": "lots", "deps": "nope"}, after="c")
    problems = err.value.problems
    assert any(p.startswith("cpus: ") and "(lots)" in p for p in problems)
    assert any(p.startswith("deps: ") and "nope" in p for p in problems)


def test_same_rules_as_validate(plan: Plan) -> None:
    with pytest.raises(PlanError) as err:
        put_task(plan, {"id": "b", "command": "true"})
    assert any("id" in p and "b" in p for p in err.value.problems)  # duplicate id
    with pytest.raises(PlanError) as err:
        put_task(plan, {"id": "e", "agent": "shell"})
    assert any(p.startswith("command: ") for p in err.value.problems)


def test_cycle_is_refused(plan: Plan) -> None:
    cells = task_cells(plan.task("a")) | {"deps": "c"}
    with pytest.raises(PlanError) as err:
        put_task(plan, cells, replace="a")
    assert any("cycle" in p for p in err.value.problems)


def test_delete_drops_it_from_deps(plan: Plan) -> None:
    assert dependants(plan, "a") == ["b", "c"]
    new = delete_task(plan, "a")
    assert [t.id for t in new] == ["b", "c"]
    assert new.task("b").deps == () and new.task("c").deps == ("b",)
    assert validate_plan(new) == []


def test_delete_refuses_unknown_and_last(plan: Plan) -> None:
    with pytest.raises(PlanError):
        delete_task(plan, "zz")
    one = delete_task(delete_task(plan, "c"), "b")
    with pytest.raises(PlanError, match="only task"):
        delete_task(one, "a")


def test_replace_unknown_task(plan: Plan) -> None:
    with pytest.raises(PlanError):
        put_task(plan, {"id": "x", "command": "true"}, replace="nope")


def test_new_task_id(plan: Plan) -> None:
    assert new_task_id(plan) == "task"
    new = put_task(plan, {"id": "task", "command": "true"})
    assert new_task_id(new) == "task-2"


def test_multiline_command_edit_strips_right_line(plan: Plan) -> None:
    new = put_task(plan, {"id": "m", "command": "echo 1\necho 2"}, after="a")
    with pytest.raises(PlanError) as err:
        put_task(new, {"id": "x", "command": "true", "gpus": "-1"}, after="c")
    assert any(p.startswith("gpus: ") for p in err.value.problems)


def test_saved_edit_reads_back_the_same(plan: Plan, tmp_path: Path) -> None:
    new = put_task(plan, task_cells(plan.task("a")) | {"id": "a1", "env": "K=V"}, replace="a")
    new = put_task(new, {"id": "z", "command": "echo 'q,\"x\"'", "tags": "t1;t2"}, after="b")
    assert new.path is not None
    write_plan(new, new.path)
    back = read_plan(new.path)
    assert same_tasks(back, new)
    assert not same_tasks(back, plan)


def test_saving_keeps_the_file_permissions_and_leaves_no_temporary_file(
    plan: Plan, tmp_path: Path
) -> None:
    assert plan.path is not None
    plan.path.chmod(0o640)
    write_plan(put_task(plan, {"id": "z", "command": "true"}, after="b"), plan.path)
    assert plan.path.stat().st_mode & 0o777 == 0o640  # was 0600, mkstemp's mode
    assert sorted(p.name for p in plan.path.parent.iterdir()) == [plan.path.name]


def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plan.path is not None
    before = plan.path.read_bytes()

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(PlanError, match="cannot write: No space left on device"):
        write_plan(put_task(plan, {"id": "z", "command": "true"}, after="b"), plan.path)
    assert plan.path.read_bytes() == before
    assert sorted(p.name for p in plan.path.parent.iterdir()) == [plan.path.name]


def test_a_new_plan_file_gets_the_umask_default_mode(plan: Plan, tmp_path: Path) -> None:
    new_path = tmp_path / "new.csv"
    old = os.umask(0o027)
    try:
        write_plan(plan, new_path)
    finally:
        os.umask(old)
    assert new_path.stat().st_mode & 0o777 == 0o640
