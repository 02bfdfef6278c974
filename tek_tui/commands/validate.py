"""``tek validate``: placeholder until its issue lands (see README)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``validate`` subcommand."""
    p = sub.add_parser("validate", help="(not built yet)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("tek validate: not built yet")
    return 2
