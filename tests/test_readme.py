"""The README's promises that a script can check: CI runs its test command."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    commands = _readme_commands()
    test_command = next(c for c in commands if "pytest" in c)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_console_command_opens_a_sample_plan_that_exists() -> None:
    console = next(c for c in _readme_commands() if "tek tui" in c)
    plan = console.rsplit("tek tui", 1)[1].split()[0]
    assert (REPO / plan).is_file()
