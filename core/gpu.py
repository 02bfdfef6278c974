"""GPU telemetry through NVML (the ``pynvml`` module of nvidia-ml-py).

:class:`GpuMonitor` initialises NVML once and samples every device:
utilisation, memory, temperature, power and the GPU memory of each process.
No NVIDIA driver is a normal case (DESIGN.md, "Telemetry"): every NVML error
turns into ``available=False`` with a reason a person reads (``"no NVIDIA
driver"``), never an exception. A field one device does not support (power on
some boards, temperature in some VMs) is ``None`` and the rest still shows.

All calls block (NVML talks to the driver); the console runs them in a thread
worker. Nothing here imports textual or torch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuMonitor", "GpuProcess", "GpuSample", "gpu_count", "nvml_reason"]


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """One process holding memory on a GPU."""

    pid: int
    used_memory: int | None
    """Bytes of GPU memory it holds, ``None`` when NVML cannot tell (e.g. in a container)."""


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one moment. Fields NVML cannot read on this board are ``None``."""

    index: int
    name: str
    util_percent: float | None
    memory_used: int | None
    """Bytes."""
    memory_total: int | None
    """Bytes."""
    temperature_c: float | None
    power_w: float | None
    processes: tuple[GpuProcess, ...] = ()

    @property
    def memory_percent(self) -> float | None:
        """Used memory as a percentage of total, when both are known."""
        if self.memory_used is None or not self.memory_total:
            return None
        return 100.0 * self.memory_used / self.memory_total


def nvml_reason(exc: BaseException) -> str:
    """Turn an NVML (or import) failure into a short reason for the console.

    Args:
        exc: what ``import pynvml`` or an NVML call raised.

    Returns:
        e.g. ``"no NVIDIA driver"`` or ``"NVML error: GPU is lost"``.
    """
    if isinstance(exc, ImportError):
        return "pynvml not installed"
    name = type(exc).__name__
    if name == "NVMLError_LibraryNotFound":
        return "no NVIDIA driver"
    if name == "NVMLError_DriverNotLoaded":
        return "NVIDIA driver not loaded"
    if name == "NVMLError_NoPermission":
        return "no permission to query NVIDIA driver"
    return f"NVML error: {exc}"


def _text(value: Any) -> str:
    # Older nvidia-ml-py releases return bytes for names.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _optional(nvml: Any, call: Any, *args: Any) -> Any:
    """Call one NVML getter; a field the device does not support gives ``None``.

    Only ``NVMLError_NotSupported`` and friends are per-field; a lost GPU or an
    unloaded driver propagates so the monitor can mark itself unavailable.
    """
    try:
        return call(*args)
    except nvml.NVMLError as exc:
        if type(exc).__name__ in ("NVMLError_NotSupported", "NVMLError_NoData", "NVMLError_NotFound"):
            return None
        raise


class GpuMonitor:
    """Samples NVIDIA GPUs; falls back to ``available=False`` instead of failing.

    Construct it where blocking is fine (a thread). NVML is initialised once,
    here; :meth:`close` shuts it down. After an NVML error during
    :meth:`sample` the monitor stays unavailable (a lost GPU does not come
    back without a driver reset) and :meth:`sample` returns ``[]``.
    """

    def __init__(self) -> None:
        self.available: bool = False
        """True while NVML answers."""
        self.reason: str = ""
        """Why :attr:`available` is False, in words (empty when available)."""
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                count = int(pynvml.nvmlDeviceGetCount())
                self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except Exception:
                pynvml.nvmlShutdown()
                raise
        except Exception as exc:  # any NVML or import failure is a reason, not a crash
            self.reason = nvml_reason(exc)
            return
        self._nvml = pynvml
        if not self._handles:
            self.reason = "NVIDIA driver found no GPU"
            self.close()
            return
        self.available = True

    @property
    def count(self) -> int:
        """Number of GPUs NVML sees (0 when unavailable)."""
        return len(self._handles) if self.available else 0

    def sample(self) -> list[GpuSample]:
        """Read every GPU once.

        Returns:
            one :class:`GpuSample` per device, in NVML index order; ``[]`` when
            NVML is unavailable or failed during this call (then
            :attr:`available` is False and :attr:`reason` says why).
        """
        # One sampler at a time: NVML handles are process-wide state.
        with self._lock:
            if not self.available:
                return []
            try:
                return [self._sample_one(i, h) for i, h in enumerate(self._handles)]
            except Exception as exc:
                self.reason = nvml_reason(exc)
                self.close()
                return []

    def _sample_one(self, index: int, handle: Any) -> GpuSample:
        nvml = self._nvml
        util = _optional(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
        mem = _optional(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
        temp = _optional(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        power_mw = _optional(nvml, nvml.nvmlDeviceGetPowerUsage, handle)
        procs: dict[int, GpuProcess] = {}
        for getter in (
            nvml.nvmlDeviceGetComputeRunningProcesses,
            nvml.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            for proc in _optional(nvml, getter, handle) or ():
                used = getattr(proc, "usedGpuMemory", None)
                procs[int(proc.pid)] = GpuProcess(int(proc.pid), int(used) if used is not None else None)
        return GpuSample(
            index=index,
            name=_text(_optional(nvml, nvml.nvmlDeviceGetName, handle) or f"GPU {index}"),
            util_percent=float(util.gpu) if util is not None else None,
            memory_used=int(mem.used) if mem is not None else None,
            memory_total=int(mem.total) if mem is not None else None,
            temperature_c=float(temp) if temp is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            processes=tuple(procs.values()),
        )

    def close(self) -> None:
        """Shut NVML down; the monitor is unavailable afterwards."""
        nvml, self._nvml = self._nvml, None
        self._handles = []
        if self.available and not self.reason:
            self.reason = "closed"
        self.available = False
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception:  # shutting down a broken driver must not raise either
                pass


def gpu_count() -> int:
    """Number of NVIDIA GPUs on this machine; 0 without NVML or on any error."""
    monitor = GpuMonitor()
    try:
        return monitor.count
    finally:
        monitor.close()
