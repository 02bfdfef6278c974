"""Reading plan files (CSV), with every problem reported at once.

This module is the reading API (``read_plan``, ``read_plan_text``,
``read_plan_bytes``) and owns the header; writing (``plan_to_csv``,
``write_plan``, ``validate_plan``) is :mod:`core.plan_write`.
``core.plan_csv`` turns bytes into text columns with line numbers,
``core.plan_check`` converts and checks the rows, ``core.dag`` finds cycles. A
bad file raises :class:`~core.errors.PlanError` whose ``problems`` lists every
problem, one line each: ``FILE:LINE: column: message (value)``, LINE as a text
editor shows it (header = 1, quoted fields spanning lines counted). A file
whose only problems are cycles raises :class:`~core.errors.CycleError`.

Decisions: CRLF becomes LF everywhere, inside quoted values too (a shell
command must not end in ``\\r``); a row with no text in any field (blank line,
``,,,``) is skipped wherever it is; every value is stripped of surrounding
whitespace. ``Plan.path`` is the absolute path of the file, or None for text
read with the default ``<plan>`` name.
"""

from __future__ import annotations

import contextlib
import gc
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from core.dag import create_index
from core.errors import CycleError, PlanError
from core.plan import COLUMNS, META_PREFIX, Plan
from core.plan_check import build_tasks
from core.plan_csv import Problems, Sheet, decode, read_frame, read_header

_CYCLE_SHOWN = 20
#: One id in a ``deps`` cell (the reader splits the cell on ``;`` and whitespace).
_KNOWN_HINT = ", ".join(COLUMNS) + f", or {META_PREFIX}* for your own"


@dataclass(slots=True)
class ImportStats:
    """Where the time of one import went (filled in when passed to a reader).

    Attributes:
        rows: tasks read.
        parse_s: decoding, record scan and polars parsing.
        validate_s: converting and checking rows, building tasks, agent checks.
        dag_s: building the DAG index and looking for cycles.
    """

    rows: int = 0
    parse_s: float = 0.0
    validate_s: float = 0.0
    dag_s: float = 0.0


def read_plan(path: str | Path, *, stats: ImportStats | None = None) -> Plan:
    """Read and fully validate a plan file.

    Args:
        path: the CSV file.
        stats: filled with timings when given.

    Returns:
        The plan (``path`` absolute).

    Raises:
        PlanError: the file cannot be read or has problems (all of them listed).
        CycleError: the only problems are dependency cycles.
    """
    p = Path(path)
    with contextlib.suppress(OSError, ValueError):  # read_bytes below names those errors
        mode = p.stat().st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise PlanError(f"{path}: is a device, not a plan file")  # /dev/zero never ends
    try:
        data = p.read_bytes()
    except IsADirectoryError:
        raise PlanError(f"{path}: is a folder, not a plan file") from None
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise PlanError(f"{path!r}: cannot read: {exc}") from None
    started = time.perf_counter()
    problems = Problems(str(path))
    text = decode(data, problems)
    del data  # a million-task file: do not hold bytes and text at once
    return _read(text, problems, p.absolute(), stats, started)


def read_plan_bytes(
    data: bytes, path: str | Path = "<plan>", *, stats: ImportStats | None = None
) -> Plan:
    """Read a plan from raw bytes (as :func:`read_plan`, ``path`` only names it)."""
    started = time.perf_counter()
    problems = Problems(str(path))
    return _read(decode(data, problems), problems, _plan_path_for(path), stats, started)


def read_plan_text(
    text: str, path: str | Path = "<plan>", *, stats: ImportStats | None = None
) -> Plan:
    """Read a plan from text in memory (as :func:`read_plan`, ``path`` only names it).

    Args:
        text: the CSV text.
        path: name used in messages; a real path also sets ``Plan.path``.
        stats: filled with timings when given.

    Raises:
        PlanError: as :func:`read_plan`.
    """
    return _read(text, Problems(str(path)), _plan_path_for(path), stats, time.perf_counter())


def _plan_path_for(path: str | Path) -> Path | None:
    return None if str(path).startswith("<") else Path(path).absolute()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a plan is built.

    A million new tasks and tuples would set off dozens of collections that
    find nothing (they double the import time of large plans). Afterwards
    ``freeze``/``unfreeze`` moves the survivors straight to the oldest
    generation, so the first young collection does not walk them all either.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def _read(
    text: str, problems: Problems, plan_path: Path | None, stats: ImportStats | None,
    started: float,
) -> Plan:
    with _gc_paused():
        return _read_text(text, problems, plan_path, stats, started)


