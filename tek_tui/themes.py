"""Theme loader: one TOML file per theme in ``themes/``, built into Textual ``Theme``s.

A theme file holds Textual :class:`~textual.theme.Theme` fields at top level
(``name``, ``primary``, ``background``, ``dark``, ...) and a ``[variables]``
table of tek's own colours (``tek-running``, ``tek-failed``, ``tek-spark-low``,
...). Files come from the repository's ``themes/`` folder and then from
``$TEK_HOME/themes/`` (a user theme with the same name wins). A broken file is
reported and skipped; it never stops the console.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from textual.theme import Theme

from core.paths import tek_home

#: The theme used when none is chosen or the chosen one is unknown.
DEFAULT_THEME = "tek-dark"

#: Folder of the themes shipped with tek.
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "themes"

_THEME_FIELDS = {f.name for f in fields(Theme)}


@dataclass
class LoadedThemes:
    """What :func:`load_themes` found."""

    themes: dict[str, Theme] = field(default_factory=dict)
    """Themes by name, in load order."""
    problems: list[str] = field(default_factory=list)
    """One line per file that could not be used (``FILE: message``)."""


def theme_dirs() -> list[Path]:
    """Folders searched for theme files, lowest precedence first."""
    return [BUILTIN_DIR, tek_home() / "themes"]


def load_theme_file(path: Path) -> Theme:
    """Build one theme from a TOML file.

    Args:
        path: the ``.toml`` file.

    Returns:
        The theme; its name defaults to the file's stem.

    Raises:
        ValueError: unreadable TOML, unknown fields or a missing ``primary``.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(str(exc)) from None
    data.setdefault("name", path.stem)
    unknown = sorted(set(data) - _THEME_FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    if "primary" not in data:
        raise ValueError("missing field primary")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError("[variables] must be a table")
    data["variables"] = {str(k): str(v) for k, v in variables.items()}
    try:
        return Theme(**data)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None


def load_themes(dirs: list[Path] | None = None) -> LoadedThemes:
    """Load every ``*.toml`` theme from ``dirs`` (default :func:`theme_dirs`).

    Args:
        dirs: folders to read, lowest precedence first; missing ones are skipped.

    Returns:
        The themes found and a line for each file that failed.
    """
    found = LoadedThemes()
    for folder in dirs if dirs is not None else theme_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                found.problems.append(f"{path}: {exc}")
                continue
            found.themes[theme.name] = theme
    return found


def tek_variable_defaults(themes: dict[str, Theme]) -> dict[str, str]:
    """Fallback ``tek-*`` variables: the default theme's, so any theme may omit some.

    Args:
        themes: loaded themes.

    Returns:
        Variable name to colour; empty when the default theme is missing.
    """
    default = themes.get(DEFAULT_THEME)
    return dict(default.variables) if default is not None else {}
