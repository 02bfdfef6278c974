"""``tek validate``: summary, ``--json``, exit codes, one line per problem, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.plan_io import read_plan
from tek_tui.cli import main
from tests.conftest import REPO

NIGHTLY = REPO / "sample_plans" / "nightly.csv"
BROKEN = REPO / "sample_plans" / "broken_columns.csv"
CYCLE = REPO / "sample_plans" / "broken_cycle.csv"


def test_valid_plan_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(NIGHTLY)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"{NIGHTLY}: valid"
    fields = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:]}
    assert fields["tasks"] == "90"
    assert fields["agents"] == "shell 90"
    assert fields["depth"].endswith("generations") and fields["widest"].startswith("24 ")
    assert fields["critical"].startswith("path  12 tasks: init -> fetch_src ->")


def test_one_of_a_kind_is_singular(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "one.csv"
    plan.write_text("id,command\nonly,true\n")
    assert main(["validate", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "depth          1 generation\n" in out
    assert "widest         1 task in one generation\n" in out
    assert "critical path  1 task: only" in out


def test_json_keys_are_the_ones_help_lists(capsys: pytest.CaptureFixture[str]) -> None:
    from tek_tui.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["validate", "--help"])
    listed = " ".join(capsys.readouterr().out.split()).split("print one JSON object: ")[1]
    assert main(["validate", str(NIGHTLY), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(listed.split(", "))


def test_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(NIGHTLY), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    plan = read_plan(NIGHTLY)
    assert data["valid"] is True and data["errors"] == []
    assert data["tasks"] == 90
    assert data["edges"] == sum(len(set(t.deps)) for t in plan)
    assert data["depth"] == 12 and data["width"] == 24
    assert data["critical_path"][0] == "init" and data["critical_path"][-1] == "cleanup"
    assert data["agents"] == {"shell": 90}


def test_invalid_plan_one_line_per_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BROKEN)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) >= 10
    assert all(line.startswith(f"tek: {BROKEN}:") for line in lines)
    assert f"tek: {BROKEN}:3: cpus: not a number (two)" in lines


def test_invalid_plan_json_lists_the_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(CYCLE), "--json"]) == 2
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["valid"] is False and data["tasks"] is None
    assert data["errors"] == [
        f"{CYCLE}:3: deps: dependency cycle: build (line 3) -> test (line 4) -> "
        "package (line 5) -> build"
    ]
    assert err.splitlines() == [f"tek: {e}" for e in data["errors"]]


@pytest.mark.parametrize("target", ["missing.csv", "."])
def test_missing_file_or_folder(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / target
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"tek: {path}: ")


def test_process_exit_codes_and_no_heavy_imports(tmp_path: Path) -> None:
    probe = (
        "import json, sys\n"
        "from tek_tui.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'torch'})\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,command\na,echo \xff\n")
    for plan, code in ((NIGHTLY, 0), (BROKEN, 2), (bad, 2)):
        run = subprocess.run(
            [sys.executable, "-c", probe, "validate", str(plan)],
            capture_output=True, text=True, env=env, timeout=60,
        )
        assert run.returncode == code, run.stderr
        assert "Traceback" not in run.stderr
        assert json.loads(run.stderr.splitlines()[-1]) == []
    assert f"{bad}:2: command: bytes are not UTF-8 at byte offset 18" in run.stderr


def test_critical_path_weighted_by_the_last_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "p.csv"
    # By task count the longest chain is a -> c -> d; by time it is a -> b.
    plan.write_text("id,agent,command,deps\na,noop,,\nb,noop,0.4,a\nc,noop,,a\nd,noop,,c\n")
    assert main(["validate", str(plan), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["critical_path"] == ["a", "c", "d"] and before["critical_path_s"] is None
    assert main(["run", str(plan), "--plain"]) == 0
    capsys.readouterr()
    assert main(["validate", str(plan), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["critical_path"] == ["a", "b"]
    assert after["critical_path_s"] >= 0.4 and after["durations_from"]
    assert main(["validate", str(plan)]) == 0
    assert f"s by run {after['durations_from']}: a -> b" in capsys.readouterr().out
    # A later run that failed early lacks most tasks: the succeeded one still weighs.
    text = plan.read_text()
    plan.write_text(text.replace("a,noop,,", "a,shell,exit 1,"))
    assert main(["run", str(plan), "--plain"]) == 1
    plan.write_text(text)
    capsys.readouterr()
    assert main(["validate", str(plan), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["durations_from"] == after["durations_from"]
