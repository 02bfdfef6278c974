"""Editing a plan in memory: add, replace or delete one task, then check it all again.

The console's plan editor (``tek tui PLAN``, before a run starts) works on
text: a form holds one string per column, exactly what a CSV cell would hold.
This module turns such a row into a new :class:`~core.plan.Plan` by writing
the whole plan as CSV with that row in place and reading it back with
:func:`core.plan_io.read_plan_text`, so every rule and every message is the
one ``tek validate`` gives (same converter, same "did you mean", same cycle
check). Nothing here imports textual.

Decisions (DESIGN.md is silent on them):

- Renaming a task's id renames it in every other task's ``deps`` too.
- Deleting a task removes it from every other task's ``deps`` (the console
  asks first when there are any, see :func:`dependants`); the last task of a
  plan cannot be deleted (a plan with no task is not a plan).
- A problem on the edited row is given without its ``FILE:LINE:`` prefix
  (``cpus: ...``): the form shows that row; problems elsewhere (a cycle the
  edit closed) keep the full line of the exported file.
- The ``x_`` metadata of an edited task is kept (the form does not show it).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence

from core.errors import PlanError
from core.plan import COLUMNS, Plan, Task
from core.plan_io import read_plan_text
from core.plan_write import plan_to_csv

#: ``deps`` cells are split on ``;`` and whitespace, as the reader does.
_DEP_SPLIT = re.compile(r"[;\s]+")


def task_cells(task: Task) -> dict[str, str]:
    """The task's row as CSV cells, one string per column (what a form shows).

    Args:
        task: the task.

    Returns:
        ``{column: text}`` for every standard column (defaults as empty cells).
    """
    row = _rows(Plan((task,)))[0]
    return {column: row.get(column, "") for column in COLUMNS}


def dependants(plan: Plan, task_id: str) -> list[str]:
    """Ids of the tasks that list ``task_id`` in their deps, in plan order."""
    return [t.id for t in plan.tasks if task_id in t.deps]


def new_task_id(plan: Plan, base: str = "task") -> str:
    """An id no task of ``plan`` has: ``base``, else ``base-2``, ``base-3``, ..."""
    if base not in plan.by_id:
        return base
    n = 2
    while f"{base}-{n}" in plan.by_id:
        n += 1
    return f"{base}-{n}"


def put_task(
    plan: Plan,
    cells: Mapping[str, str],
    *,
    replace: str | None = None,
    after: str | None = None,
) -> Plan:
    """The plan with one row added or replaced, checked as ``tek validate`` would.

    Args:
        plan: the plan as it is.
        cells: the row's text, ``{column: text}``; missing columns are empty.
        replace: id of the task this row replaces (renaming it in every
            ``deps``); None adds a new task.
        after: with ``replace=None``, the id of the task the new one follows;
            None (or an unknown id) adds it at the end.

    Returns:
        The new plan (``path`` and ``meta_columns`` kept, lines renumbered).

    Raises:
        PlanError: the edited plan has problems (all listed, the edited row's
            without their ``FILE:LINE:`` prefix); ``replace`` names no task.
    """
    rows = _rows(plan)
    ids = [t.id for t in plan.tasks]
    new_row = {column: cells.get(column, "").strip() for column in COLUMNS}
    if replace is not None:
        if replace not in plan.by_id:
            raise PlanError(f"no task {replace!r} in the plan")
        index = ids.index(replace)
        old = rows[index]
        new_row.update({k: v for k, v in old.items() if k not in COLUMNS})  # keep x_ cells
        rows[index] = new_row
        new_id = new_row["id"]
        if new_id != replace:
            for k, row in enumerate(rows):
                if k != index:
                    row["deps"] = _rename_dep(row.get("deps", ""), replace, new_id)
    else:
        index = ids.index(after) + 1 if after is not None and after in plan.by_id else len(rows)
        rows.insert(index, new_row)
    return _read_back(plan, rows, edited=index)


def delete_task(plan: Plan, task_id: str) -> Plan:
    """The plan without ``task_id``, which also leaves every other task's deps.

    Args:
        plan: the plan as it is.
        task_id: the task to delete.

    Returns:
        The new plan (lines renumbered).

    Raises:
        PlanError: no such task, or it is the plan's only task.
    """
    if task_id not in plan.by_id:
        raise PlanError(f"no task {task_id!r} in the plan")
    if len(plan) == 1:
        raise PlanError(f"{task_id} is the plan's only task; a plan needs at least one")
    rows = _rows(plan)
    del rows[[t.id for t in plan.tasks].index(task_id)]
    for row in rows:
        row["deps"] = _rename_dep(row.get("deps", ""), task_id, None)
    return _read_back(plan, rows, edited=None)


def same_tasks(a: Plan, b: Plan) -> bool:
    """Whether two plans hold the same tasks in the same order (lines aside)."""
    return a.tasks == b.tasks and a.meta_columns == b.meta_columns


def _rows(plan: Plan) -> list[dict[str, str]]:
    """Every task as a dict of cells, via the exporter (so cells read back the same)."""
    return list(csv.DictReader(io.StringIO(plan_to_csv(plan))))


def _rename_dep(deps: str, old: str, new: str | None) -> str:
    parts = [p for p in _DEP_SPLIT.split(deps) if p]
    if old not in parts:
        return deps  # untouched: keep the user's own separators
    if new is None:
        return ";".join(p for p in parts if p != old)
    return ";".join(new if p == old else p for p in parts)


def _read_back(plan: Plan, rows: Sequence[Mapping[str, str]], edited: int | None) -> Plan:
    """Write ``rows`` as the plan's CSV and read them back; strip the edited row's prefix."""
    columns = list(COLUMNS)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n", restval="")
    writer.writeheader()
    edited_line = 0
    for k, row in enumerate(rows):
        if k == edited:
            # A quoted cell may span lines: the row starts after every line so far.
            edited_line = buf.getvalue().count("\n") + 1
        writer.writerow(row)
    name = str(plan.path) if plan.path is not None else "<plan>"
    try:
        return read_plan_text(buf.getvalue(), name)
    except PlanError as exc:
        prefix = f"{name}:{edited_line}: "
        raise PlanError([p.removeprefix(prefix) for p in exc.problems]) from None
