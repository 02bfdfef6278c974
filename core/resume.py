"""What ``tek run --resume`` reruns, decided from the plan and the journal.

Rules (DESIGN.md, "Persistence"; issue 4):

- a task that succeeded in the journal, whose row is unchanged, is kept as
  done (the engine gets it in ``completed``) and never runs again;
- a task that did not succeed (failed, cancelled, skipped because of its
  upstream, pending, or ``running`` when tek died) reruns;
- a task the user skipped stays skipped: its downstream ran without it, and
  running it now would put it after them (``--from`` reruns it);
- a task whose row hash differs from the journal's, or that is new in the
  plan, reruns, and so does everything downstream of it;
- ``--from TASK`` forces TASK and everything downstream of it to rerun.

The row hash covers what a task does, and only that (:data:`DOES`): its
agent, command, dependencies, environment, working directory, and the
resources it is given (cpus, gpus, memory_mb: an ML task's threads and
devices follow them, a shell task sees its GPUs in ``CUDA_VISIBLE_DEVICES``).
How it is labelled or scheduled is not part of it: editing ``name``,
``tags``, ``priority``, ``pool``, ``retries``, ``retry_backoff_s``,
``timeout_s`` or an ``x_`` column reruns nothing (fixing a label's typo in a
90-task plan must not rerun the night). Dependency order and the order of
distinct ``env`` keys are ignored because they mean nothing. Journals
written by earlier versions hold hashes over every column; they are still
recognised (:func:`row_unchanged`), so an unchanged row of such a run does
not rerun (an edit to any column of it still does: those hashes cannot tell
which column changed). Attempt numbers continue from the journal so log
files of earlier attempts stay.

Pure functions over plain data: no I/O, no SQLite, cheap to test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import marshal
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import PlanError
from core.plan import Task

#: The reason a task skipped by a SkipTask control ends with.
SKIPPED_BY_USER = "skipped by user"

if TYPE_CHECKING:
    from core.plan import Plan
    from core.store import TaskRecord

#: Task fields a row hash covers: what the task does (see the module's doc).
DOES: tuple[str, ...] = ("id", "agent", "command", "deps", "env", "cwd", "cpus", "gpus", "memory_mb")
_DOES_DEPS = DOES.index("deps")  # env follows it
_DOES_FIELDS = operator.attrgetter(*DOES)

#: Task fields the hash of the previous journals covered: all but ``line``.
_ALL: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Task) if f.name != "line")
_DEPS = _ALL.index("deps")
_ALL_FIELDS = operator.attrgetter(*_ALL)


#: Length of a :func:`row_hash` (hex digits). A journal row with a hash of
#: another length was written by an older tek: 16 digits by
#: :func:`full_row_hash`, 24 by :func:`legacy_row_hash`.
HASH_LEN = 20


def row_hash(task: Task) -> str:
    """A short stable hash of what a task does (:data:`DOES`), not of how it is labelled.

    blake2b over the fields in marshal format 0 (no references, no interning
    flags, floats as text: the same bytes for the same values in any
    process and any CPython 3). Twice as fast as hashing their repr, which
    matters at 10k tasks (~15 ms instead of ~30 ms on the run's set-up).
    """
    values = _DOES_FIELDS(task)
    if len(task.deps) > 1 or len(task.env) > 1:  # their order means nothing
        env = tuple(sorted(task.env_dict.items()))  # a key given twice: the last one counts
        values = (*values[:_DOES_DEPS], tuple(sorted(task.deps)), env, *values[_DOES_DEPS + 2 :])
    return hashlib.blake2b(marshal.dumps(values, 0), digest_size=HASH_LEN // 2).hexdigest()


def full_row_hash(task: Task) -> str:
    """The row hash journals written by schema v3 before this version hold (16 hex digits).

    It covers every field of the row but its line, labels and ``x_``
    columns included.
    """
    values = _ALL_FIELDS(task)
    if len(task.deps) > 1:  # dependency order means nothing
        values = (*values[:_DEPS], tuple(sorted(task.deps)), *values[_DEPS + 1 :])
    return hashlib.blake2b(marshal.dumps(values, 0), digest_size=8).hexdigest()


def legacy_row_hash(task: Task) -> str:
    """The row hash journals written before schema v3 hold (24 hex digits)."""
    values = list(_ALL_FIELDS(task))
    values[_DEPS] = tuple(sorted(task.deps))
    # repr of str, int, float and tuples is stable across CPython versions.
    return hashlib.blake2b(repr(values).encode(), digest_size=12).hexdigest()


#: Hash functions of older teks, by the length of the hashes they made.
_OLDER = {16: full_row_hash, 24: legacy_row_hash}


def row_unchanged(stored: str, task: Task) -> bool:
    """True when ``task`` is the row the journal hashed as ``stored``.

    A hash of an older tek is checked with that tek's function, so a run
    journaled before an upgrade resumes without rerunning unchanged tasks.
    A hash of no known form (a sub-plan's row holds none) never matches.
    """
    if len(stored) == HASH_LEN:
        return stored == row_hash(task)
    older = _OLDER.get(len(stored))
    return older is not None and stored == older(task)


@dataclass(frozen=True, slots=True)
class ResumeDecision:
    """What a resumed run does.

    Attributes:
        completed: tasks kept as succeeded (passed to the engine as ``completed``).
        rerun: tasks that run again.
        skipped: tasks the user skipped, kept skipped (the engine's ``skipped``);
            ``completed``, ``rerun`` and ``skipped`` partition the plan.
        attempts_so_far: last attempt number per task, so numbering continues.
        why: for each rerun task, one phrase saying why.
    """

    completed: frozenset[str]
    rerun: frozenset[str]
    attempts_so_far: Mapping[str, int] = field(default_factory=dict)
    why: Mapping[str, str] = field(default_factory=dict)
    skipped: frozenset[str] = frozenset()


def decide_resume(
    plan: Plan, journal: Iterable[TaskRecord], from_tasks: Sequence[str] = ()
) -> ResumeDecision:
    """Decide which tasks of ``plan`` a resume of a journaled run reruns.

    Args:
        plan: the plan as it is now (may differ from the journaled one).
        journal: the run's task rows (``task_id``, ``state``, ``row_hash``,
            ``attempts``).
        from_tasks: ``--from`` tasks: rerun them and their downstream.

    Returns:
        The decision; ``completed``, ``rerun`` and ``skipped`` partition the plan's ids.

    Raises:
        PlanError: a ``--from`` task is not in the plan.
    """
    rows = {r.task_id: r for r in journal}
    unknown = [t for t in from_tasks if t not in plan.by_id]
    if unknown:
        where = plan.path or "the plan"
        raise PlanError([f"--from: no task {t!r} in {where}" for t in unknown])

    why: dict[str, str] = {}
    skipped: set[str] = set()
    roots: list[tuple[str, str]] = []  # (task, reason) whose downstream reruns too
    for task in plan.tasks:
        row = rows.get(task.id)
        if row is None:
            roots.append((task.id, "new task"))
        elif not row_unchanged(row.row_hash, task):
            roots.append((task.id, "row changed"))
        elif row.state == "skipped" and row.reason == SKIPPED_BY_USER:
            skipped.add(task.id)  # deliberately: stays skipped, its downstream ran without it
        elif row.state != "succeeded":
            why[task.id] = f"was {row.state}"
    roots.extend((t, "--from") for t in from_tasks)

    children = _children(plan)
    for root, reason in roots:
        why[root] = reason
        for down in _downstream(root, children):
            why.setdefault(down, f"downstream of {root}")
            if why[down].startswith("was "):
                why[down] = f"downstream of {root}"
    rerun = frozenset(why)
    kept_skipped = frozenset(skipped - rerun)  # unless --from or an edit upstream reruns it
    completed = frozenset(t.id for t in plan.tasks if t.id not in rerun and t.id not in kept_skipped)
    attempts = {tid: r.attempts for tid, r in rows.items() if tid in plan.by_id and r.attempts}
    return ResumeDecision(completed, rerun, attempts, why, kept_skipped)


def _children(plan: Plan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for task in plan.tasks:
        for dep in task.deps:
            out.setdefault(dep, []).append(task.id)
    return out


def _downstream(root: str, children: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(children.get(root, ()))
    while stack:
        tid = stack.pop()
        if tid not in seen:
            seen.add(tid)
            stack.extend(children.get(tid, ()))
    return seen
