"""Where tek keeps its data: one folder for journal, logs, models and config.

``$TEK_HOME`` when set, else the platform's user data dir (platformdirs). The
folder is created on first use, not at import.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "TEK_HOME"


def tek_home(create: bool = True) -> Path:
    """Return tek's data folder, creating it if needed (unless ``create`` is false).

    Raises:
        TekError: the path is a file.
        OSError: the folder cannot be created.
    """
    env = os.environ.get(ENV_HOME)
    if env:
        home = Path(env).expanduser()
    else:
        import platformdirs

        home = Path(platformdirs.user_data_dir("tek", appauthor=False))
    if home.exists() and not home.is_dir():
        from core.errors import TekError

        where = f"TEK_HOME={env}" if env else str(home)
        raise TekError(f"{where} is a file, not a folder: tek keeps its runs, logs and models "
                       "there (point TEK_HOME at a folder)")
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


def missing_home() -> str:
    """Why reading history finds nothing: ``$TEK_HOME`` names no folder ("" otherwise).

    A misspelt ``TEK_HOME`` must not read as "no runs yet": a script
    checking last night's run would see nothing ran.
    """
    env = os.environ.get(ENV_HOME)
    if env and not Path(env).expanduser().is_dir():
        return f"TEK_HOME={env}: no such folder, so no runs are recorded there (is it spelt right?)"
    return ""


def runs_dir() -> Path:
    """Folder holding one sub-folder of logs per run."""
    return tek_home() / "runs"


def run_dir(run_id: str) -> Path:
    """One run's folder: its task logs (and, for ML runs, their artifacts)."""
    return runs_dir() / run_id


def run_log_path(run_id: str, task_id: str, attempt: int) -> Path:
    """Log file of one attempt: ``<home>/runs/<run>/<task>.<attempt>.log``.

    A sub-plan's task (``build/compile``, as its parent run names it) has its
    log in the folder of the nested run (``<run>/build``, see
    :mod:`core.agents.plan`): ``<home>/runs/<run>/build/compile.<attempt>.log``.
    """
    prefix, _, own = task_id.rpartition("/")
    folder = run_dir(run_id) / prefix if prefix else run_dir(run_id)
    return folder / f"{own}.{attempt}.log"


def default_store_path(create: bool = True) -> Path:
    """The journal database: ``<home>/tek.db`` (``create``: make the folder if needed)."""
    return tek_home(create) / "tek.db"


def models_dir() -> Path:
    """Root of the model registry."""
    return tek_home() / "models"


def config_path() -> Path:
    """The user's config file (theme and other remembered choices)."""
    return tek_home() / "config.toml"
