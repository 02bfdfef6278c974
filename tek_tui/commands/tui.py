"""``tek tui [PLAN] [--start] [--theme NAME] [run options] [--resume [RUN_ID|last]] [--attach [RUN_ID|last]]``.

With a plan the console loads it (problems are listed in the console, with
file and line) and waits for ``s`` unless ``--start`` is given. ``--resume``
opens an earlier journaled run of it instead, resumed as ``tek run --resume``
does (PLAN may then be left out). ``--attach`` watches and steers a run that
a ``tek run`` process is running (``core.run_socket``); ``q`` detaches. Without one it
opens on recent runs and a picker of plan files. The theme defaults to the one
remembered in the user's config; an unknown ``--theme`` is bad input (exit 2).
The run options (``-j``, ``--pool``, ``--cpus``, ``--gpus``, ...) are ``tek run``'s,
with the same defaults from ``config.toml``; a resume keeps the run's own
unless given again.
The console process never imports torch: ML tasks run in worker processes.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from core.errors import TekError


def register(sub: Any) -> None:
    """Add the ``tui`` subcommand."""
    p = sub.add_parser(
        "tui",
        help="open the live console (optionally on a plan)",
        description="Open the console: a plan's tasks, DAG, pools, system and logs, live, "
        "driven from the keyboard (? lists the keys). Without PLAN: recent runs and a picker "
        "of plan files. Exits as tek run would for the run it ran.",
    )
    p.add_argument("plan", nargs="?", type=Path, metavar="PLAN",
                   help="plan CSV to load (default: pick one)")
    p.add_argument("--start", action="store_true", help="start the run at once")
    p.add_argument("--theme", metavar="NAME", help="console theme (remembered for next time)")
    from tek_tui.commands.run import add_option_args

    add_option_args(p)  # as tek run's: the console's runs take them (and config's run_* keys)
    p.add_argument(
        "--resume", nargs="?", const="last", metavar="RUN_ID|last",
        help="resume an earlier run of PLAN (default: its last); PLAN may be left out: "
        "the run's own plan file is opened",
    )  # fmt: skip
    p.add_argument(
        "--attach", nargs="?", const="last", metavar="RUN_ID|last",
        help="watch and steer a run that `tek run` is running (default: the newest); "
        "q detaches and the run goes on",
    )  # fmt: skip
    p.set_defaults(func=_run, store=None, no_journal=False)


def _run(args: argparse.Namespace) -> int:
    # Imported here so `tek --help` and other commands never load Textual.
    from tek_tui.app import TekApp
    from tek_tui.commands.run import given_options, options_from_args
    from tek_tui.config import remember_theme, remembered_theme
    from tek_tui.themes import load_themes

    options = options_from_args(args)  # flags, then config.toml's run_* keys; checked
    names = sorted(load_themes().themes)
    theme = args.theme
    if theme is not None:
        if theme not in names:
            raise TekError(f"unknown theme {theme!r} (known: {', '.join(names)})")
        _need_terminal()
        remember_theme(theme)
    else:
        _need_terminal()
        theme = remembered_theme()
    attach = None
    if args.attach:
        if args.plan is not None or args.resume or args.start:
            raise TekError("--attach watches a running run: leave PLAN, --resume and --start out "
                           "(s starts a run that waits for it)")
        from core.run_socket import find_served

        attach = find_served(args.attach)
    if args.resume:
        from tek_tui.commands.run_journal import plan_path_for

        args.plan = Path(plan_path_for(args))  # also turns `last` into the run's id
    app = TekApp(plan_path=args.plan, resume=args.resume, attach=attach, start=args.start,
                 theme=theme, options=options, given=given_options(args))
    gc.enable()  # the CLI starts with it off (imports only)
    code = app.run()
    return code if isinstance(code, int) else 0


def _need_terminal() -> None:
    """Refuse to start without a terminal (Textual reads stdin, draws on stderr).

    Without one the console would wait for keys that never come, writing
    escape codes into whatever file or pipe stderr is.

    Raises:
        TekError: stdin or stderr is not a terminal.
    """
    streams = {"stdin": sys.stdin, "stderr": sys.__stderr__}
    missing = [name for name, s in streams.items() if s is None or not s.isatty()]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise TekError(f"tek tui needs a terminal: {' and '.join(missing)} {verb} not one "
                       "(for a headless run use `tek run PLAN`)")
