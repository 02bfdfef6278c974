"""Helpers for the engine tests: a probing agent, plan builders, run drivers.

:class:`ProbeAgent` (registered as agent ``probe``) checks the engine's
invariants from the inside at every attempt start: every dependency has
succeeded, resources in use stay within capacity, GPU indices are distinct,
and no pool runs more tasks than its size. Its ``command`` is
``DELAY[:FAILS]``: sleep DELAY seconds, fail the first FAILS attempts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from core.agents.base import Agent, AttemptContext, Outcome
from core.agents.registry import get_agent, register_agent
from core.engine import Run, RunOptions, RunSummary, create_run
from core.events import Event, OutputLines
from core.plan import Plan, Task


@dataclass
class Probe:
    """What the probe saw across one run."""

    cpus: float = 1e9
    gpus: int = 1_000
    memory_mb: int = 1 << 40
    pool_sizes: dict[str, int] = field(default_factory=dict)
    succeeded: set[str] = field(default_factory=set)
    starts: list[tuple[str, int]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    used_cpus: float = 0.0
    used_gpus: set[int] = field(default_factory=set)
    used_mem: int = 0
    busy: Counter[str] = field(default_factory=Counter)
    max_busy: Counter[str] = field(default_factory=Counter)
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)


class ProbeAgent(Agent):
    """Checks invariants at each start; sleeps; maybe fails."""

    name = "probe"
    needs_command = False
    probe = Probe()

    async def run(self, ctx: AttemptContext) -> Outcome:
        p = self.probe
        t = ctx.task
        p.starts.append((t.id, ctx.attempt))
        p.times.append(time.monotonic())
        for d in t.deps:
            if d not in p.succeeded:
                p.violations.append(f"{t.id} started before dep {d} succeeded")
        if set(ctx.gpus) & p.used_gpus or len(set(ctx.gpus)) != len(ctx.gpus):
            p.violations.append(f"{t.id} got GPUs {ctx.gpus} in use {p.used_gpus}")
        p.used_cpus += ctx.cpus
        p.used_gpus |= set(ctx.gpus)
        p.used_mem += ctx.memory_mb
        pool = t.pool_name
        p.busy[pool] += 1
        p.max_busy[pool] = max(p.max_busy[pool], p.busy[pool])
        if p.used_cpus > p.cpus + 1e-9 or len(p.used_gpus) > p.gpus or p.used_mem > p.memory_mb:
            p.violations.append(
                f"{t.id}: over capacity cpus={p.used_cpus} gpus={p.used_gpus} mem={p.used_mem}"
            )
        if p.busy[pool] > p.pool_sizes.get(pool, 1 << 30):
            p.violations.append(f"pool {pool} ran {p.busy[pool]} at once")
        try:
            delay, _, fails = t.command.partition(":")
            if delay:
                await anyio.sleep(float(delay))
            ok = ctx.attempt > int(fails or 0)
        finally:
            p.used_cpus -= ctx.cpus
            p.used_gpus -= set(ctx.gpus)
            p.used_mem -= ctx.memory_mb
            p.busy[pool] -= 1
        if ok:
            p.succeeded.add(t.id)
            return Outcome(ok=True, exit_code=0)
        return Outcome(ok=False, exit_code=1, reason="probe failure")


register_agent("probe", "tests.core.engine_helpers:ProbeAgent")


def new_probe(options: RunOptions, jobs: int) -> Probe:
    """Reset the probe for a run with these capacities."""
    agent = get_agent("probe")
    assert isinstance(agent, ProbeAgent)
    probe = Probe(
        cpus=options.cpus if options.cpus is not None else float(options.jobs or jobs),
        gpus=options.gpus if options.gpus is not None else 0,
        memory_mb=options.memory_mb if options.memory_mb is not None else 1 << 40,
    )
    ProbeAgent.probe = probe
    return probe


def plan_of(*tasks: Task) -> Plan:
    """A plan built in code."""
    return Plan(tasks=tuple(tasks))


def shell(tid: str, command: str, **kw: Any) -> Task:
    """A shell task."""
    return Task(tid, agent="shell", command=command, **kw)


def noop(tid: str, delay: str = "", **kw: Any) -> Task:
    """A noop task."""
    return Task(tid, agent="noop", command=delay, **kw)


def probe(tid: str, command: str = "", **kw: Any) -> Task:
    """A task of the probing agent (``command`` is ``DELAY[:FAILS]``)."""
    return Task(tid, agent="probe", command=command, **kw)


class EventLog(list[Event]):
    """Events a subscriber got, with a way to wait for one that matters."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def add(self, ev: Event) -> None:
        self.append(ev)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (at most 10 s) until ``predicate()`` holds after some event."""
        with anyio.fail_after(10):
            while not predicate():
                await self._changed.wait()
                self._changed = anyio.Event()


async def run_collect(
    run: Run,
    during: Callable[[Run, EventLog], Any] | None = None,
    keep_output: bool = True,
) -> tuple[RunSummary, EventLog]:
    """Run with one subscriber that keeps every event; ``during`` runs beside it.

    ``keep_output=False`` reads but does not keep ``OutputLines`` (floods).
    """
    events = EventLog()
    stream = run.client().events()

    async def consume() -> None:
        async for ev in stream:
            if keep_output or not isinstance(ev, OutputLines):
                events.add(ev)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            if during is not None:
                tg.start_soon(during, run, events)
            summary = await run.run()
    return summary, events


async def run_plan(
    tasks: Sequence[Task], options: RunOptions | None = None, **kw: Any
) -> tuple[RunSummary, EventLog]:
    """Build and run a plan of ``tasks``."""
    run = create_run(plan_of(*tasks), options or RunOptions(jobs=4, memory_floor_mb=0), **kw)
    return await run_collect(run)


def state_of(run: Run, task_id: str) -> str:
    """The task's state now, from the run's snapshot (as a client sees it)."""
    return next(t.state.value for t in run.snapshot().tasks if t.id == task_id)
