"""The start screen of ``tek tui`` without a plan: recent runs and a plan picker.

Recent runs come from the journal (``core.store``) when it exists, read in a
thread; without one the pane says "no journal yet". Plans are the ``*.csv``
files of the current folder and of ``sample_plans/``. Choosing a plan asks the
app to load it as a new run; choosing a run that another process is running
attaches to it (``tek tui --attach``), one that did not succeed resumes it
(as ``tek run --resume RUN`` would: what succeeded stays done), and a
succeeded one runs its plan again. Problems found while
reading it are listed here, one line each with file and line, not a traceback.
``tek tui PLAN`` shows this screen only when PLAN has problems, opened with
them listed (``problems=``).

Paths are the last column of both lists: each is shortened from the left to
the room that column has (``…/plans/fail.csv``), so the file name always
shows, also after a resize.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import Worker

from tek_tui.widgets.footer import TekFooter
from tek_tui.widgets.row_table import RowTable
from tek_tui.widgets.states import format_duration

#: Run statuses that ``enter`` in the run list resumes (a succeeded run is run again).
RESUMABLE = frozenset({"failed", "cancelled", "interrupted"})
#: Statuses of a run some process is running: ``enter`` attaches to it.
LIVE = frozenset({"pending", "running", "paused", "cancelling"})


def default_plan_dirs() -> list[Path]:
    """The current folder and its ``sample_plans/``."""
    return [Path.cwd(), Path.cwd() / "sample_plans"]


def find_plans(dirs: Iterable[Path]) -> list[Path]:
    """``*.csv`` files in ``dirs`` (not recursive), sorted, each once."""
    found: dict[Path, None] = {}
    for folder in dirs:
        if folder.is_dir():
            for path in sorted(folder.glob("*.csv")):
                found[path.resolve()] = None
    return list(found)


def recent_runs(limit: int = 20) -> list[Any] | None:
    """Newest runs of the journal, or None when there is no journal (yet)."""
    try:
        from core.errors import StoreError
        from core.paths import default_store_path
        from core.store import open_store
    except ImportError:
        return None
    if not default_store_path(create=False).exists():
        return None
    try:
        with open_store(create=False) as store:
            return list(store.list_runs(limit=limit))
    except StoreError:
        return None


def short_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` cells, keeping its end: ``…/plans/fail.csv``.

    Cut at a ``/`` where possible; a file name longer than ``width`` keeps its end.
    """
    if len(path) <= width:
        return path
    tail = path[len(path) - max(width - 1, 1):]
    cut = tail.find("/")
    if 0 <= cut < len(tail) - 1:
        tail = tail[cut:]
    return "…" + tail


