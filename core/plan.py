"""The plan model: immutable, typed :class:`Task` and :class:`Plan`.

A plan is what one CSV file describes (see DESIGN.md, "The plan"). Objects here
are frozen; building one from rows and checking it is ``core.plan_io``'s and
``validate_plan``'s job. Fields keep what the file said (``name`` and ``pool``
stay empty when the column was empty) so that export writes the same file back;
the ``label`` and ``pool_name`` properties give the effective values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

#: Columns of the plan format, in export order.
COLUMNS: tuple[str, ...] = (
    "id",
    "agent",
    "command",
    "deps",
    "name",
    "pool",
    "cpus",
    "gpus",
    "memory_mb",
    "priority",
    "retries",
    "retry_backoff_s",
    "timeout_s",
    "env",
    "cwd",
    "tags",
)

#: Prefix of user metadata columns, kept as they are.
META_PREFIX = "x_"

DEFAULT_AGENT = "shell"


@dataclass(frozen=True, slots=True)
class Task:
    """One row of a plan.

    Attributes:
        id: unique id, ``[A-Za-z0-9_.:-]+`` (sub-plan tasks add ``parent/``).
        agent: agent name (``shell``, ``ml``, ``noop``, ``plan`` or a plug-in).
        command: agent-specific text (shell text, ML op line, sub-plan path).
        deps: ids this task waits for, in file order.
        name: label from the file; empty means "use the id".
        pool: pool from the file; empty means "the agent's name".
        cpus: CPUs held while running (may be fractional).
        gpus: whole GPUs held while running.
        memory_mb: memory held while running, in MiB.
        priority: higher starts first among ready tasks.
        retries: extra attempts after a failure.
        retry_backoff_s: first retry delay; doubles each time, with jitter.
        timeout_s: an attempt is stopped after this many seconds; None = never.
        env: extra environment, ``(KEY, VALUE)`` pairs in file order.
        cwd: working directory as written (relative to the plan's folder).
        tags: labels for filtering.
        meta: ``x_*`` columns, ``(column, value)`` pairs, empty values omitted.
        line: line of the row in its file (1 = header); not part of equality.
    """

    id: str
    agent: str = DEFAULT_AGENT
    command: str = ""
    deps: tuple[str, ...] = ()
    name: str = ""
    pool: str = ""
    cpus: float = 1.0
    gpus: int = 0
    memory_mb: int = 0
    priority: int = 0
    retries: int = 0
    retry_backoff_s: float = 1.0
    timeout_s: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = ""
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    line: int = field(default=0, compare=False)

    @property
    def label(self) -> str:
        """Name shown in the console: ``name`` or, when empty, the id."""
        return self.name or self.id

    @property
    def pool_name(self) -> str:
        """Pool that runs the task: ``pool`` or, when empty, the agent's name."""
        return self.pool or self.agent

    @property
    def env_dict(self) -> dict[str, str]:
        """The ``env`` column as a dict (later keys win)."""
        return dict(self.env)


@dataclass(frozen=True)
class Plan:
    """A validated set of tasks read from one file.

    Attributes:
        tasks: tasks in file order.
        path: the file it came from, or None for a plan built in code.
        meta_columns: ``x_*`` columns in file order (so export keeps them).
    """

    tasks: tuple[Task, ...]
    path: Path | None = None
    meta_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    @cached_property
    def by_id(self) -> Mapping[str, Task]:
        """Tasks keyed by id (built once, on first use; the plan is frozen)."""
        return {t.id: t for t in self.tasks}

    @property
    def base_dir(self) -> Path:
        """Folder that relative ``cwd`` and sub-plan paths start from."""
        return self.path.parent if self.path is not None else Path.cwd()

    def task(self, task_id: str) -> Task:
        """Return the task with this id; KeyError when there is none."""
        return self.by_id[task_id]
