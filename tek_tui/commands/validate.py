"""``tek validate PLAN [--json]``: check a plan file and summarise its DAG.

Exit 0 when the plan is valid, 2 when it is not (one ``tek: FILE:LINE: column:
message (value)`` line per problem on stderr, and with ``--json`` the same
lines in ``errors``). Output is plain text, not rich: the command must start
fast (a 100k-task plan is checked in well under two seconds, the interpreter
included) and it never loads the console, textual or torch.

When the journal holds a run of this plan file, the critical path is weighted
by how long each task's succeeded attempt took in the latest such run (tasks
it lacks weigh the mean); otherwise every task weighs 1. A missing, locked or
foreign journal is not an error here: the unit-weight path is shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

#: Longest critical path shown in full in the text summary.
_SHOWN = 12


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser(
        "validate",
        help="check a plan file and summarise its DAG",
        description="Check a plan file (every problem, one line each) and summarise it: "
        "tasks, edges, agents, depth, widest generation, critical path.",
    )
    p.add_argument("plan", metavar="PLAN", help="plan CSV file")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: plan, valid, tasks, edges, agents, pools, depth, "
                   "width, critical_path, critical_path_s, durations_from, errors")
    p.set_defaults(func=run_validate)


def past_durations(plan: Any) -> tuple[str, dict[str, float]] | None:
    """Seconds per task from the journal's latest succeeded run of this plan file
    (the latest run when none succeeded: a cancelled run lacks most tasks).

    Args:
        plan: the plan (its ``path`` names it in the journal).

    Returns:
        (run id, task id -> seconds of its succeeded attempt), or None when
        the journal has no such run or cannot be read.
    """
    from core.errors import TekError
    from core.paths import default_store_path

    if plan.path is None:
        return None
    try:
        # Inside the try: finding the journal creates $TEK_HOME, which may
        # not be possible (a read-only home); validating needs none of it.
        if not default_store_path(create=False).is_file():
            return None
        from core.store import open_store

        with open_store(create=False) as store:
            runs = store.list_runs(plan_path=str(plan.path.resolve()))
            if not runs:
                return None
            run_id = next((r.id for r in runs if r.status == "succeeded"), runs[0].id)
            attempts = store.read_run(run_id)[2]
    except (TekError, OSError, ImportError):  # no history is never an error here
        return None
    durations = {
        a.task_id: a.ended_ts - a.started_ts
        for a in attempts
        if a.state == "succeeded" and a.ended_ts is not None
    }
    return (run_id, durations) if durations else None


def summarise(plan: Any) -> dict[str, Any]:
    """The summary ``tek validate`` prints, as a JSON-ready dict.

    Args:
        plan: a valid :class:`core.plan.Plan`.
    """
    from core import dag

    index = dag.create_index(plan)
    history = past_durations(plan)
    durations = history[1] if history else None
    path = dag.critical_path(plan, durations)
    seconds = None
    if durations:
        known = list(durations.values())
        mean = sum(known) / len(known)
        seconds = round(sum(durations.get(t, mean) for t in path), 3)
    return {
        "tasks": len(plan),
        "edges": index.edges,
        "agents": dict(Counter(t.agent for t in plan.tasks).most_common()),
        "pools": dict(Counter(t.pool_name for t in plan.tasks).most_common()),
        "depth": dag.depth(plan),
        "width": dag.width(plan),
        "critical_path": path,
        "critical_path_s": seconds,
        "durations_from": history[0] if history else None,
    }


def read_cli_plan(path: str) -> Any:
    """Read a plan for ``tek validate`` and ``tek run``: valid and not empty.

    A file with a header and no task rows is a plan the engine would "run"
    in no time and call succeeded; on the command line it is a mistake
    (a truncated export, the wrong file), so it is bad input here. The
    console may still open one to fill it in.

    Raises:
        PlanError: as :func:`core.plan_io.read_plan`, or the plan has no task.
    """
    from core.errors import PlanError
    from core.plan_io import read_plan

    plan = read_plan(path)
    if not len(plan):
        raise PlanError(f"{path}:1: header: no tasks: the file has no row below its header")
    return plan


def run_validate(args: argparse.Namespace) -> int:
    """Check ``args.plan``; print the summary or the problems; return the exit code."""
    from core.errors import PlanError

    try:
        plan = read_cli_plan(args.plan)
    except PlanError as exc:
        for line in exc.problems:
            print(f"tek: {line}", file=sys.stderr)
        if args.json:
            empty = dict.fromkeys(("tasks", "edges", "agents", "pools", "depth", "width",
                                   "critical_path_s", "durations_from"))
            print(json.dumps({"plan": args.plan, "valid": False, **empty,
                              "critical_path": [], "errors": exc.problems}))
        return 2
    summary = summarise(plan)
    if args.json:
        print(json.dumps({"plan": args.plan, "valid": True, **summary, "errors": []}))
        return 0
    path = summary["critical_path"]
    shown = path if len(path) <= _SHOWN else [*path[:5], "...", *path[-5:]]
    lines = [
        f"{args.plan}: valid",
        f"  tasks          {summary['tasks']}",
        f"  edges          {summary['edges']}",
        "  agents         " + ", ".join(f"{k} {v}" for k, v in summary["agents"].items()),
        "  pools          " + ", ".join(f"{k} {v}" for k, v in summary["pools"].items()),
        f"  depth          {_count(summary['depth'], 'generation')}",
        f"  widest         {_count(summary['width'], 'task')} in one generation",
        f"  critical path  {_count(len(path), 'task')}{_weighing(summary)}: " + " -> ".join(shown),
    ]
    print("\n".join(lines))
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _weighing(summary: dict[str, Any]) -> str:
    if summary["critical_path_s"] is None:
        return ""
    return f", {summary['critical_path_s']:.1f} s by run {summary['durations_from']}"