class PickerScreen(Screen[None]):
    """Choose a plan to run, or reopen the plan of a recent run."""

    ENTER_HELP = ("enter", "Run the plan; attach to, resume or rerun the run", "",
                  "picker lists")
    """What ``enter`` does here, for the help screen."""

    BINDINGS = [
        Binding("tab", "app.focus_next", "Next list", id="picker-next", show=False),
        Binding("q", "app.quit", "Quit", id="picker-quit"),
    ]

    def __init__(self, dirs: Sequence[Path] | None = None,
                 problems: Sequence[str] = ()) -> None:
        """Build the picker.

        Args:
            dirs: folders to list plans from (default: :func:`default_plan_dirs`).
            problems: why the plan asked for cannot run, listed at the top.
        """
        super().__init__()
        self.dirs = list(dirs) if dirs is not None else default_plan_dirs()
        self.plans: list[Path] = []
        self._run_plans: dict[str, str] = {}
        self._run_status: dict[str, str] = {}
        self._problems = list(problems)
        self._paths: dict[str, dict[str, str]] = {"plan-list": {}, "run-list": {}}
        """Full path shown in each list's last column, by row key."""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static("[b]tek[/b] · choose a plan (enter) · recent runs below", id="picker-title")
            # Bounded and scrollable (tab reaches it): a plan with a dozen
            # problems must not push the lists off an 80x24 screen.
            problems = VerticalScroll(id="plan-problems")
            problems.display = False  # until there are problems (never an empty box)
            with problems:
                yield Static("", id="plan-problems-text")
            yield RowTable(id="plan-list")
            yield Static("recent runs · enter: attach (running), resume (failed, died) or rerun",
                         id="runs-title")
            yield RowTable(id="run-list")
        yield TekFooter()

    def on_mount(self) -> None:
        if self._problems:
            self.show_problems(self._problems)
        plans = self.query_one("#plan-list", DataTable)
        plans.add_columns("plan", "folder")
        self.plans = find_plans(self.dirs)
        for path in self.plans:
            plans.add_row(path.name, str(path.parent), key=str(path))
            self._paths["plan-list"][str(path)] = str(path.parent)
        if not self.plans:
            plans.add_row("no plan files here", "", key="")
        runs = self.query_one("#run-list", DataTable)
        runs.add_columns("run", "status", "tasks", "time", "plan")
        plans.focus()
        self._load_runs()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A journal that cannot be read becomes an error notification."""
        self.app.report_worker(event)  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, group="journal", description="read recent runs",
          exit_on_error=False)
    def _load_runs(self) -> None:
        self.app.call_from_thread(self._show_runs, recent_runs())

    def _show_runs(self, runs: list[Any] | None) -> None:
        table = self.query_one("#run-list", DataTable)
        if runs is None:
            table.add_row("no journal yet", "", "", "", "", key="")
            return
        if not runs:
            table.add_row("no runs yet", "", "", "", "", key="")
        for run in runs:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_ts))
            # Keyed by run id: a plan run twice has two rows (a plan-path key
            # made the second add_row fail and hid the rest of the list).
            self._run_plans[run.id] = run.plan_path or ""
            self._run_status[run.id] = run.effective_status
            table.add_row(
                f"{run.id} {when}", run.effective_status, str(run.task_count),
                format_duration(run.duration_s, tenths=True), run.plan_path or "", key=run.id,
            )
            self._paths["run-list"][run.id] = run.plan_path or ""
        self.call_after_refresh(self._fit_paths)

    def on_resize(self, event: Resize) -> None:
        """Paths get the room the new width leaves them."""
        self.call_after_refresh(self._fit_paths)

    def _fit_paths(self) -> None:
        """Shorten each list's last column (paths) to the room it has, keeping their ends."""
        for table_id, paths in self._paths.items():
            table = self.query_one(f"#{table_id}", DataTable)
            if not paths or not table.columns:
                continue
            *others, last = table.columns.values()
            used = sum(c.get_render_width(table) for c in others) + 2 * table.cell_padding
            room = max(12, table.size.width - 1 - used)  # 1: the scroll bar
            width = min(room, max(len(p) for p in paths.values()))
            last.auto_width = False
            last.width = width
            for key, path in paths.items():
                table.update_cell(key, last.key, Text(short_path(path, width)))

    def _attach_if_served(self, run_id: str) -> bool:
        """Attach to ``run_id`` when another process serves it; False when none does."""
        from core.errors import TekError
        from core.run_socket import find_served

        try:
            path = find_served(run_id)
        except TekError:
            return False
        self.app.attach_run(path)  # type: ignore[attr-defined]
        return True

    def show_problems(self, problems: Sequence[str]) -> None:
        """List what is wrong with the plan that was chosen."""
        text = Text.assemble(("cannot run this plan:", "bold"),
                             *(f"\n{problem}" for problem in problems))
        self.query_one("#plan-problems-text", Static).update(text)
        box = self.query_one("#plan-problems", VerticalScroll)
        box.display = True
        box.border_subtitle = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        box.scroll_home(animate=False)

    @on(DataTable.RowSelected)
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        resume = None
        if event.data_table.id == "run-list":
            status = self._run_status.get(key or "")
            if status in LIVE:
                if not self._attach_if_served(key or ""):  # never a second run beside it
                    self.show_problems([f"run {key} is running in another process that does not "
                                        "serve it (on another host, or too long a TEK_HOME path)"])
                return
            if status in RESUMABLE:
                resume = key
            key = self._run_plans.get(key or "")
        if not key:
            return
        path = Path(key)
        if not path.exists():
            self.show_problems([f"{path}: plan file no longer exists"])
            return
        self.query_one("#plan-problems").display = False
        self.app.open_plan(path, resume)  # type: ignore[attr-defined]
