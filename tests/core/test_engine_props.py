"""Property tests on random DAGs: order, exactly-once, capacities, pool bounds.

The probe agent (``tests.core.engine_helpers``) checks at every attempt start
that all deps succeeded, that CPUs, GPUs and memory in use stay within
capacity with distinct GPU indices, and that no pool runs more tasks than
its size. Here hypothesis builds the plans and options and checks the rest
from the outside.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import RunOptions, create_run
from core.events import TaskState
from core.plan import Plan, Task
from tests.core.engine_helpers import new_probe


@st.composite
def plans(draw: st.DrawFn) -> tuple[Plan, RunOptions]:
    opts = RunOptions(
        jobs=draw(st.integers(1, 4)),
        cpus=draw(st.sampled_from([1.0, 2.0, 3.5])),
        gpus=draw(st.integers(0, 2)),
        memory_mb=draw(st.sampled_from([300, 500, 1000])),
        memory_floor_mb=0,
    )
    assert opts.gpus is not None and opts.memory_mb is not None
    n = draw(st.integers(1, 24))
    tasks = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        fails = draw(st.sampled_from([0, 0, 0, 1, 2]))
        tasks.append(Task(
            f"t{i}", agent="probe",
            command=f"{draw(st.sampled_from(['', '0.001', '0.003']))}:{fails}",
            deps=tuple(f"t{d}" for d in deps),
            pool=draw(st.sampled_from(["", "a", "b"])),
            cpus=draw(st.sampled_from([0.5, 1.0, 2.0])),
            # at most the capacity: a task that could never start is refused up front
            gpus=min(draw(st.sampled_from([0, 0, 1, 2])), opts.gpus),
            memory_mb=min(draw(st.sampled_from([0, 100, 300])), opts.memory_mb),
            priority=draw(st.integers(0, 2)),
            retries=draw(st.integers(0, 1)),
            retry_backoff_s=0.001,
        ))  # fmt: skip
    if any(t.pool == "a" for t in tasks):
        opts = dataclasses.replace(opts, pool_sizes={"a": draw(st.integers(1, 3))})
    return Plan(tasks=tuple(tasks)), opts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_random_dags_respect_order_capacity_and_run_once(case: tuple[Plan, RunOptions]) -> None:
    plan, opts = case
    probe = new_probe(opts, opts.jobs or 1)
    probe.pool_sizes = {name: opts.pool_sizes.get(name, opts.jobs or 1)
                        for name in {t.pool_name for t in plan.tasks}}

    async def main() -> object:
        with anyio.fail_after(30):
            return await create_run(plan, opts).run()

    summary = anyio.run(main)
    assert not probe.violations, probe.violations
    starts = Counter(tid for tid, _ in probe.starts)
    by_id = plan.by_id
    for tid, res in summary.tasks.items():  # type: ignore[attr-defined]
        task = by_id[tid]
        fails = int(task.command.split(":")[1])
        upstream_ok = all(summary.tasks[d].state is TaskState.SUCCEEDED  # type: ignore[attr-defined]
                          for d in task.deps)
        if not upstream_ok:
            assert res.state is TaskState.SKIPPED and starts[tid] == 0
        else:
            # Exactly once, unless retried: attempts = min(fails, retries) + 1.
            assert starts[tid] == min(fails, task.retries) + 1 == res.attempts
            assert (res.state is TaskState.SUCCEEDED) == (fails <= task.retries)
    # Each attempt number is used once per task.
    assert len(probe.starts) == len(set(probe.starts))
