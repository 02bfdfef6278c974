"""The records of a plan file: bytes to text, quoting, line numbers, text columns.

Also the file's problem collector (:class:`Problems`, which formats
``FILE:LINE: column: message (value)``) and :class:`Sheet`, the rows as text
that ``core.plan_check`` converts.

``core.plan_io`` calls this to turn a file into a polars frame of text
columns plus the line each row starts on; it knows nothing of tek's columns.
polars alone gives no line numbers and stops at the first ragged row, so:

- The bytes are decoded strictly; bytes that are not UTF-8 are reported per
  line with their byte offset and the column they fall in, and nothing else is
  checked (the rest would be noise).
- A text without any ``"`` is the fast path: one record per physical line, and
  field counts checked by one comma count when they are all right.
- A text with quotes is scanned once with the ``csv`` module (C) for record
  start lines and field counts.
- polars then reads every column as text. When the scan found malformed
  quoting, or polars disagrees with it, the rows come from the ``csv`` module
  instead, so that every other problem is still reported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import polars as pl

from core.errors import PlanError
from core.plan import COLUMNS

_COLUMN_ORDER = {name: i for i, name in enumerate(COLUMNS)}


#: Encoding problems reported one by one; the rest are counted in one more line.
ENCODING_SHOWN = 10

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def show(value: str, limit: int = 60) -> str:
    """A value as one short line for a message (controls escaped, long text cut).

    Newlines, tabs, escape characters and every other non-printable
    character are written as ``\\n``, ``\\x1b``...: a message is one line and
    never moves the cursor or colours the terminal of whoever reads it.
    """
    if not value.isprintable():
        value = "".join(
            ch if ch.isprintable() else _ESCAPES.get(ch) or ascii(ch)[1:-1] for ch in value
        )
    return value if len(value) <= limit else value[: limit - 3] + "..."


@dataclass(slots=True)
class Problems:
    """Every problem found in one file, formatted ``FILE:LINE: column: message (value)``."""

    file: str
    items: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, line: int, column: str, message: str, value: str | None = None) -> None:
        """Record one problem; ``value`` (when given) is shown in parentheses."""
        text = f"{self.file}:{line}: {show(column)}: {message}"
        if value is not None:
            text += f" ({show(value)})"
        self.items.append((line, _COLUMN_ORDER.get(column, -1), text))

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        """The problems in file order (line, then column order)."""
        return [text for _, _, text in sorted(self.items, key=lambda item: item[:2])]


@dataclass(slots=True)
class Sheet:
    """A plan file's rows as text, before conversion.

    Attributes:
        columns: known column name -> stripped text Series (one per kept row).
        meta: ``x_`` columns in file order, name and Series.
        lines: the line each kept row starts on.
    """

    columns: dict[str, pl.Series]
    meta: list[tuple[str, pl.Series]]
    lines: list[int]


def decode(data: bytes, problems: Problems) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _report_encoding(data, problems)
        raise PlanError(problems.lines()) from None
    bare_cr = text.count("\r") - text.count("\r\n")
    if bare_cr and bare_cr >= text.count("\n"):  # mostly CR line ends: rows would run together
        problems.add(1, "header", "lines end with a bare CR (classic Mac line endings): "
                     "save the file with LF or CRLF line endings")
        raise PlanError(problems.lines())
    return text


def _report_encoding(data: bytes, problems: Problems) -> None:
    """One problem per line holding bytes that are not UTF-8, with the byte offset.

    At most :data:`ENCODING_SHOWN` lines are named, then one line counts the
    rest. A file with NUL bytes in its first 8 KiB is not a text file at all
    (an archive, an image, a spreadsheet): that is said once instead.
    """
    nul = data.find(b"\x00", 0, 8192)
    if nul >= 0:
        number = data.count(b"\n", 0, nul) + 1
        problems.add(number, "header" if number == 1 else "row",
                     f"not a text file: NUL byte at byte offset {nul} (a plan is UTF-8 CSV text)")
        return
    first = data.split(b"\n", 1)[0]
    try:  # column names only from a clean header: others would be noise
        names = [n.strip() for n in first.decode("utf-8").lstrip("\ufeff").split(",")]
    except UnicodeDecodeError:
        names = []
    offset = 0
    shown = more = first_hidden = 0
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if shown == ENCODING_SHOWN:
                first_hidden = first_hidden or number
                more += 1
                offset += len(raw) + 1
                continue
            shown += 1
            prefix = raw[: exc.start].decode("utf-8", "replace")
            field, quoted = 0, False
            for ch in prefix:
                if ch == '"':
                    quoted = not quoted
                elif ch == "," and not quoted:
                    field += 1
            column = "header" if number == 1 else names[field] if field < len(names) else "row"
            bad = raw[exc.start : exc.end]
            problems.add(number, column, f"bytes are not UTF-8 at byte offset {offset + exc.start}",
                         repr(bad))
        offset += len(raw) + 1
    if more:
        problems.add(first_hidden, "row",
                     f"and {more} more line(s) with bytes that are not UTF-8 (not shown)")


def read_header(text: str, quoted: bool, problems: Problems) -> list[str]:
    if not quoted:
        return text.split("\n", 1)[0].split(",")
    try:
        with _big_fields():
            return next(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        problems.add(1, "header", f"cannot read the header: {exc}")
        return []


@contextmanager
def _big_fields() -> Iterator[None]:
    """Lift the csv module's 128 KiB field limit for one scan (long scripts are fine)."""
    old = csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


