"""Per-attempt output: the log file and the bounded live buffer.

:class:`AttemptLog` is the :class:`~core.agents.base.LogSink` the engine hands
to each attempt. Every line goes to ``<home>/runs/<run>/<task>.<attempt>.log``
(complete, whatever the task prints); the live stream gets at most
``live_limit`` lines between two engine flushes, each cut to ``MAX_LIVE_CHARS``,
and the rest is counted as dropped. Memory therefore stays flat under an
output flood: the file is written through a fixed buffer and the live list is
bounded.

A shell task's output reaches the file byte for byte (:meth:`AttemptLog.write_output`);
lines tek itself writes are UTF-8. The file is created by the first output:
an attempt that printed nothing leaves no file (readers show it as empty
while the run's folder is there). Creating a file was the largest single
cost of a short shell task: 150-300 us of CPU on ext4, up to 0.5 ms where
many files were recently deleted, and writers in one folder queue on its lock.

A file that cannot be written (disk full, folder gone) never raises into the
engine or the agent: the first error is kept in :attr:`AttemptLog.error`,
the file is given up, the live stream goes on, and the engine fails the
attempt with that reason (a log that silently lost lines is not "complete").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from core.agents.base import LogSink

#: A live line longer than this is cut (the log file keeps it whole).
MAX_LIVE_CHARS = 2000


class AttemptLog(LogSink):
    """Log file writer plus the live lines not yet taken by the engine.

    Args:
        path: the attempt's log file (parents are created).
        live_limit: most lines kept for the live stream between two ``take`` calls.
        on_output: called with this log when the first line arrives after a
            ``take``, so the engine knows to flush.
    """

    def __init__(
        self,
        path: Path,
        live_limit: int = 2000,
        on_output: Callable[[AttemptLog], None] | None = None,
    ) -> None:
        self.path = path
        self.live_limit = live_limit
        self._on_output = on_output
        self._file: IO[bytes] | None = None
        self._live: list[str] = []
        self._dropped = 0
        self.lines_written = 0
        self._at_line_start = True
        self.closed = False
        #: why the file could not be written ("" while it can)
        self.error = ""

    def _file_failed(self, exc: OSError) -> None:
        """Keep the first error, drop the file, go on without it."""
        if not self.error:
            self.error = f"could not write log {self.path}: {exc.strerror or exc}"
        f, self._file = self._file, None
        try:
            if f is not None:
                f.close()
        except OSError:  # the buffered lines are what failed: already counted
            pass

    def _open(self) -> IO[bytes]:
        try:
            f: IO[bytes] = open(self.path, "ab")  # noqa: SIM115
        except FileNotFoundError:  # the run's folder is gone (or was never made)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "ab")  # noqa: SIM115
        self._file = f
        return f

    def write_line(self, line: str) -> None:
        """Append one line (without its newline)."""
        self.write_lines([line])

    def write_lines(self, lines: list[str]) -> None:
        """Append lines to the file (UTF-8) and, within the bound, to the live buffer."""
        if lines and not self.closed:
            text = "\n".join(lines) + "\n"
            if not self._at_line_start:  # after a task's unterminated last line
                text = "\n" + text
            self.write_output(text.encode("utf-8", "replace"), lines)

    def write_output(self, raw: bytes, lines: list[str]) -> None:
        """Append ``raw`` to the file as it is, and ``lines`` to the live buffer."""
        if self.closed:
            return
        try:
            f = self._file
            if f is None and not self.error:
                f = self._open()
            if f is not None:
                f.write(raw)
                self._at_line_start = raw.endswith(b"\n")
        except OSError as exc:
            self._file_failed(exc)
        self.lines_written += len(lines)
        live = self._live
        notify = not live and not self._dropped
        room = self.live_limit - len(live)
        if room >= len(lines):
            live.extend(line if len(line) <= MAX_LIVE_CHARS else line[:MAX_LIVE_CHARS] for line in lines)
        else:
            if room > 0:
                live.extend(line[:MAX_LIVE_CHARS] for line in lines[:room])
            self._dropped += len(lines) - max(room, 0)
        if notify and self._on_output is not None:
            self._on_output(self)

    def take(self) -> tuple[list[str], int]:
        """Hand the engine the pending live lines and the count dropped since."""
        lines, dropped = self._live, self._dropped
        self._live = []
        self._dropped = 0
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._file_failed(exc)
        return lines, dropped

    def close(self) -> None:
        """Flush and close the file (there is none if nothing was written)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._file is not None:
                f, self._file = self._file, None
                f.close()
        except OSError as exc:
            self._file_failed(exc)
