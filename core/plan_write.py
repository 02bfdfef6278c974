"""Writing plan files: export, a save that keeps the file's layout, and checks.

:func:`plan_to_csv` exports ``id,agent,command,deps``, then only the standard
columns some task uses, then the ``x_`` columns; a value equal to its
default is written as an empty cell (``agent`` is always written).
:func:`write_plan` saves over a plan file keeping that file's layout instead
(BOM, line ends, column order, the text of rows and cells that did not
change), so that a save after one edit shows as that edit in ``git diff``:
see :func:`plan_to_csv_like`. :func:`validate_plan` checks a plan built or
edited in code by exporting it and reading it back (:mod:`core.plan_io`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.errors import PlanError
from core.files import write_atomic
from core.plan import COLUMNS, DEFAULT_AGENT, Plan, Task
from core.plan_csv import _big_fields
from core.plan_io import read_plan_text

_ALWAYS = ("id", "agent", "command", "deps")
_DEP_ID = re.compile(r"[^;\s]+")


def _num(value: float | int | None, default: float | int | None) -> str:
    if value is None or value == default:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


_CELLS: dict[str, Callable[[Task], str]] = {
    "id": lambda t: t.id,
    "agent": lambda t: t.agent,
    "command": lambda t: t.command,
    "deps": lambda t: ";".join(t.deps),
    "name": lambda t: t.name,
    "pool": lambda t: t.pool,
    "cpus": lambda t: _num(t.cpus, 1.0),
    "gpus": lambda t: _num(t.gpus, 0),
    "memory_mb": lambda t: _num(t.memory_mb, 0),
    "priority": lambda t: _num(t.priority, 0),
    "retries": lambda t: _num(t.retries, 0),
    "retry_backoff_s": lambda t: _num(t.retry_backoff_s, 1.0),
    "timeout_s": lambda t: _num(t.timeout_s, None),
    "env": lambda t: ";".join(f"{k}={v}" for k, v in t.env),
    "cwd": lambda t: t.cwd,
    "tags": lambda t: ";".join(t.tags),
}


def plan_to_csv(plan: Plan) -> str:
    """The plan in tek's CSV format (what :func:`read_plan` reads back unchanged).

    Args:
        plan: the plan.

    Returns:
        CSV text with ``\\n`` line ends.
    """
    columns = [
        c for c in COLUMNS
        if c in _ALWAYS or any(_CELLS[c](t) for t in plan.tasks)
    ]
    meta = list(plan.meta_columns)
    for task in plan.tasks:
        meta.extend(name for name, _ in task.meta if name not in meta)
    cells = [_CELLS[c] for c in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns + meta)
    for task in plan.tasks:
        row = [cell(task) for cell in cells]
        if meta:
            values = dict(task.meta)
            row.extend(values.get(name, "") for name in meta)
        writer.writerow(row)
    return buf.getvalue()


def validate_plan(plan: Plan) -> list[str]:
    """Every problem of a plan built or edited in code (empty when it is valid).

    The plan is checked exactly as a file would be: exported, then read back.
    Lines in the messages are those of the exported file (task ``k`` of
    ``plan.tasks`` is on line ``k + 2``), named after ``plan.path`` when set.

    Args:
        plan: the plan.

    Returns:
        One ``FILE:LINE: column: message (value)`` line per problem.
    """
    name = str(plan.path) if plan.path is not None else "<plan>"
    try:
        read_plan_text(plan_to_csv(plan), name)
    except PlanError as exc:
        return exc.problems
    return []


def write_plan(plan: Plan, path: str | Path) -> None:
    """Write the plan to ``path`` atomically (a reader never sees half a file).

    When ``path`` is a plan file already, its layout is kept (see
    :func:`plan_to_csv_like`): a save after an edit changes the edited rows
    and nothing else.

    Args:
        plan: the plan.
        path: the CSV file to create or replace.

    Raises:
        PlanError: the file cannot be written.
    """
    target = Path(path)
    old: bytes | None = None
    with contextlib.suppress(OSError, ValueError):  # no file there yet: a fresh export
        if target.is_file():
            old = target.read_bytes()
    text = plan_to_csv(plan) if old is None else plan_to_csv_like(plan, old)
    try:
        write_atomic(target, text)
    except OSError as exc:
        raise PlanError(f"{path}: cannot write: {exc.strerror or exc}") from None


@dataclass(slots=True)
class _Record:
    """One row of the file being replaced: its task, its text, its cells as written."""

    task: Task
    text: str
    """The row's text without its line end (lines inside quotes kept as they were)."""
    cells: dict[str, str]


