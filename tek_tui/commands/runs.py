"""``tek runs``: placeholder until its issue lands (see README)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``runs`` subcommand."""
    p = sub.add_parser("runs", help="(not built yet)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("tek runs: not built yet")
    return 2
