"""The user's settings and remembered choices, in ``core.paths.config_path()`` (TOML).

Read with :mod:`tomllib`. The standard library has no TOML writer, so a save
edits the file as text: it replaces the line of each key it sets (or adds
one before the first table) and leaves every other line as it was: comments,
keys tek does not know, arrays and tables. A file that is not valid TOML is
never rewritten: :func:`load_config` raises :class:`ConfigError` naming the
file, line and problem (``tek run`` stops with it, exit 2; the console opens
with its defaults and says why it cannot remember the theme).
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from core.errors import TekError
from core.files import write_atomic
from core.paths import config_path


class ConfigError(TekError):
    """The config file cannot be read or is not valid TOML."""


def load_config() -> dict[str, Any]:
    """The config as a dict; empty when there is no file.

    Raises:
        ConfigError: the file cannot be read, is not UTF-8, or is not TOML.
    """
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc} (fix it, or remove the file)") from None


#: A table header line (``[name]``, ``[[name]]``), not an array's row.
_TABLE = re.compile(r"\s*\[\[?\s*[A-Za-z0-9_.\"' -]+\s*\]\]?\s*(#.*)?$")


def _toml_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def save_config(values: dict[str, str | int | float | bool]) -> None:
    """Set top-level keys in the config file, keeping everything else in it.

    Args:
        values: top-level keys to set.

    Raises:
        ConfigError: the file exists but is not valid TOML (it is left alone).
    """
    old = load_config()  # never rewrite a file we could not read
    path = config_path()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = ["# tek's settings and remembered choices; safe to edit."]
    first_table = next((i for i, ln in enumerate(lines) if _TABLE.match(ln)), len(lines))
    for key, value in values.items():
        line = f"{key} = {_toml_value(value)}"
        own = re.compile(rf"\s*{re.escape(key)}\s*=")
        found = next((i for i in range(first_table) if own.match(lines[i])), None)
        if found is not None:
            lines[found] = line
        else:
            lines.insert(first_table, line)
            first_table += 1
    text = "\n".join(lines) + "\n"
    try:
        edited = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        edited = None
    if edited != {**old, **values}:
        # the line edit would change something else (a multi-line value, a
        # quoted or dotted key): the file stays as it is
        raise ConfigError(f"{path}: could not update {', '.join(values)} in place; "
                          "edit the file by hand")
    write_atomic(path, text)


def remembered_theme() -> str | None:
    """The theme saved by the last session, if any (None when the file is broken)."""
    try:
        value = load_config().get("theme")
    except ConfigError:
        return None
    return value if isinstance(value, str) else None


def remember_theme(name: str) -> str | None:
    """Save ``name`` as the theme for the next session; a problem to show, or None."""
    try:
        save_config({"theme": name})
    except ConfigError as exc:
        return f"theme not remembered: {exc}"
    except OSError as exc:
        return f"theme not remembered: {config_path()}: {exc.strerror or exc}"
    return None
