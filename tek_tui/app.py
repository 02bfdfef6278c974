"""The console app: screens, app-wide keys, theme loading and client wiring.

:class:`TekApp` opens on one of three things: an existing ``RunClient`` (tests,
a socket client), a plan file (read in a thread, then run in-process with
``core.engine.create_run``; the run lives in a worker for the app's lifetime),
or nothing (the picker of recent runs and plan files). While a plan loads the
console shows only :class:`LoadingScreen`, which the run's main screen replaces;
the picker appears only when the plan cannot be run (listing why), so no key
pressed during the load can open another plan. Screen-specific keys and
handlers live in the screens; here are only ``t`` (theme), ``?`` (help), and
quitting, which the main screen turns into "stop the run, then exit". Keys
are handled one at a time, in the order typed, however fast they come
(:class:`~tek_tui.screens.key_order.KeysInOrder`).

A notification that repeats one still showing (same title, text and severity)
replaces it, timer restarted, instead of stacking a copy over the log pane;
so does a new one of a kind that only the latest matters of
(:data:`LATEST_ONLY`: ``sorted by …``, ``theme: …``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
from textual import work
from textual.app import SystemCommand
from textual.binding import Binding
from textual.notifications import Notification, Notify
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from core.client import RunClient
from core.errors import PlanError, TekError
from core.plan import Plan
from core.run_options import RunOptions
from tek_tui.config import remember_theme
from tek_tui.console_runs import ConsoleRun, new_run, resumed_run
from tek_tui.screens.help import HelpScreen, collect_key_rows
from tek_tui.screens.key_order import KeysInOrder
from tek_tui.screens.loading import LoadingScreen
from tek_tui.screens.main import MainScreen
from tek_tui.screens.palette import palette_commands
from tek_tui.screens.picker import PickerScreen
from tek_tui.themes import DEFAULT_THEME, load_themes, tek_variable_defaults

Runner = Callable[[], Awaitable[Any]]


#: Signals that stop the console's run cleanly and exit 130 (as ``tek run`` does).
STOP_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
#: Starts of notifications that say what something is now: a new one replaces the
#: one showing (``o`` pressed four times leaves "sorted by id", not four toasts).
LATEST_ONLY = ("sorted by ", "theme: ")


class TekApp(KeysInOrder[int]):
    """tek's operations console."""

    CSS_PATH = "tek.tcss"
    TITLE = "tek"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("t", "cycle_theme", "Theme", id="theme-cycle", tooltip="Switch to the next theme"),
        Binding("question_mark", "help", "Help", id="help", tooltip="List every key"),
        Binding("ctrl+q", "quit", "Quit", id="quit-now", show=False, priority=True),
    ]

    def __init__(
        self,
        *,
        plan_path: Path | None = None,
        resume: str | None = None,
        attach: Path | None = None,
        client: RunClient | None = None,
        runner: Runner | None = None,
        start: bool = False,
        theme: str | None = None,
        options: RunOptions | None = None,
        given: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        sampler: Any = None,
        search_dirs: Iterable[Path] | None = None,
        telemetry_s: float = 1.0,
        pane_clock: Callable[[], float] | None = None,
    ) -> None:
        """Build the app.

        Args:
            plan_path: plan to load and run (ignored when ``client`` is given).
            resume: with ``plan_path``, the journaled run of it to resume
                (a run id or ``last``) instead of a new run.
            attach: the socket of a run another process runs, to watch and
                steer (``core.run_socket``); ``q`` detaches.
            client: an existing run to show.
            runner: awaitable factory that drives ``client``'s run, if this app owns it.
            start: send ``Start`` as soon as the run is shown.
            theme: theme name (default: remembered, else ``tek-dark``).
            options: engine options of runs this app creates (``tek tui``'s
                flags, then config); a resume keeps the run's recorded ones
                but for those named in ``given``.
            given: option fields given on the command line.
            clock: time source (frozen in snapshot tests).
            sampler: telemetry sampler handed to the system pane (tests).
            search_dirs: folders the picker lists plans from.
            telemetry_s: seconds between system pane polls.
            pane_clock: monotonic clock of the pools pane's rates (frozen in snapshots).
        """
        loaded = load_themes()
        self._tek_themes = loaded.themes
        self._theme_problems = loaded.problems
        super().__init__()
        for tek_theme in self._tek_themes.values():
            self.register_theme(tek_theme)
        wanted = theme or DEFAULT_THEME
        self.theme = wanted if wanted in self._tek_themes else DEFAULT_THEME
        self.plan_path = plan_path
        self.resume = resume
        self.attach = attach
        self.client = client
        self.runner = runner
        self.start_run = start
        self.options = options if options is not None else RunOptions()
        self.given = frozenset(given)
        self.clock = clock
        self.sampler = sampler
        self.search_dirs = list(search_dirs) if search_dirs is not None else None
        self.telemetry_s = telemetry_s
        self.pane_clock = pane_clock
        self._run_journal: Any = None
        self._run_driver: Worker[Any] | None = None

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """tek's ``tek-*`` colours, so every stylesheet can use them in any theme."""
        return tek_variable_defaults(getattr(self, "_tek_themes", {}))

    @property
    def theme_names(self) -> list[str]:
        """tek's themes (from ``themes/*.toml``), in cycling order."""
        return sorted(self._tek_themes)

    def on_mount(self) -> None:
        self._watch_stop_signals()
        for problem in self._theme_problems:
            self.notify(problem, title="theme skipped", severity="warning")
        if self.client is not None:
            self.show_run(self.client, self.runner)
        elif self.attach is not None:
            self.attach_run(self.attach)
        elif self.plan_path is not None:
            self.open_plan(self.plan_path, self.resume)
        else:
            self.push_screen(PickerScreen(self.search_dirs))

    # ------------------------------------------------------------------ runs

    def attach_run(self, path: Path) -> None:
        """Show the run served at ``path`` (another process runs it) behind a loading screen."""
        if not isinstance(self.screen, LoadingScreen):
            self.push_screen(LoadingScreen(path, verb="attaching to"))
        self._connect_run(path)

    @work(exclusive=True, group="plan", description="attach to a run", exit_on_error=False)
    async def _connect_run(self, path: Path) -> None:
        """Connect to the run served at ``path`` and show it; it is not this console's to stop."""
        from core.run_socket import SocketClient

        try:
            client = await SocketClient.connect(path)
        except TekError as exc:
            if self.attach is not None:  # `tek tui --attach`: nothing else to show
                self.exit(2, message=f"tek: {exc}")
            else:
                self._show_problems([str(exc)])
            return
        plan = client.snapshot().plan_path
        self.show_run(client, None, title=f"{Path(plan).stem if plan else path.stem} (attached)",
                      attached=True)

    def show_run(self, client: RunClient, runner: Runner | None, title: str = "",
                 plan: Plan | None = None, attached: bool = False,
                 times: Mapping[str, tuple[float, float | None]] | None = None) -> None:
        """Open the main screen on ``client``; drive ``runner`` for the app's lifetime.

        The main screen takes the place of the :class:`LoadingScreen`, if one is up.
        ``plan`` (the plan ``client`` runs, when this app loaded it) can be edited there.
        An ``attached`` run belongs to another process: quitting detaches from it.
        ``times`` are start and end times the run's snapshot lacks (``ConsoleRun.times``).
        """
        if runner is not None:
            self._run_driver = self._drive_run(runner, client)
        self._close_loading()
        self.push_screen(
            MainScreen(client, clock=self.clock, sampler=self.sampler, start=self.start_run,
                       title=title, telemetry_s=self.telemetry_s, pane_clock=self.pane_clock,
                       plan=plan, attached=attached, times=times)
        )

    async def replace_run(
        self, plan: Plan
    ) -> tuple[RunClient, Mapping[str, tuple[float, float | None]]]:
        """Drive a journaled run of ``plan`` (edited) in place of the loaded one.

        The main screen has cancelled the loaded run (never started); its
        driver and journal are finished here before the new run is built.
        A loaded resume stays a resume of the same run, of the edited plan
        (rows that changed rerun, as with ``tek run --resume``); anything
        else is a new run.

        Returns:
            The new run's client, and the times of tasks a resume keeps as done.

        Raises:
            TekError: the new run cannot be built.
        """
        if self._run_driver is not None:
            # Its outcome was the cancelled run's; only its end matters here.
            with anyio.move_on_after(10), contextlib.suppress(Exception):
                await self._run_driver.wait()
        resumed = None
        if self._run_journal is not None:
            if self._run_journal.decision is not None:
                resumed = self._run_journal.run_id
            self._run_journal.close()
            self._run_journal = None
        if resumed is not None:
            built = self._take(await resumed_run(plan, self.options, resumed, self.given))
        else:
            built = self._take(await new_run(plan, self.options))
        client = built.run.client()
        self._run_driver = self._drive_run(built.run.run, client)
        return client, built.times

    def open_plan(self, path: Path, resume: str | None = None) -> None:
        """Load and run ``path`` behind a loading screen; problems go to the picker.

        With ``resume`` (a run id, or ``last``: the newest run of ``path``)
        the run is that journaled run, resumed as ``tek run --resume`` does:
        what succeeded stays done, the rest waits for ``s``.
        """
        # The loading screen goes up before the load starts and takes every
        # key meant for the picker: an `enter` pressed while a plan loads
        # must not choose (and load) the picker's highlighted plan instead.
        if not isinstance(self.screen, LoadingScreen):
            self.push_screen(LoadingScreen(path))
        self._load_plan(path, resume)

    @work(exclusive=True, group="plan", description="load plan", exit_on_error=False)
    async def _load_plan(self, path: Path, resume: str | None = None) -> None:
        """Read and validate ``path`` off the UI thread, then run (or resume) it."""
        from core.plan_io import read_plan

        try:
            # Abandoned on cancel (quitting while a large plan loads): the
            # read only parses a file, and nothing waits for its result.
            plan = await anyio.to_thread.run_sync(read_plan, path, abandon_on_cancel=True)
            if resume is not None:
                built = self._take(await resumed_run(plan, self.options, resume, self.given))
            else:
                built = self._take(await new_run(plan, self.options))
        except TekError as exc:
            problems = exc.problems if isinstance(exc, PlanError) else str(exc).splitlines()
            self._show_problems(problems)
            return
        run = built.run
        self.show_run(run.client(), run.run, title=path.stem, plan=plan, times=built.times)

    def _take(self, built: ConsoleRun) -> ConsoleRun:
        """Keep ``built``'s journal (closed on exit) and tell its notice."""
        self._run_journal = built.journal
        if built.notice:
            self.notify(built.notice, timeout=8,
                        severity="warning" if built.journal is None else "information")
        return built

    def on_unmount(self) -> None:
        # RunJournal.close finishes the journal's own work (queued batches,
        # checkpoint) before closing the database, as `tek run` does.
        if self._run_journal is not None:
            self._run_journal.close()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    # --------------------------------------------------------------- signals

    def _watch_stop_signals(self) -> None:
        """Stop the run cleanly on SIGHUP (the SSH session dropped) or SIGTERM.

        By default either signal ended the console at once and left the
        run's task processes running, as orphans, in their own sessions.
        """
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop_for_signal, sig)

    def stop_for_signal(self, sig: int = signal.SIGTERM) -> None:
        """Stop the run shown (cancel it, wait for its tasks to end), then exit 130.

        After SIGHUP the terminal is gone: nothing is drawn any more. (Textual
        would keep queueing screen updates for a writer that can no longer
        write; once its bounded queue is full the event loop blocks, and the
        run could never be stopped.)
        """
        if sig == signal.SIGHUP and self._driver is not None:
            self._driver.write = lambda data: None  # type: ignore[method-assign]
        screens = [s for s in self.screen_stack if isinstance(s, MainScreen)]
        if screens:
            screens[-1].stop_and_exit(130)
        else:
            self.exit(130)

    def _close_loading(self) -> None:
        """Pop the loading screen, and whatever was opened over it (help, palette)."""
        if any(isinstance(screen, LoadingScreen) for screen in self.screen_stack):
            while not isinstance(self.screen, LoadingScreen):
                self.pop_screen()
            self.pop_screen()

    def _show_problems(self, problems: list[str]) -> None:
        """Show the picker, listing why the plan cannot run."""
        self._close_loading()
        screen = self.screen
        if isinstance(screen, PickerScreen):
            # The plan was chosen there: back to it, its cursor where it was.
            screen.show_problems(problems)
        else:
            self.push_screen(PickerScreen(self.search_dirs, problems=problems))

    @work(exclusive=True, group="run", description="drive the run", exit_on_error=False)
    async def _drive_run(self, runner: Runner, client: RunClient) -> None:
        """Drive this console's run, served for other consoles to attach (``tek tui --attach``)."""
        from core.run_socket import serving

        run_id = client.snapshot().run_id
        async with serving(client, run_id):
            await runner()

    def _on_notify(self, event: Notify) -> None:
        """Show a notification, replacing a copy of it still showing.

        ``c`` pressed five times on a finished task stacked five identical
        "refused" toasts over the log pane. The earlier copy is dropped and
        the new one (with a fresh timeout) shown in its place; a notification
        that differs in title, text or severity still stacks.
        """
        new = event.notification
        for old in list(self._notifications):
            if _same_kind(old, new):
                self._unnotify(old, refresh=False)
        super()._on_notify(event)
        # Handlers run once per class along the MRO: App's own `_on_notify`
        # would add the notification again after this one.
        event.prevent_default()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Report the app's failed workers."""
        self.report_worker(event)

    def report_worker(self, event: Worker.StateChanged) -> None:
        """The one place worker failures are reported (they never crash the console).

        ``Worker.StateChanged`` does not bubble, so screens forward theirs here.
        """
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.description or event.worker.name}: {error}",
                        title="error", severity="error", timeout=30)

    # ---------------------------------------------------------------- actions

    def action_cycle_theme(self) -> None:
        """Switch to the next tek theme and remember it."""
        names = self.theme_names
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        if problem := remember_theme(self.theme):
            self.notify(problem, severity="warning", timeout=10)
        self.notify(f"theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        """List every key of the current screen."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(collect_key_rows(self.screen)))

    async def action_quit(self) -> None:
        """Quit; on the run screen this asks first and stops the run cleanly."""
        screen = self.screen
        if isinstance(screen, MainScreen):
            screen.action_quit_console()
        else:
            self.exit(0)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette offers each tek action that works now, once (and none
        of Textual's own: :mod:`~tek_tui.screens.palette`)."""
        return palette_commands(self, screen)


def _same_kind(old: Notification, new: Notification) -> bool:
    """Whether ``new`` replaces ``old``: a copy of it, or news of the same thing
    (:data:`LATEST_ONLY`)."""
    if (old.title, old.severity) != (new.title, new.severity):
        return False
    kind = next((start for start in LATEST_ONLY if new.message.startswith(start)), None)
    return old.message == new.message or (kind is not None and old.message.startswith(kind))
