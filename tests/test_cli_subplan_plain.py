"""``tek run``'s plain lines: dated, and a ``plan`` task's end after its sub-tasks' lines.

End to end in a subprocess (the testers' plan), and the plain view on scripted
event streams (a slow reader's stream folds a short plan task's end into its
start, ahead of its sub-plan's events).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace

from core.events import (
    Event,
    OutputLines,
    RunFinished,
    RunStatus,
    TaskChanged,
    TaskInfo,
    TasksAdded,
    TaskState,
)
from tek_tui.live_view import RunView

TEK = [sys.executable, "-m", "tek_tui.cli"]
R, S, F, K = TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED


def tek(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TEK, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_a_failed_sub_plan_in_plain_lines_journal_and_log(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.csv").write_text(
        "id,command,deps\nc1,echo c1,\nc2,false,c1\nc3,echo c3,c2\n")
    (tmp_path / "plan.csv").write_text(
        "id,agent,command,deps\npre,shell,echo pre,\nbuild,plan,sub/child.csv,pre\n"
        "post,shell,echo post,build\n")
    r = tek("run", "plan.csv", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    # the first line names the run, with its date, time zone and plan
    assert re.fullmatch(r"\d\d:\d\d:\d\d == \d{4}-\d\d-\d\d [+-]\d{4} == run (\S+): .*plan\.csv",
                        lines[0]), lines[0]
    run_id = lines[0].split(" run ")[1].split(":")[0]
    texts = [ln[9:] for ln in lines]

    def at(text: str) -> int:
        return texts.index(text)

    assert at("start build (attempt 1)") < at("start build/c1 (attempt 1)")
    end = at("FAIL  build: sub-plan failed: c2 (exit code 1); 1 succeeded, 1 failed, 1 skipped")
    assert at("FAIL  build/c2: exit code 1") < end
    assert at("skip  build/c3: upstream c2 failed") < end
    assert end < at("skip  post: upstream build failed")
    # the plan task's failure tail says which sub-task failed
    assert lines[end + 1:end + 4] == ["         | [c1] c1", "         | [tek] c2 failed: exit code 1",
                                      "         | [tek] c3 skipped: upstream c2 failed"]
    log = tek("logs", run_id, "build", cwd=tmp_path)
    assert log.stdout.splitlines() == ["[c1] c1", "[tek] c2 failed: exit code 1",
                                       "[tek] c3 skipped: upstream c2 failed"]
    show = tek("show", run_id, cwd=tmp_path)
    assert "sub-plan failed: c2 (exit code 1); 1 succeeded, 1 failed, 1 skipped" in show.stdout


# ------------------------------------------------------------ scripted streams


def _info(task_id: str, agent: str = "shell") -> TaskInfo:
    return TaskInfo(task_id, task_id, agent, agent, ())


def _view(tasks: Sequence[TaskInfo]) -> tuple[RunView, io.StringIO]:
    snap = SimpleNamespace(run_id="r", plan_path="p.csv", tasks=list(tasks))
    out = io.StringIO()
    view = RunView(SimpleNamespace(snapshot=lambda: snap), live=False, quiet=False,  # type: ignore[arg-type]
                   out=out)
    return view, out


async def _play(view: RunView, out: io.StringIO, events: Sequence[Event]) -> list[str]:
    async def stream() -> AsyncIterator[Event]:
        for ev in events:
            yield ev

    await view.consume(stream())
    view.flush()
    return [ln[9:] for ln in out.getvalue().splitlines()]


def _changed(task_id: str, state: TaskState, attempt: int = 1, reason: str = "") -> TaskChanged:
    return TaskChanged(task_id, state, attempt, 0.0, None, reason)


async def test_a_plan_tasks_end_folded_before_its_sub_plan_comes_after_its_sub_tasks() -> None:
    view, out = _view([_info("build", "plan"), _info("post")])
    lines = await _play(view, out, [
        _changed("build", F, reason="sub-plan failed: c2 (exit code 1)"),  # its RUNNING folded in
        TasksAdded("build", 1, (_info("build/c1"), _info("build/c2"))),
        _changed("build/c1", S),
        OutputLines("build", 1, ("[tek] c2 failed: exit code 1",)),
        _changed("build/c2", F, reason="exit code 1"),
        _changed("post", K, 0, "upstream build failed"),
    ])
    assert lines == [
        "start build (attempt 1)",
        "start build/c1 (attempt 1)", "ok    build/c1",
        "start build/c2 (attempt 1)", "FAIL  build/c2: exit code 1",
        "FAIL  build: sub-plan failed: c2 (exit code 1)", "| [tek] c2 failed: exit code 1",
        "skip  post: upstream build failed",
    ]


async def test_a_sub_plan_of_a_sub_plan_ends_inside_out() -> None:
    view, out = _view([_info("app", "plan")])
    lines = await _play(view, out, [
        _changed("app", S),
        TasksAdded("app", 1, (_info("app/m1"), _info("app/lib", "plan"))),
        _changed("app/m1", S),
        _changed("app/lib", S),
        TasksAdded("app/lib", 1, (_info("app/lib/x"),)),
        _changed("app/lib/x", S),
        RunFinished("r", RunStatus.SUCCEEDED, {"succeeded": 1}, 1.0, 0.0),
    ])
    assert [ln for ln in lines if ln.startswith("ok")] == [
        "ok    app/m1", "ok    app/lib/x", "ok    app/lib", "ok    app"]


async def test_plan_task_ends_that_wait_for_nothing_are_not_held() -> None:
    """A sub-plan it could not run (no tasks), a plan task that never started, a retry."""
    view, out = _view([_info("bad", "plan"), _info("never", "plan"), _info("again", "plan"),
                       _info("other")])
    lines = await _play(view, out, [
        _changed("bad", F, reason="sub-plan x.csv is invalid"),
        TasksAdded("bad", 1, ()),
        _changed("never", K, 0, "upstream bad failed"),
        _changed("again", TaskState.RETRYING, 1, "sub-plan failed: a (exit code 1)"),
        TasksAdded("again", 1, (_info("again/a"),)),
        _changed("again/a", F, reason="exit code 1"),
        _changed("again", R, 2),
        _changed("other", S),
    ])
    assert lines == [
        "start bad (attempt 1)", "FAIL  bad: sub-plan x.csv is invalid",
        "skip  never: upstream bad failed",
        "start again (attempt 1)",
        "start again/a (attempt 1)", "FAIL  again/a: exit code 1",
        "retry again: sub-plan failed: a (exit code 1)",
        "start again (attempt 2)",
        "start other (attempt 1)", "ok    other",
    ]


async def test_plain_lines_say_when_the_date_changes() -> None:
    view, out = _view([_info("a"), _info("b")])
    midnight = time.mktime((2026, 3, 2, 0, 0, 0, 0, 0, -1))
    now = [midnight - 2]
    view.clock = lambda: now[0]
    view.begin()

    async def stream() -> AsyncIterator[Event]:
        yield _changed("a", R)
        now[0] = midnight + 1  # two seconds later: the next day
        yield _changed("a", S)
        yield _changed("b", S)

    await view.consume(stream())
    view.flush()
    raw = out.getvalue().splitlines()
    day1 = time.strftime("%Y-%m-%d %z", time.localtime(midnight - 2))
    day2 = time.strftime("%Y-%m-%d %z", time.localtime(midnight + 1))
    assert raw[0] == f"23:59:58 == {day1} == run r: p.csv"
    assert raw[1:] == [
        "23:59:58 start a (attempt 1)",
        f"00:00:01 == {day2} ==",
        "00:00:01 ok    a",
        "00:00:01 start b (attempt 1)",
        "00:00:01 ok    b",
    ]
