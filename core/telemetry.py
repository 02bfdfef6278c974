"""Machine telemetry for the console: CPU, memory, load, task process trees, GPUs.

DESIGN.md, "Telemetry". Everything here blocks briefly (psutil reads /proc,
NVML talks to the driver), so the console calls it from a thread worker.

- :func:`sample_system` reads per-core CPU %, memory and load averages.
- :class:`ProcessTreeSampler` (and :func:`sample_processes`, which uses one
  module-wide instance) sums CPU % and RSS over each task's whole process
  tree. ``psutil.Process.cpu_percent`` measures since its previous call on the
  *same object*, so the sampler keeps ``Process`` objects between calls, keyed
  by pid and creation time so that a recycled pid is a new process.
- GPUs come from :mod:`core.gpu` (:class:`GpuMonitor`, :func:`gpu_count`),
  re-exported here.
- :class:`TelemetrySource` is the small protocol the console polls;
  :class:`Telemetry` is the real one and tests inject fakes.

CPU percentages follow psutil: per core 0–100, per process tree 100 = one
core busy (a tree using two cores shows 200). The first reading of a process
is 0.0 (no interval yet). No textual, no torch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import psutil

from core.gpu import GpuMonitor, GpuProcess, GpuSample, gpu_count

__all__ = [
    "GpuMonitor",
    "GpuProcess",
    "GpuSample",
    "GpuSource",
    "ProcSample",
    "ProcessTreeSampler",
    "SystemSample",
    "Telemetry",
    "TelemetrySource",
    "gpu_count",
    "sample_processes",
    "sample_system",
]


@dataclass(frozen=True, slots=True)
class SystemSample:
    """The machine at one moment."""

    ts: float
    """``time.time()`` of the sample."""
    cpu_percent: tuple[float, ...]
    """Busy % of each logical core since the previous sample (0–100 each)."""
    memory_total: int
    """Bytes of RAM."""
    memory_available: int
    """Bytes a new process could use without swapping."""
    memory_percent: float
    """Used share of RAM, 0–100 (psutil's ``virtual_memory().percent``)."""
    load_avg: tuple[float, float, float]
    """1, 5 and 15 minute load averages."""

    @property
    def cpu_total(self) -> float:
        """Mean busy % over all cores."""
        return sum(self.cpu_percent) / len(self.cpu_percent) if self.cpu_percent else 0.0


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One task's whole process tree at one moment."""

    pid: int
    """The tree's root (the attempt's process group leader)."""
    cpu_percent: float
    """Sum over the tree; 100 = one core busy."""
    rss: int
    """Resident bytes, summed over the tree."""
    processes: int
    """How many live processes the tree had."""


def sample_system() -> SystemSample:
    """Read per-core CPU, memory and load averages.

    The CPU figures cover the time since the previous call in this process
    (psutil keeps that state); the very first call returns zeros.
    """
    per_core = tuple(float(p) for p in psutil.cpu_percent(interval=None, percpu=True))
    mem = psutil.virtual_memory()
    try:
        load = os.getloadavg()
    except OSError:  # not on every platform
        load = (0.0, 0.0, 0.0)
    return SystemSample(
        ts=time.time(),
        cpu_percent=per_core,
        memory_total=int(mem.total),
        memory_available=int(mem.available),
        memory_percent=float(mem.percent),
        load_avg=(float(load[0]), float(load[1]), float(load[2])),
    )


class ProcessTreeSampler:
    """Measures CPU % and RSS of process trees, keeping ``Process`` objects between calls.

    One instance per poller; :meth:`sample` is safe to call from one thread at
    a time (a lock guards the cache). Processes that vanish between listing and
    reading are skipped; a root that is gone yields no entry.
    """

    def __init__(self) -> None:
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._lock = threading.Lock()

    def _cached(self, proc: psutil.Process) -> psutil.Process:
        # Key by creation time too: a recycled pid is a different process and
        # must not inherit the old one's CPU time baseline.
        key = (proc.pid, proc.create_time())
        known = self._procs.get(key)
        if known is None:
            known = self._procs[key] = proc
        return known

    def sample(self, pids: Mapping[str, int]) -> dict[str, ProcSample]:
        """Sample each task's tree.

        Args:
            pids: task id → root pid of its running attempt.

        Returns:
            task id → :class:`ProcSample` for every root still alive.
        """
        out: dict[str, ProcSample] = {}
        seen: set[tuple[int, float]] = set()
        with self._lock:
            if not pids:
                self._procs.clear()
                return out
            # One scan of the process table for every tree: psutil's
            # children(recursive=True) rescans it per root, 20 roots = 20 scans.
            by_pid: dict[int, psutil.Process] = {}
            kids: dict[int, list[int]] = {}
            for listed in psutil.process_iter(["ppid"]):
                by_pid[listed.pid] = listed
                parent = listed.info.get("ppid")
                if parent is not None and parent != listed.pid:
                    kids.setdefault(parent, []).append(listed.pid)
            for task_id, pid in pids.items():
                if pid not in by_pid:
                    continue  # the task's root is gone
                members = [pid]
                in_tree = {pid}
                for member in members:  # grows as we go: breadth-first over the tree
                    for child in kids.get(member, ()):
                        if child not in in_tree:
                            in_tree.add(child)
                            members.append(child)
                tree = [by_pid[m] for m in members]
                cpu = 0.0
                rss = 0
                alive = 0
                for raw in tree:
                    try:
                        proc = self._cached(raw)
                        with proc.oneshot():
                            if proc.status() == psutil.STATUS_ZOMBIE:
                                continue  # exited, not yet reaped: uses nothing
                            cpu += proc.cpu_percent(interval=None)
                            rss += proc.memory_info().rss
                        seen.add((proc.pid, proc.create_time()))
                        alive += 1
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue  # it exited between listing and reading: ignore it
                if alive:
                    out[task_id] = ProcSample(pid=pid, cpu_percent=cpu, rss=rss, processes=alive)
            # Forget processes no longer in any tree, so the cache stays small.
            for key in [k for k in self._procs if k not in seen]:
                del self._procs[key]
        return out


_DEFAULT_SAMPLER = ProcessTreeSampler()


def sample_processes(pids: Mapping[str, int]) -> dict[str, ProcSample]:
    """Sample task process trees with a module-wide :class:`ProcessTreeSampler`.

    Args:
        pids: task id → root pid.

    Returns:
        task id → :class:`ProcSample`; vanished tasks are left out.
    """
    return _DEFAULT_SAMPLER.sample(pids)


class GpuSource(Protocol):
    """What the console needs from a GPU monitor (:class:`GpuMonitor` is one)."""

    @property
    def available(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    def sample(self) -> list[GpuSample]: ...


class TelemetrySource(Protocol):
    """What the console polls; tests and snapshots pass deterministic fakes."""

    def sample_system(self) -> SystemSample: ...

    def sample_processes(self, pids: Mapping[str, int]) -> dict[str, ProcSample]: ...

    @property
    def gpu(self) -> GpuSource: ...


class Telemetry:
    """The real :class:`TelemetrySource`: psutil plus NVML.

    NVML is initialised on first use of :attr:`gpu` (it blocks), so build this
    anywhere and touch it from a thread.
    """

    def __init__(self) -> None:
        self._trees = ProcessTreeSampler()
        self._gpu: GpuMonitor | None = None
        self._gpu_lock = threading.Lock()

    def sample_system(self) -> SystemSample:
        """See :func:`sample_system`."""
        return sample_system()

    def sample_processes(self, pids: Mapping[str, int]) -> dict[str, ProcSample]:
        """See :meth:`ProcessTreeSampler.sample`."""
        return self._trees.sample(pids)

    @property
    def gpu(self) -> GpuMonitor:
        """The NVML monitor, created once."""
        with self._gpu_lock:
            if self._gpu is None:
                self._gpu = GpuMonitor()
            return self._gpu

    def close(self) -> None:
        """Release NVML."""
        with self._gpu_lock:
            if self._gpu is not None:
                self._gpu.close()
