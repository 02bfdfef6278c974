"""Turning a plan file's text columns into checked :class:`~core.plan.Task` objects.

``core.plan_csv`` and ``core.plan_io`` own the file (bytes, quoting, line
numbers, header); this module owns the rows: every column arrives as a polars
string Series (already stripped, one entry per non-empty row) and is converted
by tek, vectorised where polars can do it (ids, numbers, missing commands) and
in plain Python only where a tuple has to be built anyway (deps, env, tags,
``x_`` columns).
Every problem is collected, none stops the others; a bad value is replaced by
its default so that later checks (cycles) still see the whole plan.

Decisions (DESIGN.md is silent on them):

- ``cpus`` is a float >= 0; ``gpus``, ``memory_mb`` and ``retries`` are whole
  numbers >= 0; ``priority`` is a whole number of either sign;
  ``retry_backoff_s`` is >= 0 and ``timeout_s`` > 0. NaN and infinity are bad.
- ``pool`` names follow the id rule ``[A-Za-z0-9_.:-]+``.
- ``env`` entries are ``KEY=VALUE`` separated by ``;`` (so a value cannot hold
  ``;``); keys are ``[A-Za-z_][A-Za-z0-9_]*``; spaces around keys and values go.
- A missing dependency gets a "did you mean" from difflib; beyond 5,000 tasks
  the candidates are the ids next to it in sorted order (a full difflib scan of
  a million ids per typo would take minutes).
"""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import math
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat
from operator import contains
from pathlib import Path
from typing import Any

import polars as pl

from core.agents.base import Agent
from core.agents.registry import get_agent, is_known_agent, known_agents
from core.plan import DEFAULT_AGENT, Task
from core.plan_csv import Problems, Sheet

ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
#: Longest id: its log file ``<id>.<attempt>.log`` must fit a 255-byte file name.
MAX_ID_LEN = 200
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FULL_SUGGEST = 5000
_MAX_SUGGEST = 50


#: The columns ``build_tasks`` passes, positionally, in this order.
_TASK_ARGS = (
    "id", "agent", "command", "deps", "name", "pool", "cpus", "gpus", "memory_mb", "priority",
    "retries", "retry_backoff_s", "timeout_s", "env", "cwd", "tags", "meta", "line",
)