def plan_to_csv_like(plan: Plan, old: bytes) -> str:
    """The plan as CSV in the layout of ``old``, the plan file it replaces.

    Kept from ``old``: a UTF-8 BOM, the line end (CRLF when its first line
    ends so, also inside quoted values written anew), a missing final line
    end, the columns in their order (``x_`` ones included, and columns no task
    uses any more). A column is added only when a task needs a value other
    than the default in it (a standard one after its neighbour in
    :data:`~core.plan.COLUMNS` order, an ``x_`` one at the end). A task equal
    to the one ``old`` has under its id is written as its row there, byte for
    byte, when no column was added; in other rows each cell whose value did
    not change keeps its text (``1`` for a default cpus, spaces, its own deps
    separators). Blank rows of ``old`` are dropped, as the reader skips them.
    When ``old`` is not a valid plan, only the BOM and line end are kept.

    Args:
        plan: the plan.
        old: the bytes of the file the plan will replace.

    Returns:
        The file's new text.
    """
    try:
        text = old.decode("utf-8")
    except UnicodeDecodeError:
        return plan_to_csv(plan)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text.removeprefix(bom)
    first = text.find("\n")
    newline = "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"
    final = text.endswith("\n") or not text
    try:
        header, header_text, records = _records(text)
    except (PlanError, csv.Error):
        export = plan_to_csv(plan)
        if newline != "\n":
            export = export.replace("\n", newline)
        return bom + export
    columns = _columns_like(plan, header)
    same_header = columns == header
    old_tasks = [r.task for r in records.values()]
    ids = {t.id for t in plan.tasks}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline)
    lines = [header_text if same_header else _line(columns, newline)]
    for k, task in enumerate(plan.tasks):
        record = records.get(task.id)
        if record is None and k < len(old_tasks) and old_tasks[k].id not in ids:
            record = records[old_tasks[k].id]  # renamed in place: its other cells may stay
        if record is not None and same_header and record.task == task:
            lines.append(record.text)
            continue
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell_like(task, column, record, newline) for column in columns])
        lines.append(buf.getvalue().removesuffix(newline))
    return bom + newline.join(lines) + (newline if final else "")


def _records(text: str) -> tuple[list[str], str, dict[str, _Record]]:
    """The header's names and text, and each task's row, of a plan file's text (BOM off).

    Raises:
        PlanError: the text is not a valid plan.
        csv.Error: the csv module cannot split it into records.
    """
    by_line = {t.line: t for t in read_plan_text(text).tasks}
    physical = io.StringIO(text).readlines()  # split on "\n" only, as the reader does
    header: list[str] = []
    header_text = ""
    records: dict[str, _Record] = {}
    with _big_fields():
        reader = csv.reader(physical, strict=True)
        end = 0
        for row in reader:
            start, end = end, reader.line_num
            raw = "".join(physical[start:end])
            raw = raw.removesuffix("\n").removesuffix("\r") if raw.endswith("\n") else raw
            if start == 0:
                header, header_text = [name.strip() for name in row], raw
            elif (task := by_line.get(start + 1)) is not None:
                cells = dict(zip(header, row, strict=False))
                records[task.id] = _Record(task, raw, cells)
    return header, header_text, records


def _columns_like(plan: Plan, header: list[str]) -> list[str]:
    """``header``, plus the columns a task of ``plan`` needs that it lacks."""
    columns = list(header)
    for position, column in enumerate(COLUMNS):
        if column in columns:
            continue
        if column == "id" or any(_needs(task, column) for task in plan.tasks):
            before = [c for c in columns if c in COLUMNS[:position]]
            columns.insert(columns.index(before[-1]) + 1 if before else 0, column)
    meta = list(plan.meta_columns)
    for task in plan.tasks:
        meta.extend(name for name, _ in task.meta if name not in meta)
    columns.extend(name for name in meta if name not in columns)
    return columns


def _needs(task: Task, column: str) -> bool:
    """Whether ``task`` has a value other than the default in ``column``."""
    if column == "agent":
        return task.agent != DEFAULT_AGENT
    return _CELLS[column](task) != ""


def _cell_like(task: Task, column: str, record: _Record | None, newline: str) -> str:
    """``task``'s cell in ``column``: the old row's text when the value is unchanged."""
    if column in _CELLS:
        same = record is not None and getattr(record.task, column) == getattr(task, column)
        value = _CELLS[column](task)
    else:
        value = dict(task.meta).get(column, "")
        same = record is not None and dict(record.task.meta).get(column, "") == value
    if record is not None and same:
        # A column added by this save was empty, so the default, in the old row.
        return record.cells.get(column, "")
    if record is not None and column in record.cells:
        cell = record.cells[column]
        if column == "deps" and len(_DEP_ID.findall(cell)) == len(task.deps):
            # A renamed dep: the other ids and the user's separators stay.
            names = iter(task.deps)
            return _DEP_ID.sub(lambda _: next(names), cell)
    return value.replace("\n", newline) if newline != "\n" else value


def _line(cells: list[str], newline: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerow(cells)
    return buf.getvalue().removesuffix(newline)