def _read_text(
    text: str, problems: Problems, plan_path: Path | None, stats: ImportStats | None,
    started: float,
) -> Plan:
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if not text.strip():
        problems.add(1, "header", "empty file: expected a header line such as id,agent,command,deps")
        raise PlanError(problems.lines())
    quoted = '"' in text
    names = [n.strip() for n in read_header(text, quoted, problems)]
    layout = _check_header(names, problems)
    if layout is None:
        raise PlanError(problems.lines())
    known, meta = layout
    frame, lines = read_frame(text, quoted, len(names), problems)
    del text
    parsed = time.perf_counter()

    frame = frame.select(pl.all().fill_null("").str.strip_chars())
    blank = frame.select(pl.all_horizontal(pl.all() == "")).to_series()
    if blank.any():
        keep = (~blank).to_list()
        lines = [line for line, k in zip(lines, keep, strict=True) if k]
        frame = frame.filter(~blank)
    sheet = Sheet(
        columns={name: frame.to_series(k) for name, k in known.items()},
        meta=[(name, frame.to_series(k)) for name, k in meta],
        lines=lines,
    )
    del frame
    plan_dir = plan_path.parent if plan_path is not None else Path.cwd()
    tasks = build_tasks(sheet, plan_dir, problems)
    del sheet
    plan = Plan(tuple(tasks), plan_path, tuple(name for name, _ in meta))
    del tasks
    checked = time.perf_counter()

    index = create_index(plan)
    row_errors = bool(problems)
    for cycle in index.cycles:
        steps = [f"{index.ids[i]} (line {plan.tasks[i].line})" for i in cycle[:-1]]
        steps.append(index.ids[cycle[-1]])
        if len(steps) > _CYCLE_SHOWN:  # still one readable line for a huge cycle
            cut = len(steps) - _CYCLE_SHOWN
            steps[_CYCLE_SHOWN // 2 : -_CYCLE_SHOWN // 2] = [f"... {cut} more ..."]
        problems.add(plan.tasks[cycle[0]].line, "deps", "dependency cycle: " + " -> ".join(steps))
    if stats is not None:
        stats.rows = len(plan)
        stats.parse_s = parsed - started
        stats.validate_s = checked - parsed
        stats.dag_s = time.perf_counter() - checked
    if problems:
        raise (PlanError if row_errors else CycleError)(problems.lines())
    return plan


def _check_header(
    names: list[str], problems: Problems
) -> tuple[dict[str, int], list[tuple[str, int]]] | None:
    """Map known columns to positions; None when rows cannot be read (no id)."""
    seen: dict[str, int] = {}
    known: dict[str, int] = {}
    meta: list[tuple[str, int]] = []
    unknown: list[str] = []
    for k, name in enumerate(names):
        if not name:
            problems.add(1, "header", f"column {k + 1} has no name")
        elif name in seen:
            problems.add(1, name, f"duplicate column (columns {seen[name] + 1} and {k + 1})")
        else:
            seen[name] = k
            if name in COLUMNS:
                known[name] = k
            elif name.startswith(META_PREFIX):
                meta.append((name, k))
            else:
                unknown.append(name)
    near = {name: name.lower() for name in unknown if name.lower() in COLUMNS}
    if not known and not meta and not near and not problems:
        problems.add(1, "header", "missing header: the first line must name the columns, "
                     f"e.g. id,agent,command,deps{_separator_hint(names)}", ",".join(names))
        return None
    for name in unknown:
        if name in near:  # "ID" from a spreadsheet: say so, not "missing header"
            problems.add(1, name, f'unknown column; did you mean "{near[name]}"? '
                         "(column names are lower case)")
        else:
            problems.add(1, name, f"unknown column (known: {_KNOWN_HINT})")
    if "id" not in known:
        if names and "id" not in near.values():
            problems.add(1, "id", "missing id column", ",".join(names))
        return None
    return known, meta


def _separator_hint(names: list[str]) -> str:
    """A hint when a one-column header looks split by something else than commas."""
    if len(names) != 1:
        return ""
    for sep, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if sep in names[0]:
            return f"; plans are comma-separated, this header is split by {word}"
    return ""
