"""The system pane: per-core CPU, memory, load, running tasks, and GPUs with history.

Polls a :class:`core.telemetry.TelemetrySource` (the real one, or a fake in
tests and snapshots) in a ``thread=True`` worker, because psutil and NVML
block. Each poll re-arms a one-shot ``set_timer`` only once its result is
painted, so a slow poll (a hung driver) delays the next one instead of
piling up threads: polls never overlap.

Shown: CPU total with a sparkline, one bar per core (one block character per
core when narrow), memory with a sparkline, load averages, CPU % and RSS of
each running task's whole process tree (pids from
:meth:`SystemPane.set_task_pids`), and per GPU utilisation, memory,
temperature and power, each with a sparkline over the last ``history``
samples (bounded deques). Without NVML the pane says ``no NVIDIA GPU``
and why. A sampler error shows as one line; polling goes on.

Colours: ``$tek-running`` (bars), ``$warning`` (a bar above 85 %),
``$tek-spark-low``/``$tek-spark-high`` (sparklines), ``$text-muted``
(labels), ``$error``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

from core.telemetry import GpuSample, ProcSample, SystemSample, Telemetry, TelemetrySource
from tek_tui.widgets.sparkline import LEVELS, bar, spark_levels, sparkline

GIB = 1024**3
HOT = 85.0
"""Bars above this percentage use the warning colour."""
MAX_TASK_ROWS = 20


@dataclass(slots=True)
class Reading:
    """One poll's results, handed from the worker thread to the UI."""

    system: SystemSample | None = None
    processes: dict[str, ProcSample] = field(default_factory=dict)
    gpus: list[GpuSample] = field(default_factory=list)
    gpu_available: bool = False
    gpu_reason: str = ""
    error: str = ""


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f}"


def _size(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / 1024**2:.0f} MiB"


