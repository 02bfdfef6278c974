"""What a run is built from: capacities, pools and linked task records.

:class:`core.run_state.RunState` calls these once, when a run is created:
the capacities taken from the options or the machine, the refusal of a task
that needs more than the whole capacity, and the task records linked to
their upstream and downstream, with a resumed run's finished and skipped
tasks already in place.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from core.events import TaskState
from core.resume import SKIPPED_BY_USER
from core.run_options import RunOptions
from core.scheduler import Pool, Resources, TaskRec, link

if TYPE_CHECKING:
    from core.plan import Plan


def capacities(plan: Plan, options: RunOptions) -> tuple[float, int, int]:
    """``(cpus, gpus, memory_mb)``: the options', else the machine's.

    CPUs default to ``-j`` (like ``make -j``), else the logical CPUs; GPUs to
    NVML's count, asked only when a task needs one; memory to the total.
    """
    cpus = options.cpus
    if cpus is None:
        cpus = float(options.jobs or os.cpu_count() or 1)
    gpus = options.gpus
    if gpus is None:
        gpus = 0
        if any(t.gpus for t in plan.tasks):
            from core.gpu import gpu_count

            gpus = gpu_count()
    memory = options.memory_mb
    if memory is None:
        from core.sysmem import total_mb

        memory = total_mb()
    return cpus, gpus, memory


def pools_for(plan: Plan, options: RunOptions) -> dict[str, Pool]:
    """One pool per pool name in the plan, sized by ``--pool``, else ``-j`` or the CPUs."""
    jobs = options.jobs or os.cpu_count() or 1
    names = dict.fromkeys(t.pool_name for t in plan.tasks)
    return {name: Pool(name, options.pool_sizes.get(name, jobs)) for name in names}


def impossible(plan: Plan, resources: Resources, done: Collection[str]) -> list[str]:
    """A line for each task to run that needs more than the whole capacity."""
    problems = []
    for t in plan.tasks:
        if t.id not in done and (found := resources.impossible(t)):
            column, why = found
            where = f"{plan.path}:{t.line}: " if plan.path is not None else ""
            problems.append(f"{where}{column}: task {t.id} {why}, so it could never start")
    return problems


def linked_records(
    plan: Plan,
    pools: Mapping[str, Pool],
    done: Collection[str],
    kept: Collection[str],
    attempts_so_far: Mapping[str, int],
) -> list[TaskRec]:
    """The run's task records in plan order, linked both ways.

    Args:
        plan: the plan.
        pools: the run's pools by name.
        done: tasks that succeeded in the run this one resumes (SUCCEEDED here).
        kept: tasks the user skipped there (SKIPPED here; their downstream
            runs as if they had succeeded, once their own upstream is done).
        attempts_so_far: attempt numbering to continue from.
    """
    dependents, rpl, order = link(plan.tasks, [*done, *kept])
    recs = [TaskRec(i, t, rpl[i], pools[t.pool or t.agent]) for i, t in enumerate(plan.tasks)]
    for n, i in enumerate(order):
        recs[i].topo = n
    by_id = {r.task.id: r for r in recs}
    for rec, deps_of in zip(recs, dependents, strict=True):
        rec.dependents = [recs[j] for j in deps_of]
        if rec.task.deps:
            rec.deps = [by_id[d] for d in rec.task.deps]
            rec.waiting = len(rec.deps)
    for tid in done:
        rec = by_id[tid]
        rec.state = TaskState.SUCCEEDED
        for d in rec.dependents:
            d.waiting -= 1
    for i in order if kept else ():  # upstream first
        rec = recs[i]
        if rec.task.id in kept:
            # As a skip given during the run: held till its upstream is done.
            rec.state, rec.reason = TaskState.SKIPPED, SKIPPED_BY_USER
            if rec.waiting:
                rec.held = True
            else:
                for d in rec.dependents:
                    d.waiting -= 1
    for tid, n in attempts_so_far.items():
        if tid in by_id:
            by_id[tid].attempt = n
    return recs