def _task_factory() -> Callable[..., Task]:
    """A positional ``Task`` constructor, four times faster than ``Task(...)``.

    A frozen dataclass sets each of its 18 fields through ``object.__setattr__``,
    which costs 2.3 s per million tasks, more than the rest of the import. A
    plain slotted twin with the very same slots and defaults fills them with
    ordinary stores, then the object becomes a ``Task`` by ``__class__``
    assignment (CPython allows it between classes of identical layout). The
    result is a real, frozen ``Task``. Should Task gain a ``__post_init__``, a
    different layout or a field before ``line``, this falls back to calling
    ``Task`` by keyword (slower, still right); checked once at import.
    """
    fields = dataclasses.fields(Task)

    def by_keyword(*args: Any) -> Task:
        return Task(**dict(zip(_TASK_ARGS, args, strict=True)))

    if tuple(f.name for f in fields[: len(_TASK_ARGS)]) != _TASK_ARGS:
        return by_keyword
    specs: list[Any] = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            specs.append((f.name, Any, dataclasses.field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            specs.append((f.name, Any, dataclasses.field(default_factory=f.default_factory)))
        else:
            specs.append((f.name, Any))
    twin = dataclasses.make_dataclass(
        "_TaskTwin", specs, slots=True, eq=False, repr=False, match_args=False
    )

    def build(*args: Any) -> Task:
        obj = twin(*args)
        obj.__class__ = Task
        return obj  # type: ignore[no-any-return]  # a Task now (no cast(): hot path)

    if hasattr(Task, "__post_init__") or twin.__slots__ != Task.__slots__:  # type: ignore[attr-defined]
        return by_keyword
    try:
        probe = by_keyword(*(f"v{i}" for i in range(len(_TASK_ARGS))))
        built = build(*(getattr(probe, name) for name in _TASK_ARGS))
        if type(built) is not Task or built != probe or repr(built) != repr(probe):
            return by_keyword
    except TypeError:
        return by_keyword
    return build


_new_task = _task_factory()


def _where(mask: pl.Series) -> list[int]:
    """Row positions where ``mask`` is true."""
    return mask.fill_null(False).arg_true().to_list()


def _list_or_default(s: pl.Series | None, default: Any) -> Iterable[Any]:
    if s is None or not (s != "").any():
        return repeat(default)
    return s.to_list()


def build_tasks(sheet: Sheet, plan_dir: Path, problems: Problems) -> list[Task]:
    """Convert and check every row of ``sheet``; add what is wrong to ``problems``.

    Args:
        sheet: the rows, as text.
        plan_dir: folder of the plan file (agents resolve relative paths in it).
        problems: collector for problems.

    Returns:
        One task per row, in file order (bad values replaced by defaults).
    """
    cols, lines = sheet.columns, sheet.lines
    n = len(lines)
    for name, column in [*cols.items(), *sheet.meta]:
        for i in _where(column.str.contains("\x00", literal=True)):
            problems.add(lines[i], name, "contains a NUL byte: a plan is text",
                         column[i].replace("\x00", "\\0"))
    ids_s = cols["id"]
    ids: list[str] = ids_s.to_list()
    _check_ids(ids_s, ids, lines, problems)

    agents_s = cols.get("agent")
    agents: Iterable[str]
    if agents_s is not None and (agents_s != "").any():
        agents_s = agents_s.replace("", DEFAULT_AGENT)
        agents = agents_s.to_list()
    else:
        agents_s = pl.Series("agent", [DEFAULT_AGENT] * n, dtype=pl.String)
        agents = repeat(DEFAULT_AGENT)
    commands_s = cols.get("command")
    loaded = _check_agents(agents_s, commands_s, lines, problems)

    deps = _deps(cols.get("deps"), ids, lines, problems)
    numbers = [
        _numbers(cols.get("cpus"), "cpus", lines, problems, default=1.0, whole=False),
        _numbers(cols.get("gpus"), "gpus", lines, problems, default=0),
        _numbers(cols.get("memory_mb"), "memory_mb", lines, problems, default=0),
        _numbers(cols.get("priority"), "priority", lines, problems, default=0, signed=True),
        _numbers(cols.get("retries"), "retries", lines, problems, default=0),
        _numbers(cols.get("retry_backoff_s"), "retry_backoff_s", lines, problems, 1.0, whole=False),
        _numbers(cols.get("timeout_s"), "timeout_s", lines, problems, None, whole=False),
    ]
    pools = cols.get("pool")
    if pools is not None:
        for i in _where((pools != "") & ~pools.str.contains(ID_PATTERN)):
            problems.add(lines[i], "pool", "invalid pool name: use letters, digits and _ . : -",
                         pools[i])
    env = _env(cols.get("env"), lines, problems)
    tags = _split_column(cols.get("tags"))
    meta = _meta(sheet.meta, n)
    # Positional in Task's field order (id ... meta, line): map() over columns
    # builds a million tasks several times faster than keyword calls in a loop.
    tasks = list(
        map(
            _new_task, ids, agents, _list_or_default(commands_s, ""), deps,
            _list_or_default(cols.get("name"), ""), _list_or_default(pools, ""), *numbers,
            env, _list_or_default(cols.get("cwd"), ""), tags, meta, lines,
        )
    )
    _agent_validate(tasks, loaded, plan_dir, problems)
    return tasks


def _check_ids(ids_s: pl.Series, ids: list[str], lines: list[int], problems: Problems) -> None:
    empty = ids_s == ""
    for i in _where(empty):
        problems.add(lines[i], "id", "missing id")
    for i in _where(~empty & ~ids_s.str.contains(ID_PATTERN)):
        problems.add(lines[i], "id", "invalid id: use letters, digits and _ . : - only", ids[i])
    for i in _where(ids_s.is_in([".", ".."])):  # a sub-plan's logs would leave the run's folder
        problems.add(lines[i], "id", "invalid id: . and .. name folders", ids[i])
    for i in _where(ids_s.str.len_chars() > MAX_ID_LEN):
        problems.add(lines[i], "id", f"id longer than {MAX_ID_LEN} characters "
                     f"({len(ids[i])}): its log file name would not fit", ids[i])
    first: dict[str, int] = {}
    for i in _where(~empty & ids_s.is_duplicated()):
        task_id = ids[i]
        if task_id in first:
            problems.add(lines[i], "id", f"duplicate id, first defined on line {first[task_id]}",
                         task_id)
        else:
            first[task_id] = lines[i]


def _check_agents(
    agents_s: pl.Series, commands_s: pl.Series | None, lines: list[int], problems: Problems
) -> dict[str, Agent]:
    """Resolve each agent name once; report unknown or broken ones and missing commands."""
    loaded: dict[str, Agent] = {}
    for name in sorted(agents_s.unique().to_list()):
        rows = _where(agents_s == name)
        if not is_known_agent(name):
            known = known_agents()
            for i in rows:
                problems.add(lines[i], "agent", f"unknown agent (known: {', '.join(known)})", name)
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            agent = get_agent(name)
        if agent is None:
            why = str(caught[-1].message).removeprefix("tek: ") if caught else "no agent class"
            for i in rows:
                problems.add(lines[i], "agent", f"agent could not be loaded: {why}", name)
            continue
        loaded[name] = agent
        if agent.needs_command:
            missing = agents_s == name
            if commands_s is not None:
                missing = missing & (commands_s == "")
            for i in _where(missing):
                problems.add(lines[i], "command", f"missing command: the {name} agent needs one")
    return loaded


def _agent_validate(
    tasks: list[Task], loaded: dict[str, Agent], plan_dir: Path, problems: Problems
) -> None:
    """Let each agent check its tasks' commands (skipped when it keeps the default)."""
    for name, agent in loaded.items():
        if type(agent).validate is Agent.validate:
            continue
        for task in tasks:
            if task.agent != name or (agent.needs_command and not task.command):
                continue
            try:
                messages = agent.validate(task, plan_dir)
            except Exception as exc:  # a plug-in's bug must not become a traceback
                messages = [f"the {name} agent failed to check it: {exc!r}"]
            for message in messages:
                problems.add(task.line, "command", message)


def _suggester(ids: Sequence[str]) -> Callable[[str], str | None]:
    """A function naming the id closest to a missing one, or None."""
    if len(ids) <= _FULL_SUGGEST:
        pool: Sequence[str] = ids
        folded = {i.lower(): i for i in reversed(ids)}  # the first of equal ones wins

        def closest(missing: str) -> str | None:
            if missing.lower() in folded:  # "A" for "a": too short for difflib
                return folded[missing.lower()]
            found = difflib.get_close_matches(missing, pool, n=1, cutoff=0.75)
            return found[0] if found else None

        return closest
    ordered = sorted(set(ids))
    lowered = {i.lower(): i for i in ordered}

    def closest_large(missing: str) -> str | None:
        if missing.lower() in lowered:
            return lowered[missing.lower()]
        at = bisect.bisect_left(ordered, missing)
        near = ordered[max(0, at - 25) : at + 25]
        found = difflib.get_close_matches(missing, near, n=1, cutoff=0.75)
        return found[0] if found else None

    return closest_large


def _deps(
    s: pl.Series | None, ids: list[str], lines: list[int], problems: Problems
) -> Iterable[tuple[str, ...]]:
    if s is None or not (s != "").any():
        return repeat(())
    out = [tuple(text.replace(";", " ").split()) if text else () for text in s.to_list()]
    known = set(ids)
    bad: list[tuple[int, str]] = []
    # Two passes in C over every dependency; only a plan with a problem pays
    # for the row-by-row pass that finds where it is.
    if not known.issuperset(chain.from_iterable(out)) or any(map(contains, out, ids)):
        bad = [(i, d) for i, ds in enumerate(out) if ds for d in ds
               if d not in known or d == ids[i]]
    suggest: Callable[[str], str | None] | None = None
    for n, (i, dep) in enumerate(bad):
        if dep == ids[i]:
            problems.add(lines[i], "deps", "task depends on itself", dep)
            continue
        hint = ""
        if "," in dep:  # "a, b" in a quoted cell: the separator is ; or a space
            hint = "; separate ids with ; or spaces, not commas"
        elif n < _MAX_SUGGEST:
            suggest = suggest or _suggester(ids)
            near = suggest(dep)
            hint = f'; did you mean "{near}"?' if near else ""
        problems.add(lines[i], "deps", f"no task has this id{hint}", dep)
    return out


def _numbers(
    s: pl.Series | None,
    column: str,
    lines: list[int],
    problems: Problems,
    default: float | None,
    *,
    whole: bool = True,
    signed: bool = False,
) -> Iterable[Any]:
    """Convert a numeric column; report non-numbers, fractions, negatives, NaN/inf."""
    if s is None:
        return repeat(default)
    given = s != ""
    if not given.any():
        return repeat(default)
    floats = s.cast(pl.Float64, strict=False)
    values = s.cast(pl.Int64, strict=False) if whole else floats
    bad = given & values.is_null()
    for i in _where(bad):
        f = floats[i]
        if f is None or not math.isfinite(f):
            message = "not a number" if f is None or math.isnan(f) else "must be finite"
        else:
            message = "expected a whole number"
        problems.add(lines[i], column, message, s[i])
    ok = given & ~bad
    if not whole:
        for i in _where(ok & ~floats.is_finite()):
            nan = math.isnan(floats[i])
            problems.add(lines[i], column, "not a number" if nan else "must be finite", s[i])
            bad[i] = True
    if not signed:
        limit_bad = ok & (values <= 0 if column == "timeout_s" else values < 0)
        rule = "must be more than 0" if column == "timeout_s" else "must not be negative"
        for i in _where(limit_bad):
            problems.add(lines[i], column, rule, s[i])
            bad[i] = True
    result: list[Any] = values.to_list()
    for i in _where(bad | ~given):
        result[i] = default
    return result


def _env(
    s: pl.Series | None, lines: list[int], problems: Problems
) -> Iterable[tuple[tuple[str, str], ...]]:
    if s is None or not (s != "").any():
        return repeat(())
    out: list[tuple[tuple[str, str], ...]] = []
    for i, text in enumerate(s.to_list()):
        pairs: list[tuple[str, str]] = []
        for entry in text.split(";"):
            if not entry.strip():
                continue
            key, eq, value = entry.partition("=")
            key = key.strip()
            if not eq or not _ENV_KEY.match(key):
                why = ("expected KEY=VALUE, entries separated by ;" if not eq
                       else "bad variable name: letters, digits and _, not starting with a digit")
                problems.add(lines[i], "env", why, entry.strip())
                continue
            if any(k == key for k, _ in pairs):  # which one was meant?
                problems.add(lines[i], "env", f"{key} is set twice", entry.strip())
                continue
            pairs.append((key, value.strip()))
        out.append(tuple(pairs))
    return out


def _split_column(s: pl.Series | None) -> Iterable[tuple[str, ...]]:
    """A ``;``-separated column as tuples, empty parts dropped."""
    if s is None or not (s != "").any():
        return repeat(())
    # Tag sets repeat a lot: convert each distinct text once and share the tuple.
    memo: dict[str, tuple[str, ...]] = {}
    out: list[tuple[str, ...]] = []
    for text in s.to_list():
        parts = memo.get(text)
        if parts is None:
            parts = memo[text] = tuple(filter(None, map(str.strip, text.split(";"))))
        out.append(parts)
    return out


def _meta(meta: list[tuple[str, pl.Series]], n: int) -> Iterable[tuple[tuple[str, str], ...]]:
    used = [(name, s.to_list()) for name, s in meta if (s != "").any()]
    if not used:
        return repeat(())
    return [tuple((name, vals[i]) for name, vals in used if vals[i]) for i in range(n)]
