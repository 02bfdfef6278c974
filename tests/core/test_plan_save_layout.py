"""core.plan_write.write_plan over an existing plan file: its layout is kept, so a save shows
in ``git diff`` as the edit and nothing else (BOM, line ends, column order, untouched rows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.plan import Plan
from core.plan_edit import delete_task, put_task, task_cells
from core.plan_io import read_plan
from core.plan_write import plan_to_csv, write_plan

#: The tester's file: no agent column, an x_ column between standard ones, a multi-line command.
REPORT = (
    "id,command,deps,x_owner,tags\n"
    'a,"echo ""multi""\necho line2",,alice,x;y\n'
    "b,echo b,a,bob,\n"
    "c,echo c,a b,carol,z\n"
)

#: A spreadsheet's export: BOM, CRLF (inside quotes too), spaces, a default written out.
CRLF = (
    "\ufeffid, command ,deps,x_owner,cpus,tags\r\n"
    'a,"echo ""multi""\r\necho line2",,alice,1,x;y\r\n'
    "b,echo b,a,bob,,\r\n"
    'c,"echo c",a  b,carol,2,z\r\n'
)


def _file(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "plan.csv"
    path.write_bytes(text.encode("utf-8"))
    return read_plan(path)


def _edit(plan: Plan, task_id: str, **cells: str) -> Plan:
    """``plan`` with ``task_id``'s cells changed as the form would."""
    return put_task(plan, task_cells(plan.task(task_id)) | cells, replace=task_id)


def _saved(plan: Plan) -> str:
    assert plan.path is not None
    write_plan(plan, plan.path)
    return plan.path.read_bytes().decode("utf-8")


@pytest.mark.parametrize("text", [REPORT, CRLF], ids=["report", "bom-crlf"])
def test_saving_an_unchanged_plan_writes_the_same_bytes(tmp_path: Path, text: str) -> None:
    assert _saved(_file(tmp_path, text)) == text


def test_an_edited_command_changes_its_line_only_and_adds_no_agent_column(
    tmp_path: Path,
) -> None:
    plan = _file(tmp_path, REPORT)
    saved = _saved(_edit(plan, "b", command="echo B"))
    assert saved == REPORT.replace("b,echo b,", "b,echo B,")
    assert read_plan(tmp_path / "plan.csv").meta_columns == ("x_owner",)


def test_bom_crlf_and_untouched_cells_survive_an_edit(tmp_path: Path) -> None:
    plan = _file(tmp_path, CRLF)
    saved = _saved(_edit(plan, "a", tags="x;y;w"))
    # The edited row is written anew; its other cells keep their text (cpus "1", CRLF inside).
    assert saved == CRLF.replace(",alice,1,x;y\r\n", ",alice,1,x;y;w\r\n")
    assert read_plan(tmp_path / "plan.csv").task("a").command == 'echo "multi"\necho line2'


def test_a_renamed_id_keeps_the_other_cells_and_the_deps_separators(tmp_path: Path) -> None:
    plan = _file(tmp_path, CRLF)
    saved = _saved(_edit(plan, "a", id="setup"))
    assert saved == (
        "\ufeffid, command ,deps,x_owner,cpus,tags\r\n"
        'setup,"echo ""multi""\r\necho line2",,alice,1,x;y\r\n'
        "b,echo b,setup,bob,,\r\n"
        "c,echo c,setup  b,carol,2,z\r\n"  # rewritten (its deps changed): quotes it needs only
    )


def test_a_column_is_added_only_when_needed_beside_its_neighbour(tmp_path: Path) -> None:
    plan = _file(tmp_path, REPORT)
    new = put_task(plan, {"id": "d", "agent": "noop", "deps": "c", "gpus": "1"}, after="c")
    saved = _saved(new)
    assert saved == (
        "id,agent,command,deps,gpus,x_owner,tags\n"
        'a,,"echo ""multi""\necho line2",,,alice,x;y\n'  # new columns: empty (default) cells
        "b,,echo b,a,,bob,\n"
        "c,,echo c,a b,,carol,z\n"
        "d,noop,,c,1,,\n"
    )
    assert read_plan(tmp_path / "plan.csv") == new


def test_a_column_no_task_uses_any_more_stays(tmp_path: Path) -> None:
    plan = _file(tmp_path, REPORT)
    new = _edit(_edit(plan, "a", tags=""), "c", tags="")
    assert _saved(new).splitlines()[0] == "id,command,deps,x_owner,tags"


def test_a_new_multiline_command_uses_the_files_line_ends(tmp_path: Path) -> None:
    plan = _file(tmp_path, CRLF)
    saved = _saved(put_task(plan, {"id": "d", "command": "echo 1\necho 2"}, after="c"))
    assert saved == CRLF + 'd,"echo 1\r\necho 2",,,,\r\n'
    assert read_plan(tmp_path / "plan.csv").task("d").command == "echo 1\necho 2"


def test_a_deleted_task_takes_its_line_and_leaves_the_deps_naming_it(tmp_path: Path) -> None:
    plan = _file(tmp_path, REPORT)
    saved = _saved(delete_task(plan, "b"))
    assert saved == REPORT.replace("b,echo b,a,bob,\n", "").replace(",a b,", ",a,")


def test_a_file_without_a_final_line_end_keeps_none(tmp_path: Path) -> None:
    text = REPORT.removesuffix("\n")
    plan = _file(tmp_path, text)
    assert _saved(_edit(plan, "c", command="echo C")) == text.replace("echo c,", "echo C,")


def test_an_unreadable_old_file_keeps_its_bom_and_line_ends_only(tmp_path: Path) -> None:
    plan = _file(tmp_path, CRLF)
    assert plan.path is not None
    plan.path.write_bytes("\ufeffid,oops\r\na,1\r\n".encode())  # changed behind the console
    saved = _saved(plan)
    assert saved == "\ufeff" + plan_to_csv(plan).replace("\n", "\r\n")
    assert read_plan(plan.path) == plan


def test_a_new_file_is_a_plain_export(tmp_path: Path) -> None:
    plan = _file(tmp_path, CRLF)
    write_plan(plan, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_text(encoding="utf-8") == plan_to_csv(plan)
