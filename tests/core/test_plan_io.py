"""Plan import and export: one test per problem the reader must name, exactly.

Each error test asserts the whole ``FILE:LINE: column: message`` prefix, so a
wrong line number or column fails. Texts are read with ``read_plan_text``
under the name ``p.csv``; files only where the file itself matters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.agents.registry import register_agent
from core.errors import CycleError, PlanError
from core.plan import Plan, Task
from core.plan_io import ImportStats, read_plan, read_plan_bytes, read_plan_text
from core.plan_write import plan_to_csv, validate_plan, write_plan
from tests.conftest import REPO

HEADER = "id,agent,command,deps\n"


def problems(text: str) -> list[str]:
    """The problems reading ``text`` reports (fails when it reads fine)."""
    with pytest.raises(PlanError) as info:
        read_plan_text(text, "p.csv")
    return info.value.problems


def only(text: str) -> str:
    """The single problem in ``text``."""
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


# --- the file as a whole -------------------------------------------------------


def test_empty_file() -> None:
    assert only("").startswith("p.csv:1: header: empty file")
    assert only("\n \n\n").startswith("p.csv:1: header: empty file")


def test_missing_header() -> None:
    assert only("build,shell,make\n").startswith("p.csv:1: header: missing header")


def test_missing_id_column() -> None:
    assert only("agent,command\nshell,echo\n") == "p.csv:1: id: missing id column (agent,command)"


def test_unknown_column_lists_known_ones() -> None:
    line = only("id,command,owner\na,echo,me\n")
    assert line.startswith("p.csv:1: owner: unknown column (known: id, agent, command, deps,")
    assert "x_* for your own" in line


def test_duplicate_and_unnamed_columns() -> None:
    found = problems("id,command,command,\na,echo,echo,\n")
    assert found == [
        "p.csv:1: header: column 4 has no name",
        "p.csv:1: command: duplicate column (columns 2 and 3)",
    ]


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"nope\.csv: no such file"):
        read_plan(tmp_path / "nope.csv")
    with pytest.raises(PlanError, match="is a folder, not a plan file"):
        read_plan(tmp_path)
    with pytest.raises(PlanError, match="cannot read: embedded null byte"):
        read_plan("bad\0name.csv")


def test_a_device_is_refused_not_read_for_ever() -> None:
    with pytest.raises(PlanError, match=r"/dev/zero: is a device, not a plan file"):
        read_plan("/dev/zero")


def test_bytes_that_are_not_utf8_name_line_offset_and_column() -> None:
    data = b"id,command,name\na,echo,ok\n" + b"b,echo,caf\xe9\n"
    with pytest.raises(PlanError) as info:
        read_plan_bytes(data, "p.csv")
    offset = len(b"id,command,name\na,echo,ok\nb,echo,caf")
    assert info.value.problems == [
        f"p.csv:3: name: bytes are not UTF-8 at byte offset {offset} (b'\\xe9')"
    ]


# --- rows ------------------------------------------------------------------------


def test_row_with_too_many_and_too_few_fields() -> None:
    found = problems(HEADER + "a,noop,,\nb,noop,,a,extra\nc,noop\n")
    assert found == [
        "p.csv:3: row: row has 5 fields, header has 4",
        "p.csv:4: row: row has 2 fields, header has 4",
    ]


def test_ragged_rows_with_quotes_still_report_the_rest() -> None:
    found = problems(HEADER + 'a,noop,"",\nb,noop,"x,y",a,extra\nc,nope,,\n')
    assert found[0] == "p.csv:3: row: row has 5 fields, header has 4"
    assert found[1].startswith("p.csv:3: command: noop takes a number")
    assert found[2].startswith("p.csv:4: agent: unknown agent")


def test_unterminated_quote() -> None:
    found = problems(HEADER + 'a,noop,,\nb,shell,"echo,\n')
    assert found == ["p.csv:3: row: unterminated quoted field (it starts on this line)"]


def test_text_after_closing_quote() -> None:
    found = problems(HEADER + 'a,shell,"echo"x,\nb,noop,,\n')
    assert found[0].startswith("p.csv:2: row: a closing quote must be followed by a comma")


def test_line_numbers_count_newlines_inside_quotes() -> None:
    text = HEADER + 'a,shell,"echo one\necho two\necho three",\nb,shell,echo,zz\n'
    assert only(text) == "p.csv:5: deps: no task has this id (zz)"


def test_duplicate_id_names_both_lines() -> None:
    found = problems(HEADER + "a,noop,,\nb,noop,,\na,noop,,\n")
    assert found == ["p.csv:4: id: duplicate id, first defined on line 2 (a)"]


def test_missing_id() -> None:
    assert only(HEADER + ",noop,,\n") == "p.csv:2: id: missing id"


@pytest.mark.parametrize("bad", ["a b", "a/b", "é", "a,b"])
def test_id_with_bad_characters(bad: str) -> None:
    quoted = f'"{bad}"' if "," in bad else bad
    line = only(HEADER + f"{quoted},noop,,\n")
    assert line.startswith("p.csv:2: id: invalid id")
    assert line.endswith(f"({bad})")


def test_an_id_too_long_for_its_log_file_name_is_refused() -> None:
    assert read_plan_text(HEADER + "x" * 200 + ",noop,,\n", "p.csv").tasks  # the longest allowed
    line = only(HEADER + "x" * 201 + ",noop,,\n")
    assert line.startswith("p.csv:2: id: id longer than 200 characters (201)")


def test_missing_dependency_suggests_the_closest_id() -> None:
    line = only(HEADER + "build,noop,,\ntest,noop,,biuld\n")
    assert line == 'p.csv:3: deps: no task has this id; did you mean "build"? (biuld)'


def test_missing_dependency_without_a_close_id() -> None:
    assert only(HEADER + "build,noop,,\ntest,noop,,zzz\n") == "p.csv:3: deps: no task has this id (zzz)"


def test_self_dependency() -> None:
    assert only(HEADER + "a,noop,,\nb,noop,,a;b\n") == "p.csv:3: deps: task depends on itself (b)"


def test_unknown_agent() -> None:
    line = only(HEADER + "a,docker,run,\n")
    assert line.startswith("p.csv:2: agent: unknown agent (known: shell, noop, ml, plan")
    assert line.endswith("(docker)")


def test_known_agent_that_fails_to_load() -> None:
    register_agent("tek_test_broken", "tests.core.no_such_module:Nope")
    line = only(HEADER + "a,tek_test_broken,run,\n")
    assert line.startswith("p.csv:2: agent: agent could not be loaded: ")
    assert "no_such_module" in line and line.endswith("(tek_test_broken)")


def test_missing_command_where_the_agent_needs_one() -> None:
    assert only(HEADER + "a,shell,,\n") == "p.csv:2: command: missing command: the shell agent needs one"
    assert only("id\na\n") == "p.csv:2: command: missing command: the shell agent needs one"


def test_agent_checks_its_own_command() -> None:
    assert only(HEADER + "a,noop,soon,\n").startswith("p.csv:2: command: noop takes a number")


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("cpus", "two", "not a number"),
        ("cpus", "-1", "must not be negative"),
        ("cpus", "nan", "not a number"),
        ("gpus", "1.5", "expected a whole number"),
        ("gpus", "-2", "must not be negative"),
        ("memory_mb", "lots", "not a number"),
        ("memory_mb", "-512", "must not be negative"),
        ("retries", "x", "not a number"),
        ("retries", "-1", "must not be negative"),
        ("retry_backoff_s", "-0.5", "must not be negative"),
        ("timeout_s", "soon", "not a number"),
        ("timeout_s", "-3", "must be more than 0"),
        ("timeout_s", "0", "must be more than 0"),
        ("timeout_s", "inf", "must be finite"),
        ("priority", "high", "not a number"),
    ],
)
def test_bad_numbers(column: str, value: str, message: str) -> None:
    line = only(f"id,agent,{column}\na,noop,1\nb,noop,{value}\n")
    assert line == f"p.csv:3: {column}: {message} ({value})"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("MODE", "expected KEY=VALUE, entries separated by ;"),
        ("A=1;2B=x", "bad variable name: letters, digits and _, not starting with a digit"),
    ],
)
def test_bad_env(env: str, message: str) -> None:
    entry = env.split(";")[-1]
    assert only(f"id,agent,env\na,noop,{env}\n") == f"p.csv:2: env: {message} ({entry})"


def test_bad_pool_name() -> None:
    assert only("id,agent,pool\na,noop,my pool\n").startswith("p.csv:2: pool: invalid pool name")


def test_cycle_names_each_task_and_line() -> None:
    text = HEADER + "a,noop,,c\nb,noop,,a\nc,noop,,b\nd,noop,,\n"
    with pytest.raises(CycleError) as info:
        read_plan_text(text, "p.csv")
    assert info.value.problems == [
        "p.csv:2: deps: dependency cycle: a (line 2) -> b (line 3) -> c (line 4) -> a"
    ]


def test_a_huge_cycle_stays_one_readable_line() -> None:
    rows = "".join(f"t{i},noop,,t{(i - 1) % 100}\n" for i in range(100))
    line = only(HEADER + rows)
    assert line.startswith("p.csv:2: deps: dependency cycle: t0 (line 2) -> t1 (line 3) ->")
    assert "-> ... 81 more ... -> t91 (line 93) ->" in line and line.endswith("t99 (line 101) -> t0")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PlanError) as info:
        read_plan(REPO / "sample_plans" / "broken_columns.csv")
    columns = [p.split(": ", 2)[1] for p in info.value.problems]
    assert len(columns) >= 10
    assert {"owner", "deps", "cpus", "id", "retries", "command", "agent", "env", "row"} <= set(columns)
    assert not isinstance(info.value, CycleError)


# --- accepted without complaint -----------------------------------------------------


def test_accepts_bom_crlf_trailing_blank_lines_quotes_and_unicode() -> None:
    text = (
        "\ufeffid,agent,command,deps,name\r\n"
        'a,shell,"echo one, two",,Café ☕\r\n'
        'b,shell,"printf \'x\ny\'", a ,"multi\r\nline"\r\n'
        "\r\n"
        ",,,,\r\n"
        "c,noop,,  a ;  b  ,\r\n"
        "\r\n\r\n"
    )
    plan = read_plan_text(text)
    assert [t.id for t in plan] == ["a", "b", "c"]
    assert [t.line for t in plan] == [2, 3, 8]  # b spans lines 3-5
    a, b, c = plan.tasks
    assert a.command == "echo one, two" and a.name == "Café ☕"
    assert b.command == "printf 'x\ny'" and b.name == "multi\nline" and b.deps == ("a",)
    assert c.deps == ("a", "b") and c.agent == "noop"


def test_converts_every_column() -> None:
    text = (
        "id,agent,command,deps,name,pool,cpus,gpus,memory_mb,priority,retries,"
        "retry_backoff_s,timeout_s,env,cwd,tags,x_owner,x_ticket\n"
        "a,noop,0,,,,,,,,,,,,,,,\n"
        'b,shell,make,a,Build,build,2.5,1,512,-3,2,0.5,30,"CC=gcc; FLAGS=-O2 -g",src,nightly;fast,me,\n'
    )
    plan = read_plan_text(text)
    a, b = plan.tasks
    assert a == Task(id="a", agent="noop", command="0")
    assert b == Task(
        id="b", agent="shell", command="make", deps=("a",), name="Build", pool="build",
        cpus=2.5, gpus=1, memory_mb=512, priority=-3, retries=2, retry_backoff_s=0.5,
        timeout_s=30.0, env=(("CC", "gcc"), ("FLAGS", "-O2 -g")), cwd="src",
        tags=("nightly", "fast"), meta=(("x_owner", "me"),),
    )
    assert plan.meta_columns == ("x_owner", "x_ticket")
    assert plan.path is None


def test_read_plan_sets_absolute_path_and_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.csv").write_text("id,agent\na,noop\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    stats = ImportStats()
    plan = read_plan("p.csv", stats=stats)
    assert plan.path == tmp_path / "p.csv" and plan.path.is_absolute()
    assert stats.rows == 1 and stats.parse_s >= 0 and stats.validate_s >= 0 and stats.dag_s >= 0


def test_long_field_beyond_the_csv_module_default_limit() -> None:
    script = "echo " + "x" * 200_000
    plan = read_plan_text(f'id,command\na,"{script}"\n')
    assert plan.tasks[0].command == script


# --- export --------------------------------------------------------------------------


def test_export_round_trip_keeps_meta_and_empty_fields(tmp_path: Path) -> None:
    text = (
        "id,agent,command,deps,name,pool,x_owner,x_empty\n"
        'a,shell,"echo ""hi"", there",,,,me,\n'
        "b,noop,,a,Second,,,\n"
    )
    plan = read_plan_text(text)
    exported = plan_to_csv(plan)
    assert exported.splitlines()[0] == "id,agent,command,deps,name,x_owner,x_empty"
    assert read_plan_text(exported) == plan
    write_plan(plan, tmp_path / "out.csv")
    again = read_plan(tmp_path / "out.csv")
    assert again.tasks == plan.tasks and again.meta_columns == plan.meta_columns
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left


def test_export_writes_defaults_as_empty_cells() -> None:
    plan = Plan((Task("a", cpus=1.0, timeout_s=None), Task("b", deps=("a",), cpus=0.5, timeout_s=2.0)))
    assert plan_to_csv(plan) == "id,agent,command,deps,cpus,timeout_s\na,shell,,,,\nb,shell,,a,0.5,2\n"


def test_validate_plan_built_in_code() -> None:
    good = Plan((Task("a", agent="noop"), Task("b", command="make", deps=("a",))))
    assert validate_plan(good) == []
    bad = Plan((Task("a", command="x", deps=("b",)), Task("b", command="y", deps=("a",)),
                Task("c", agent="noop", cpus=-1)))
    assert validate_plan(bad) == [
        "<plan>:2: deps: dependency cycle: a (line 2) -> b (line 3) -> a",
        "<plan>:4: cpus: must not be negative (-1)",
    ]


def test_write_plan_to_a_missing_folder_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot write"):
        write_plan(Plan((Task("a"),)), tmp_path / "no" / "p.csv")


# --- sample plans ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(p for p in (REPO / "sample_plans").glob("*.csv") if "broken" not in p.name),
    ids=lambda p: p.name,
)
def test_sample_plans_validate(path: Path) -> None:
    plan = read_plan(path)
    assert len(plan) > 0
    assert read_plan_text(plan_to_csv(plan)).tasks == plan.tasks


def test_nightly_plan_shape() -> None:
    plan = read_plan(REPO / "sample_plans" / "nightly.csv")
    assert len(plan) == 90
    assert {t.pool_name for t in plan} == {"io", "build", "test", "shell"}
    assert any(t.cpus > 1 for t in plan) and any(t.priority for t in plan)
    assert any(t.retries for t in plan) and any(t.env for t in plan)


@pytest.mark.parametrize("path", sorted((REPO / "sample_plans").glob("*broken*.csv")), ids=lambda p: p.name)
def test_broken_sample_plans_fail(path: Path) -> None:
    with pytest.raises(PlanError):
        read_plan(path)


# --- the fast task constructor ---------------------------------------------------------


def test_imported_tasks_are_real_frozen_tasks() -> None:
    import dataclasses

    task = read_plan_text("id,agent,command,tags\na,shell,make,x;y\n").tasks[0]
    assert type(task) is Task
    assert task == Task("a", command="make", tags=("x", "y"))
    assert hash(task) == hash(Task("a", command="make", tags=("x", "y")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.id = "b"  # type: ignore[misc]


def test_task_factory_falls_back_when_fields_move(monkeypatch: pytest.MonkeyPatch) -> None:
    import core.plan_check as plan_check

    swapped = ("agent", "id", *plan_check._TASK_ARGS[2:])
    monkeypatch.setattr(plan_check, "_TASK_ARGS", swapped)
    build = plan_check._task_factory()
    assert build.__name__ == "by_keyword"
    values = ["shell", "a", "make", (), "", "", 1.0, 0, 0, 0, 0, 1.0, None, (), "", (), (), 2]
    assert build(*values) == Task("a", command="make")
