"""What an ML op sees of its attempt inside a worker: :class:`OpContext`.

The worker builds one per request from what the agent sent (run and task ids,
assigned GPUs and CPUs, working directory, environment) plus two callbacks
that send log lines and progress back over the pipe. Torch-free.

The attempt number comes from ``TEK_ATTEMPT`` in the task's environment (the
engine sets it for every agent), so ``meta.json`` can tell apart two versions
a resumed run saved for one task. Registry references resolve through
:meth:`OpContext.resolve`, which scopes a bare ``NAME`` to this run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.ml.registry import ModelVersion

_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@dataclass
class OpContext:
    """One ML op's view of its attempt.

    Attributes:
        run_id: the run's id (recorded in ``meta.json``).
        task_id: the task's id (recorded in ``meta.json``).
        attempt: the attempt number (``TEK_ATTEMPT``; 0 when unknown).
        cpus: CPUs granted; sets torch's thread count unless ``threads=`` is given.
        gpus: GPU indices granted.
        cwd: folder that relative paths start from.
        env: the task's environment, for ``$VAR`` in paths.
        log: sends one line to the attempt's log.
        progress: sends progress values (keyword ``fraction`` is the 0..1 part).
    """

    run_id: str = ""
    task_id: str = ""
    attempt: int = 0
    cpus: float = 1.0
    gpus: tuple[int, ...] = ()
    cwd: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    log: Callable[[str], None] = print
    progress: Callable[..., None] = lambda **values: None

    def path(self, text: str) -> Path:
        """Expand ``$VAR``/``${VAR}`` from the task's environment; relative to ``cwd``.

        Raises:
            ValueError: a variable is not set.
        """

        def expand(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in self.env:
                raise ValueError(f"${name} in path {text!r} is not set")
            return self.env[name]

        path = Path(_VAR.sub(expand, text)).expanduser()
        return path if path.is_absolute() else self.cwd / path

    def data_name(self, text: str) -> str:
        """A ``data=`` value as recorded and logged: a built-in set's name, else the real path.

        Raises:
            ValueError: a variable in the path is not set.
        """
        from core.ml.op_values import SYNTHETIC

        return text if text in SYNTHETIC else str(self.path(text))

    def resolve(self, ref: str) -> ModelVersion:
        """The registry version ``ref`` names for this run (see ``core.ml.registry.resolve``).

        Raises:
            RegistryError: bad reference, no such model or version.
        """
        from core.ml import registry

        return registry.resolve(ref, run_id=self.run_id or None)

    def lineage(self) -> dict[str, Any]:
        """The run, task and attempt that made something, for ``meta.json``."""
        return {"run_id": self.run_id, "task_id": self.task_id, "attempt": self.attempt or None}
