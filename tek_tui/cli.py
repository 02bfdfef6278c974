"""The ``tek`` command: argument parsing, exit codes, one-line errors.

Exit codes (DESIGN.md, "Command line"): 0 all succeeded, 1 some task failed,
2 bad input (plan, options, journal), 130 interrupted. Any :class:`TekError`
reaching here prints its lines as ``tek: ...`` on stderr, never a traceback
(with ``--json``, also ``{"errors": [...]}`` on stdout).
So do argparse's own errors (one line naming ``--help``, not usage plus error)
and an ``OSError`` of the environment (a ``$TEK_HOME`` that cannot be
created): exit 2. A reader of stdout that goes away (``tek runs | head``)
ends the command quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from core.errors import TekError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: Subcommand modules under ``tek_tui.commands``, in ``--help`` order.
COMMAND_MODULES = ("validate", "run", "tui", "runs", "ctl", "models")


def build_parser() -> argparse.ArgumentParser:
    """The full ``tek`` parser with every subcommand registered."""
    parser = _Parser(
        prog="tek",
        description="tek, the Task Execution Kit: run plans of dependent tasks and watch them live.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="print tek's version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"tek_tui.commands.{name}")
        module.register(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with tek's one-line errors (subcommand parsers inherit it)."""

    #: The command line's subcommand, for the hint of errors argparse
    #: raises at the top (unrecognised arguments of ``tek runs --bogus``).
    command: str = ""
    #: ``--json`` is on the command line: errors are also JSON on stdout
    #: (set on the class, so subcommand parsers see it too).
    json_wanted: bool = False

    def error(self, message: str) -> NoReturn:
        """Print ``tek: MESSAGE (see PROG --help)`` instead of usage plus error; exit 2."""
        prog = f"{self.prog} {self.command}" if self.command else self.prog
        line = f"{message} (see `{prog} --help`)"
        if _Parser.json_wanted:  # a script parsing stdout gets its JSON, as for other errors
            print_json_errors([line])
        self.exit(EXIT_BAD_INPUT, f"tek: {line}\n")


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (metadata costs ~30 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"tek {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("task-exec-kit")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tek`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    words = sys.argv[1:] if argv is None else list(argv)
    names = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if isinstance(parser, _Parser):
        parser.command = next((w for w in words if w in names), "")
    _Parser.json_wanted = "--json" in words
    args = parser.parse_args(words)
    args.argv = words  # `tek run -d` starts the same command line in the background
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code: int = args.func(args)
    except TekError as exc:
        lines = str(exc).splitlines() or [type(exc).__name__]
        for line in lines:
            print(f"tek: {line}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout gets JSON too
            print_json_errors(lines)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("tek: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `tek runs | head` closed the pipe: not an error worth a traceback.
        quiet_stream(sys.stdout)
        return EXIT_OK
    except OSError as exc:
        # The environment, not tek: TEK_HOME in a folder this user cannot
        # create or write, a disk gone read-only. One line, like bad input.
        print(f"tek: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


def print_json_errors(lines: list[str]) -> None:
    """``{"errors": [...]}`` on stdout (a reader that went away is ignored)."""
    import json

    with contextlib.suppress(OSError):
        print(json.dumps({"errors": lines}), flush=True)


def _os_error_line(exc: OSError) -> str:
    """``FILE: reason``, naming tek's data folder when that is what failed."""
    import os
    from pathlib import Path

    line = f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc.strerror or exc)
    env = os.environ.get("TEK_HOME")
    if exc.filename and env:
        home = Path(env).expanduser().absolute()
        failed = Path(os.fsdecode(exc.filename)).absolute()
        if failed == home or failed in home.parents or home in failed.parents:
            line += f" (tek's data folder is TEK_HOME={env}: make it writable or point it elsewhere)"
    return line


def quiet_stream(stream: TextIO) -> None:
    """Point ``stream`` (stdout or stderr) at /dev/null once its reader has gone.

    Whatever is still buffered would otherwise fail again when the
    interpreter flushes it at exit ("Exception ignored ... BrokenPipeError").
    """
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file (tests capture it): nothing to quiet
        pass


def output_lost(stream: TextIO, exc: OSError) -> None:
    """Stop writing to ``stream``: quietly when its reader left, else say why once, on stderr."""
    quiet_stream(stream)
    if not isinstance(exc, BrokenPipeError) and stream is not sys.stderr:
        try:
            print(f"tek: cannot write the output: {exc.strerror or exc} "
                  "(the journal and logs keep everything)", file=sys.stderr, flush=True)
        except (OSError, ValueError):
            pass


def _open_standard_fds() -> None:
    """Give a closed stdin, stdout or stderr (``tek run PLAN >&-``) /dev/null.

    Otherwise the next file tek opens would take that number (a task's
    output pipe as fd 1), and Python leaves ``sys.stdout`` as None.
    """
    import os

    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY),
                           (2, "stderr", os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, mode)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


def _tolerant_streams() -> None:
    """Print what the terminal's encoding cannot show as escapes, never fail on it.

    Under a Latin-1 or ASCII locale (or ``PYTHONIOENCODING``) a task's
    ``✓`` in the plain output raised ``UnicodeEncodeError`` inside the run
    and cancelled the rest of it.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


def entry() -> None:
    """Console-script entry point."""
    _open_standard_fds()
    _tolerant_streams()
    # The collector finds no garbage among the ~40,000 objects that importing
    # polars, anyio and tek makes, yet scans them again and again (20-30 ms).
    # Commands that run for long turn it back on when they start (``tek run``,
    # ``tek tui``, ``tek logs --follow``).
    gc.disable()
    code = main()
    _leave(code)


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown when nothing needs it.

    Freeing every module at exit costs a ``tek run`` 30-50 ms, as much as
    running a hundred short tasks. Exit handlers still run and the standard
    streams are flushed; every file tek writes is closed by now. With a
    non-daemon thread still alive, or under a profiler or tracer (which write
    their results after this returns), the normal exit is taken.
    """
    import atexit
    import os
    import threading

    others = (t for t in threading.enumerate() if t is not threading.main_thread())
    if sys.getprofile() or sys.gettrace() or any(not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