_CSV_MESSAGES = {
    "unexpected end of data": "unterminated quoted field (it starts on this line)",
    "',' expected after '\"'": "a closing quote must be followed by a comma or the line end",
}


def _scan(
    text: str, ncols: int, problems: Problems | None, keep: bool
) -> tuple[list[int], list[int], int, list[list[str]]]:
    """Walk the records after the header with the csv module.

    Returns:
        (field count per record, start line per record, malformed records,
        the records padded/cut to ``ncols`` when ``keep``).
    """
    lens: list[int] = []
    starts: list[int] = []
    rows: list[list[str]] = []
    bad = 0
    with _big_fields():
        reader = csv.reader(io.StringIO(text), strict=True)
        end = 0
        first = True
        while True:
            start = end + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad += 1
                end = reader.line_num
                if problems is not None:
                    problems.add(start, "row", _CSV_MESSAGES.get(str(exc), f"cannot read: {exc}"))
                continue
            end = reader.line_num
            if first:
                first = False
                continue
            lens.append(len(row))
            starts.append(start)
            if keep:
                rows.append((row + [""] * ncols)[:ncols])
    return lens, starts, bad, rows


def read_frame(
    text: str, quoted: bool, ncols: int, problems: Problems
) -> tuple[pl.DataFrame, list[int]]:
    """All rows after the header as text columns ``c0..``, and each row's start line."""
    names = [f"c{k}" for k in range(ncols)]
    lens: list[int] | None
    if quoted:
        lens, lines, bad, _ = _scan(text, ncols, None, keep=False)
    else:
        physical = text.split("\n")
        if physical[-1] == "":
            physical.pop()
        commas = ncols - 1
        body = len(physical) - 1
        exact = text.count(",") == commas * (body + 1)
        # Equal totals and no blank lines mean every row has exactly ncols fields.
        lens = None if exact else [p.count(",") + 1 if p.strip() else 0 for p in physical[1:]]
        lines = list(range(2, body + 2))
        del physical
        bad = 0
    frame = None
    if not bad:
        try:
            frame = pl.read_csv(
                text.encode(), has_header=True, new_columns=names, infer_schema=False,
                empty_string_is_null=False, truncate_ragged_lines=True,
            )
        except Exception:  # polars rejects some quoting the csv module accepts
            frame = None
        if frame is not None and frame.shape != (len(lines), ncols):
            frame = None
    if frame is None:
        lens, lines, bad, rows = _scan(text, ncols, problems, keep=True)
        frame = pl.DataFrame(
            {name: [r[k] for r in rows] for k, name in enumerate(names)},
            schema={name: pl.String for name in names},
        )
    if lens is not None:
        for count, line in zip(lens, lines, strict=True):
            if count and count != ncols:
                fields = "field" if count == 1 else "fields"
                problems.add(line, "row", f"row has {count} {fields}, header has {ncols}")
    return frame, lines
