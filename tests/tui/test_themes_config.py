"""Themes load from TOML files; the chosen theme is remembered in the user's config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.events import TaskState
from core.paths import config_path
from tek_tui.config import (
    ConfigError,
    load_config,
    remember_theme,
    remembered_theme,
    save_config,
)
from tek_tui.themes import BUILTIN_DIR, DEFAULT_THEME, load_theme_file, load_themes

STATE_VARIABLES = {f"tek-{state.value}" for state in TaskState}


def test_builtin_themes_are_complete() -> None:
    loaded = load_themes([BUILTIN_DIR])
    assert loaded.problems == []
    assert {"tek-dark", "tek-light", "tek-contrast"} <= set(loaded.themes)
    assert DEFAULT_THEME == "tek-dark" and loaded.themes["tek-dark"].dark
    assert not loaded.themes["tek-light"].dark
    for theme in loaded.themes.values():
        assert STATE_VARIABLES <= set(theme.variables), theme.name
        assert {"tek-spark-low", "tek-spark-high", "tek-loss"} <= set(theme.variables)


def test_no_colour_literals_outside_themes() -> None:
    root = Path(__file__).resolve().parents[2] / "tek_tui"
    hex_colour = re.compile(r"#[0-9A-Fa-f]{6}\b")
    for path in [*root.rglob("*.py"), *root.rglob("*.tcss")]:
        assert not hex_colour.search(path.read_text()), path


def test_broken_theme_file_is_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('name = "bad"\nprimary = \n')
    (tmp_path / "odd.toml").write_text('primary = "#112233"\nsparkle = 1\n')
    (tmp_path / "mine.toml").write_text('primary = "#112233"\n[variables]\ntek-failed = "#FF0000"\n')
    loaded = load_themes([tmp_path])
    assert list(loaded.themes) == ["mine"]
    assert len(loaded.problems) == 2
    assert any("bad.toml" in p for p in loaded.problems)
    assert any("sparkle" in p for p in loaded.problems)
    with pytest.raises(ValueError, match="missing field primary"):
        (tmp_path / "x.toml").write_text('name = "x"\n')
        load_theme_file(tmp_path / "x.toml")


def test_user_theme_dir_overrides(tek_home: Path) -> None:
    (tek_home / "themes").mkdir()
    (tek_home / "themes" / "dark.toml").write_text('name = "tek-dark"\nprimary = "#010203"\n')
    assert load_themes().themes["tek-dark"].primary == "#010203"


def test_theme_is_remembered_and_other_keys_kept() -> None:
    assert remembered_theme() is None
    save_config({"keymap_note": 'say "hi"', "jobs": 4, "mouse": False})
    remember_theme("tek-light")
    assert remembered_theme() == "tek-light"
    assert load_config() == {"keymap_note": 'say "hi"', "jobs": 4, "mouse": False,
                             "theme": "tek-light"}


def test_saving_keeps_comments_arrays_tables_and_unknown_keys() -> None:
    text = ('# mine\nrun_jobs = 4  # nightly box\ntheme = "tek-dark"\ntags = ["a", "b"]\n'
            '\n[extra]\nfoo = 1\ntheme = "not the top-level one"\n')
    config_path().write_text(text)
    assert remember_theme("tek-light") is None
    assert config_path().read_text() == text.replace('theme = "tek-dark"', 'theme = "tek-light"')
    save_config({"mouse": False})  # a new key goes before the first table
    assert load_config() == {"run_jobs": 4, "theme": "tek-light", "tags": ["a", "b"],
                             "mouse": False, "extra": {"foo": 1, "theme": "not the top-level one"}}


def test_a_broken_config_is_never_rewritten() -> None:
    config_path().write_text("run_jobs = 4\ntheme = = \n")
    with pytest.raises(ConfigError, match=r"config.toml: not valid TOML: .*line 2"):
        load_config()
    assert remembered_theme() is None  # the console opens with its default
    problem = remember_theme("tek-contrast")
    assert problem is not None and problem.startswith("theme not remembered: ")
    assert config_path().read_text() == "run_jobs = 4\ntheme = = \n"


def test_a_nested_array_is_not_taken_for_a_table() -> None:
    config_path().write_text("run_jobs = 4\nmatrix = [\n  [1, 2],\n  [3, 4],\n]\n")
    assert remember_theme("tek-dark") is None
    assert load_config() == {"run_jobs": 4, "matrix": [[1, 2], [3, 4]], "theme": "tek-dark"}


@pytest.mark.parametrize("text", [
    '"theme" = "tek-light"\n',  # a quoted key
    'theme.name = "tek-light"\n',  # a dotted key
    'notes = """\ntheme = "tek-light"\n"""\n',  # a line inside a multi-line string
])
def test_an_edit_that_would_change_anything_else_is_refused(text: str) -> None:
    config_path().write_text(text)
    problem = remember_theme("tek-dark")
    assert problem is not None and "could not update theme in place" in problem
    assert config_path().read_text() == text
