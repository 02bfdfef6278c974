"""The agent contract: validate a task's command, run one attempt.

An agent is stateless across tasks except for caches it owns (the ML agent's
warm workers). The engine creates one :class:`AttemptContext` per attempt and
awaits :meth:`Agent.run`; timeouts and cancellation arrive as anyio
cancellation, and an agent must then stop everything it started (kill its
process group) before returning or re-raising.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from core.plan import Task


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended.

    Attributes:
        ok: True when the attempt succeeded.
        exit_code: process exit code where there was a process (negative = signal).
        reason: why it failed, in words (empty on success).
        metrics: numbers worth keeping in the journal (ML metrics, counts).
    """

    ok: bool
    exit_code: int | None = None
    reason: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)


class LogSink(ABC):
    """Where an attempt's output goes: its log file and the live stream."""

    @abstractmethod
    def write_line(self, line: str) -> None:
        """Append one line (without its newline)."""

    def write_lines(self, lines: list[str]) -> None:
        """Append several lines; sinks may override to batch."""
        for line in lines:
            self.write_line(line)

    def write_output(self, raw: bytes, lines: list[str]) -> None:
        """Append a process's own output: ``raw`` as it came, ``lines`` decoded from it.

        Sinks with a file override this to keep the bytes exactly (a task
        may print Latin-1 or binary); this default logs the decoded lines.
        """
        self.write_lines(lines)


@dataclass(slots=True)
class AttemptContext:
    """Everything an agent needs to run one attempt.

    Attributes:
        task: the task.
        attempt: 1 for the first try, 2 for the first retry, ...
        run_id: the run's id (also in ``env`` as ``TEK_RUN_ID``).
        cpus: CPUs granted.
        gpus: GPU device indices granted (empty for CPU tasks).
        memory_mb: memory granted, in MiB.
        env: full environment for a child process (os.environ + task env +
            ``TEK_RUN_ID``, ``TEK_TASK_ID``, ``TEK_ATTEMPT`` and, for GPU tasks,
            ``CUDA_VISIBLE_DEVICES``).
        cwd: working directory (absolute).
        log_path: the attempt's log file.
        log: sink for output lines.
        report_progress: call with progress values (and optional ``fraction``).
        set_pid: call with the attempt's process id once it has one.
        plan_dir: folder of the plan file (for relative paths in commands).
    """

    task: Task
    attempt: int
    run_id: str
    cpus: float
    gpus: tuple[int, ...]
    memory_mb: int
    env: dict[str, str]
    cwd: Path
    log_path: Path
    log: LogSink
    report_progress: Callable[..., None]
    set_pid: Callable[[int], None]
    plan_dir: Path


class Launched(Protocol):
    """An attempt started by :meth:`Agent.launch`, running on loop callbacks."""

    def cancel(self) -> None:
        """Stop it (its ``done`` callback still comes, once it has stopped)."""


class Agent(ABC):
    """Runs tasks of one kind. Subclasses set ``name``."""

    name: ClassVar[str]
    #: True when a task of this agent must have a non-empty command.
    needs_command: ClassVar[bool] = True
    #: True when the engine starts attempts with :meth:`launch`, not :meth:`run`.
    launches: ClassVar[bool] = False

    def validate(self, task: Task, plan_dir: Path) -> list[str]:
        """Check a task's command before the run starts.

        Args:
            task: the task to check.
            plan_dir: folder of the plan file, for relative paths.

        Returns:
            One message per problem, without file or line (the plan reader adds
            ``FILE:LINE: command:``). Empty when the command is fine. Must be
            cheap and must not import torch.
        """
        return []

    @abstractmethod
    async def run(self, ctx: AttemptContext) -> Outcome:
        """Run one attempt to its end; on cancellation stop everything started."""

    def launch(
        self, ctx: AttemptContext, done: Callable[[Outcome], None], grace_s: float
    ) -> Launched | None:
        """Start one attempt as event-loop callbacks, or return None to be awaited.

        The fast path for agents whose attempts are mostly waiting (the shell
        agent): the engine then creates no task or cancel scope for the
        attempt. ``done`` must be called exactly once, on the loop, after
        everything the attempt started has stopped; ``cancel()`` on the
        result (timeout, user, end of run) must lead to it, stopping
        processes with ``grace_s`` between SIGTERM and SIGKILL.
        """
        return None

    async def aclose(self) -> None:
        """Release what the agent keeps between tasks (warm workers)."""
        return None