class SystemPane(Widget, can_focus=True):
    """CPU, memory, load, task trees and GPUs, polled in a thread."""

    COMPONENT_CLASSES = {
        "system-pane--label",
        "system-pane--bar",
        "system-pane--hot",
        "system-pane--spark-low",
        "system-pane--spark-high",
        "system-pane--error",
    }

    DEFAULT_CSS = """
    SystemPane { height: 1fr; overflow-y: auto; }
    SystemPane > .system-pane--label { color: $text-muted; }
    SystemPane > .system-pane--bar { color: $tek-running; }
    SystemPane > .system-pane--hot { color: $warning; }
    SystemPane > .system-pane--spark-low { color: $tek-spark-low; }
    SystemPane > .system-pane--spark-high { color: $tek-spark-high; }
    SystemPane > .system-pane--error { color: $error; }
    """

    def __init__(
        self,
        sampler: TelemetrySource | None = None,
        interval: float = 1.0,
        *,
        history: int = 60,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Build the pane.

        Args:
            sampler: where readings come from; the real :class:`Telemetry` when None.
            interval: seconds between the end of one poll and the start of the next.
            history: samples kept for each sparkline.
            name: widget name.
            id: widget id.
            classes: CSS classes.
        """
        super().__init__(name=name, id=id, classes=classes)
        self._sampler = sampler
        self.interval = interval
        self.samples = 0
        """Polls painted so far."""
        self.last = Reading()
        self._pids: dict[str, int] = {}
        self._history = history
        self.cpu_history: deque[float] = deque(maxlen=history)
        self.mem_history: deque[float] = deque(maxlen=history)
        self.gpu_history: dict[tuple[int, str], deque[float | None]] = {}
        """(GPU index, ``util``/``mem``/``temp``/``power``) → recent values."""

    def compose(self) -> ComposeResult:
        yield Static(id="system-body")

    def on_mount(self) -> None:
        self.query_one("#system-body", Static).update(Text("sampling…", style=self._style("label")))
        self._poll(dict(self._pids))

    def on_resize(self) -> None:
        # The layout (bars or blocks, gauges per line) depends on the width: redraw now,
        # not at the next poll.
        if self.samples:
            self.query_one("#system-body", Static).update(self.render_text())

    def set_task_pids(self, pids: Mapping[str, int]) -> None:
        """Tasks to measure from the next poll on: task id → root pid of its attempt."""
        self._pids = dict(pids)

    # ---------------------------------------------------------------- polling

    @work(thread=True, group="system-pane", description="sample telemetry", exit_on_error=False)
    def _poll(self, pids: dict[str, int]) -> None:
        try:
            if self._sampler is None:
                self._sampler = Telemetry()  # built here: NVML's init blocks
            sampler = self._sampler
            gpu = sampler.gpu
            reading = Reading(
                system=sampler.sample_system(),
                processes=sampler.sample_processes(pids),
                gpus=gpu.sample() if gpu.available else [],
            )
            # Read after sample(): an NVML failure during it flips these.
            reading.gpu_available, reading.gpu_reason = gpu.available, gpu.reason
        except Exception as exc:  # a broken sampler is shown, never fatal
            reading = Reading(error=f"telemetry failed: {exc}")
        try:
            self.app.call_from_thread(self._apply, reading)
        except RuntimeError:
            pass  # the app is closing

    def _apply(self, reading: Reading) -> None:
        if not self.is_attached:
            return
        self.samples += 1
        self.last = reading
        if reading.system is not None:
            self.cpu_history.append(reading.system.cpu_total)
            self.mem_history.append(reading.system.memory_percent)
        for gpu in reading.gpus:
            for key, value in (
                ("util", gpu.util_percent),
                ("mem", gpu.memory_percent),
                ("temp", gpu.temperature_c),
                ("power", gpu.power_w),
            ):
                self.gpu_history.setdefault((gpu.index, key), deque(maxlen=self._history)).append(value)
        self.query_one("#system-body", Static).update(self.render_text())
        # Re-arm only now, after painting: the next poll cannot overlap this one.
        self.set_timer(max(self.interval, 0.001), lambda: self._poll(dict(self._pids)))

    # --------------------------------------------------------------- painting

    def _style(self, part: str) -> Style:
        return self.get_component_rich_style(f"system-pane--{part}")

    def _spark(self, values: deque[float] | deque[float | None], width: int, hi: float = 100.0) -> Text:
        return sparkline(list(values), width, self._style("spark-low"), self._style("spark-high"), hi=hi)

    def render_text(self) -> Text:
        """The pane's content for the latest reading."""
        width = max(self.size.width, 20)
        compact = width < 60
        spark_w = 10 if compact else 30
        reading = self.last
        out = Text(no_wrap=True, overflow="ellipsis")
        if reading.error:
            out.append(reading.error + "\n", self._style("error"))
        system = reading.system
        if system is not None:
            self._cpu_lines(out, system, width, compact, spark_w)
            out.append("mem  ", self._style("label"))
            out.append(f"{system.memory_percent:3.0f}% ")
            used = system.memory_total - system.memory_available
            out.append(f"{_gib(used)}/{_gib(system.memory_total)} GiB ")
            out.append_text(self._spark(self.mem_history, spark_w))
            out.append("\nload ", self._style("label"))
            out.append(" ".join(f"{v:.2f}" for v in system.load_avg) + "\n")
        self._task_lines(out, reading.processes, compact)
        self._gpu_lines(out, reading, width >= 110, spark_w)
        out.rstrip()
        return out

    def _cpu_lines(self, out: Text, system: SystemSample, width: int, compact: bool, spark_w: int) -> None:
        out.append("cpu  ", self._style("label"))
        out.append(f"{system.cpu_total:3.0f}% ")
        out.append_text(self._spark(self.cpu_history, spark_w))
        out.append("\n")
        cores = system.cpu_percent
        if compact:  # one block per core
            out.append("     ")
            for level, pct in zip(spark_levels(cores, len(cores)), cores, strict=True):
                out.append(LEVELS[level], self._style("hot" if pct > HOT else "bar"))
            out.append("\n")
            return
        per_row = max(1, width // 26)
        for i, pct in enumerate(cores):
            out.append(f"{i:>3} ", self._style("label"))
            out.append(bar(pct / 100.0, 14), self._style("hot" if pct > HOT else "bar"))
            out.append(f" {pct:3.0f}%  ")
            if i % per_row == per_row - 1 or i == len(cores) - 1:
                out.append("\n")

    def _task_lines(self, out: Text, processes: Mapping[str, ProcSample], compact: bool) -> None:
        if not self._pids and not processes:
            return
        name_w = 14 if compact else 30
        out.append(f"{'task':<{name_w}}  cpu%       rss\n", self._style("label"))
        rows = sorted(processes.items(), key=lambda item: (-item[1].cpu_percent, item[0]))
        for task_id, proc in rows[:MAX_TASK_ROWS]:
            label = task_id if len(task_id) <= name_w else task_id[: name_w - 1] + "…"
            out.append(f"{label:<{name_w}} {proc.cpu_percent:4.0f}% {_size(proc.rss):>9}\n")
        if len(rows) > MAX_TASK_ROWS:
            out.append(f"(+{len(rows) - MAX_TASK_ROWS} more)\n", self._style("label"))
        if not rows:
            out.append("(no running task process)\n", self._style("label"))

    def _gpu_lines(self, out: Text, reading: Reading, pairs: bool, spark_w: int) -> None:
        if reading.system is None and not reading.gpus:
            return
        if not reading.gpu_available and not reading.gpus:
            reason = f" ({reading.gpu_reason})" if reading.gpu_reason else ""
            out.append(f"no NVIDIA GPU{reason}\n", self._style("label"))
            return
        for gpu in reading.gpus:
            hist = self.gpu_history
            power_hi = max((v for v in hist.get((gpu.index, "power"), ()) if v is not None), default=1.0)
            fields = (
                ("util", "—" if gpu.util_percent is None else f"{gpu.util_percent:3.0f}%", "util", 100.0),
                ("mem ", f"{_gib(gpu.memory_used)}/{_gib(gpu.memory_total)} GiB", "mem", 100.0),
                ("temp", "—" if gpu.temperature_c is None else f"{gpu.temperature_c:.0f}°C", "temp", 100.0),
                ("pwr ", "—" if gpu.power_w is None else f"{gpu.power_w:.0f} W", "power", power_hi),
            )
            out.append(f"GPU {gpu.index} ", self._style("label"))
            out.append(f"{gpu.name}\n")
            for k, (label, value, key, hi) in enumerate(fields):
                out.append(f"  {label} ", self._style("label"))
                out.append(f"{value:<15} ")
                out.append_text(self._spark(hist.get((gpu.index, key), deque()), spark_w, hi=hi))
                out.append("  " if pairs and k % 2 == 0 else "\n")  # two gauges a line when wide
            if gpu.processes:
                used = ", ".join(
                    f"{p.pid}: {_size(p.used_memory) if p.used_memory is not None else '?'}"
                    for p in gpu.processes
                )
                out.append(f"  procs {used}\n", self._style("label"))
