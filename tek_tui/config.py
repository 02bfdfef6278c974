"""The user's remembered choices, in ``core.paths.config_path()`` (TOML).

Read with :mod:`tomllib`; written by hand, because the file is a flat table of
a few strings, numbers and booleans and the standard library has no TOML
writer. Keys tek does not know are kept on rewrite. A broken file is treated
as empty (and rewritten on the next save) rather than stopping the console.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

from core.paths import config_path


def load_config() -> dict[str, Any]:
    """The config as a dict; empty when the file is missing or unreadable."""
    path = config_path()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def save_config(values: dict[str, Any]) -> None:
    """Merge ``values`` into the config file and write it back.

    Args:
        values: top-level keys to set (str, int, float or bool values).
    """
    merged = {**load_config(), **values}
    lines = ["# tek's remembered choices; written by tek, safe to edit."]
    for key, value in merged.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        elif isinstance(value, str):
            # A JSON string literal is a valid TOML basic string.
            text = json.dumps(value, ensure_ascii=False)
        else:
            continue  # tables and arrays are not ours to rewrite
        lines.append(f"{key} = {text}")
    path = config_path()
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def remembered_theme() -> str | None:
    """The theme saved by the last session, if any."""
    value = load_config().get("theme")
    return value if isinstance(value, str) else None


def remember_theme(name: str) -> None:
    """Save ``name`` as the theme for the next session."""
    save_config({"theme": name})
