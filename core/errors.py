"""The exception family of tek's engine.

Every error tek raises on purpose derives from :class:`TekError`, so a front
end can catch one type, print its one-line message and exit with code 2
(bad input) without ever showing a traceback.
"""

from __future__ import annotations


class TekError(Exception):
    """Base of every error tek raises on purpose."""


class PlanError(TekError):
    """A plan file could not be read or is invalid.

    ``problems`` holds every problem found, each already formatted as one line
    (``FILE:LINE: column: message (value)``); ``str(error)`` joins them.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class CycleError(PlanError):
    """The plan's dependencies form a cycle."""


class ControlError(TekError):
    """A run control named an unknown task or pool, or does not apply now."""


class StoreError(TekError):
    """The run journal is missing, corrupt, foreign or too new."""


class StoreWriteError(StoreError):
    """The journal is sound but cannot be written now: a full disk, a quota, a
    file size limit, a file or folder this user may only read.

    Readers still read such a journal (``core.store.open_store``). ``errno``
    is the system's reason when known (``errno.ENOSPC``: the disk is full).
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class RegistryError(TekError):
    """A model name, version or weights file in the registry is invalid."""


class ProtocolError(TekError):
    """A run-protocol message could not be decoded."""
