"""Plan input a tester tripped on: bare CR line ends, a doubled env key, ``~`` as cwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine import RunOptions, create_run
from core.errors import PlanError
from core.plan import Task
from core.plan_io import read_plan
from tests.core.engine_helpers import plan_of, run_collect


def problems_of(path: Path, data: bytes) -> list[str]:
    path.write_bytes(data)
    with pytest.raises(PlanError) as info:
        read_plan(path)
    return [line.removeprefix(f"{path}:") for line in str(info.value).splitlines()]


@pytest.mark.parametrize("data", [b"id,command\rb,echo b\r", b"id,command\r\na,echo a\rb,echo b\r"])
def test_bare_cr_line_ends_are_named_as_such(tmp_path: Path, data: bytes) -> None:
    assert problems_of(tmp_path / "p.csv", data) == [
        "1: header: lines end with a bare CR (classic Mac line endings): "
        "save the file with LF or CRLF line endings"
    ]


def test_a_cr_inside_a_quoted_command_is_no_line_end(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b'id,command\na,"echo a\rb"\nb,echo b\n')
    assert [t.command for t in read_plan(path).tasks] == ["echo a\rb", "echo b"]


def test_a_short_row_counts_its_field_in_the_singular(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "p.csv", b"id,command,deps\na,echo,\nb\n")[0] == (
        "3: row: row has 1 field, header has 3"
    )


@pytest.mark.parametrize("tid", [".", ".."])
def test_ids_that_name_folders_are_refused(tmp_path: Path, tid: str) -> None:
    # a plan task named `..` put its sub-plan's logs outside the run's folder
    assert problems_of(tmp_path / "p.csv", f"id,command\n{tid},echo\n".encode()) == [
        f"2: id: invalid id: . and .. name folders ({tid})"
    ]


def test_an_env_key_set_twice_is_refused(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "p.csv", b"id,command,env\na,echo,A=1;B=2;A=3\n") == [
        "2: env: A is set twice (A=3)"
    ]


async def test_a_cwd_of_tilde_is_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    out = tmp_path / "out"
    task = Task("a", agent="shell", command=f"pwd > {out}", cwd="~/data")
    summary, _ = await run_collect(create_run(plan_of(task), RunOptions(jobs=1, memory_floor_mb=0)))
    assert summary.counts["succeeded"] == 1
    assert out.read_text().strip() == str(home / "data")
