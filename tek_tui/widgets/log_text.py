"""From a task's output to the lines the log pane shows: tail reading and display text.

The log file keeps the bytes exactly as the task printed them; what the pane
shows of a line is :func:`shown_line` of it, computed once as the line
arrives (live) or is read (tail, in a thread), never per paint:

- ``\\r`` progress (tqdm, curl, pip): only the text after the line's last
  ``\\r``, as a terminal would end up showing it; a trailing ``\\r`` (CRLF
  files) is ignored. A terminal overwrites in place, so a shorter last
  update would leave the end of a longer one there; tools that redraw pad
  their updates, and the last update alone is what reads right in a log.
- Control characters (``ESC``, C1 controls such as ``\\x9b``, ``DEL``, form
  feeds, Unicode line separators and bidi overrides) are shown escaped,
  ``\\x1b[31m``, never sent to the terminal. A raw ``ESC`` reached the
  terminal before, which ran it: the colour codes took no cells there while
  the pane counted each of their bytes as one, so the end of every coloured
  row was never painted and kept what the previous log had there.
- Whatever a terminal draws in another number of cells than Rich (and so
  the pane) counts is made plain: unassigned code points (random bytes
  decode to many; terminals drop them) are escaped (``\\U000e05a7``), and
  emoji joiners, variation selectors and skin tones are left out (``❤️``
  shows as ``❤``), so no row ends short of the pane's edge.
- Tabs are left for ``Log`` to expand (it measures and draws them alike).

Once escaped a line holds no character that ``Log.write_lines`` splits on,
so one output line stays one pane line.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

#: Bytes read at most from the end of a log file.
TAIL_BYTES = 4 << 20
#: Characters of one line shown at most (the whole line stays in the file).
LINE_CHARS = 2000
_BLOCK = 64 * 1024

#: What a terminal would run or a ``str.splitlines`` would split on; tab aside.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Emoji joiners, variation selectors and skin tones: terminals disagree on the
#: width of the sequences they make (tmux 3.3 draws ``❤️`` in one cell, Rich
#: counts two), so the pane shows the plain characters, whose width they agree on.
_JOINERS = re.compile("[\u200d\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")


def _escape(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]  # "\x1b", "\n", "\u2028"


def _unseen(char: str) -> bool:
    """An unassigned code point (random bytes decode to many): terminals drop it, Rich counts it."""
    return not char.isprintable() and unicodedata.category(char) in ("Cn", "Cs")


def escaped(text: str) -> str:
    """``text`` as one inert line: controls written out (``\\x1b``, ``\\n``, ``\\U000e05a7``).

    Emoji joiners, variation selectors and skin tones are left out (see
    :data:`_JOINERS`). Each step is one scan in C; only text that still
    holds an unassigned code point is gone through character by character.
    """
    if text.isascii():
        return text if text.isprintable() else _CONTROL.sub(_escape, text)
    text = _JOINERS.sub("", text)
    if text.isprintable():
        return text
    text = _CONTROL.sub(_escape, text)
    if text.isprintable():
        return text
    return "".join(ascii(ch)[1:-1] if _unseen(ch) else ch for ch in text)


def shown_line(line: str) -> str:
    """What the pane shows of one output line (see the module docstring).

    Args:
        line: one line as the task printed it, without its newline.

    Returns:
        The text after the last ``\\r``, cut to :data:`LINE_CHARS` (:func:`clip`),
        then :func:`escaped`; a printable ASCII line comes back as it is.
    """
    if line.isascii() and line.isprintable():  # the common case: O(1), then one scan
        return clip(line)
    if "\r" in line:
        line = line.rstrip("\r")
        line = line[line.rfind("\r") + 1 :]
    return escaped(clip(line))


def clip(line: str) -> str:
    """``line``, cut to :data:`LINE_CHARS` characters with a note of what was left out."""
    if len(line) <= LINE_CHARS:
        return line
    return f"{line[:LINE_CHARS]} … ({len(line) - LINE_CHARS:,} more characters in the log file)"


def read_tail(path: Path, max_lines: int, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The last ``max_lines`` lines of a log file as the pane shows them, reading backwards.

    At most ``max_bytes`` are read, so a log of a few huge lines (a task
    that printed 50 MB without a newline) costs no more than one of short
    lines; each line is :func:`shown_line` of the file's.

    Args:
        path: the log file.
        max_lines: how many lines at most.
        max_bytes: how much of the file's end to read at most.

    Returns:
        The lines without their newlines; empty when the file is missing.
    """
    blocks: list[bytes] = []
    newlines = read = 0
    cut = False  # the reading stopped inside a line
    try:
        with path.open("rb") as fh:
            pos = fh.seek(0, 2)
            while pos > 0 and newlines <= max_lines and read < max_bytes:
                step = min(_BLOCK, pos)
                pos -= step
                fh.seek(pos)
                block = fh.read(step)
                blocks.append(block)
                newlines += block.count(b"\n")
                read += len(block)
            if pos > 0:
                fh.seek(pos - 1)
                cut = fh.read(1) != b"\n"
    except OSError:
        return []
    text = b"".join(reversed(blocks)).decode("utf-8", errors="replace")
    # Lines end at "\n" only, as the live lines do (core.agents.lines):
    # str.splitlines would also cut at "\r", form feeds and the like.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the file's last newline ends its last line
    first_kept = len(lines) <= max_lines  # else the first line read is sliced off anyway
    lines = [shown_line(line) for line in lines[-max_lines:]]
    if cut and first_kept and lines:
        lines[0] = "… " + lines[0]
    return lines
