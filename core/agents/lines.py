"""A task's output, from chunks of bytes to lines: :class:`LineSplitter`.

The log file gets the bytes exactly as the task printed them; the live
stream gets them decoded as UTF-8 (undecodable bytes shown as U+FFFD), one
entry per line. A line with no newline in sight is cut every
:data:`MAX_LINE_BYTES`, so one endless line never holds more than that.
"""

from __future__ import annotations

from core.agents.base import LogSink

#: Bytes of one line kept before it is cut (without a newline in sight).
MAX_LINE_BYTES = 1 << 20


class LineSplitter:
    """Turns chunks of bytes into lines for a log sink."""

    __slots__ = ("log", "partial")

    def __init__(self, log: LogSink) -> None:
        self.log = log
        self.partial = b""

    def feed(self, data: bytes) -> None:
        """Log the complete lines in ``data``; keep the rest for the next chunk.

        The log file gets the bytes exactly as printed; the live lines are
        them decoded as UTF-8 (undecodable bytes shown as U+FFFD).
        """
        chunk = self.partial + data if self.partial else data
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self.partial = chunk
            if len(chunk) > MAX_LINE_BYTES:
                self.flush()
            return
        self.partial = chunk[cut + 1 :]
        self.log.write_output(chunk[: cut + 1], chunk[:cut].decode("utf-8", "replace").split("\n"))

    def flush(self) -> None:
        """Log an unterminated last line (a piece of a huge one): the file gets no newline."""
        if self.partial:
            self.log.write_output(self.partial, [self.partial.decode("utf-8", "replace")])
            self.partial = b""
