"""Telemetry: real psutil sampling of a spawned process tree, NVML absent and faked present."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import pynvml
import pytest

from core import telemetry
from core.gpu import GpuMonitor, GpuSample, gpu_count, nvml_reason
from core.telemetry import ProcessTreeSampler, Telemetry, sample_processes, sample_system

# The child starts a grandchild that holds 64 MiB and spins, then reports both pids.
_TREE = textwrap.dedent(
    """
    import subprocess, sys
    grand = subprocess.Popen(
        [sys.executable, "-c",
         "import sys\\nblob = bytearray(64 * 1024 * 1024)\\nfor i in range(0, len(blob), 4096): blob[i] = 1\\n"
         "print('ready', flush=True)\\nwhile True: pass"],
        stdout=subprocess.PIPE, text=True)
    grand.stdout.readline()
    print(grand.pid, flush=True)
    sys.stdin.read()
    grand.kill()
    """
)

MIB = 1024 * 1024


@pytest.fixture
def tree() -> Iterator[tuple[int, int]]:
    """A live ``sys.executable`` child with one busy grandchild: (child pid, grandchild pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    grand = int(proc.stdout.readline())
    try:
        yield proc.pid, grand
    finally:
        proc.stdin.close()  # the child kills its grandchild when stdin closes
        proc.wait(timeout=10)
        try:
            os.kill(grand, 9)
        except ProcessLookupError:
            pass


def test_sample_system_shape() -> None:
    sample = sample_system()
    assert len(sample.cpu_percent) == os.cpu_count()
    assert all(0.0 <= p <= 100.0 for p in sample.cpu_percent)
    assert 0 < sample.memory_available <= sample.memory_total
    assert 0.0 <= sample.memory_percent <= 100.0
    assert len(sample.load_avg) == 3
    assert 0.0 <= sample.cpu_total <= 100.0


async def test_process_tree_sums_children(tree: tuple[int, int]) -> None:
    child, grand = tree
    sampler = ProcessTreeSampler()
    first = sampler.sample({"t": child, "gone": 2**22 + 12345})
    assert "gone" not in first  # a vanished root is ignored, not an error
    assert first["t"].processes == 2
    assert first["t"].pid == child
    # The grandchild's 64 MiB count in the task's RSS, over its own root's.
    import psutil

    assert first["t"].rss >= psutil.Process(child).memory_info().rss + 60 * MIB
    # CPU % needs an interval between two readings of the same Process objects:
    # poll until the spinning grandchild shows, bounded.
    with anyio.fail_after(20):
        while True:
            await anyio.sleep(0.1)
            got = sampler.sample({"t": child})["t"]
            if got.cpu_percent > 20.0:
                break
    assert got.processes == 2
    assert sampler.sample({"t": grand})["t"].processes == 1  # a subtree is its own tree


async def test_sample_processes_forgets_exited(tree: tuple[int, int]) -> None:
    child, grand = tree
    assert sample_processes({"t": child})["t"].processes == 2
    os.kill(grand, 9)
    with anyio.fail_after(10):
        while True:
            got = sample_processes({"t": child})
            if got["t"].processes == 1:
                break
            await anyio.sleep(0.05)
    # The dead grandchild dropped out of the cache (cache holds only live trees).
    assert {pid for pid, _ in telemetry._DEFAULT_SAMPLER._procs} == {child}


# ---------------------------------------------------------------- NVML absent


def test_nvml_absent_is_a_reason_not_an_error() -> None:
    monitor = GpuMonitor()
    assert monitor.available is False
    assert monitor.reason == "no NVIDIA driver"
    assert monitor.sample() == []
    assert monitor.count == 0
    assert gpu_count() == 0
    monitor.close()
    assert Telemetry().gpu.reason == "no NVIDIA driver"


def test_nvml_reasons() -> None:
    assert nvml_reason(ImportError("x")) == "pynvml not installed"
    err = pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    assert nvml_reason(err) == "NVIDIA driver not loaded"
    assert nvml_reason(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)) == "NVML error: GPU is lost"


# --------------------------------------------------------------- NVML faked


class FakeNvml:
    """Two GPUs; the second lacks power readings; ``lost`` makes every call fail."""

    def __init__(self) -> None:
        self.inits = 0
        self.shutdowns = 0
        self.lost = False

    def _check(self) -> None:
        if self.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    def install(self, mp: pytest.MonkeyPatch) -> None:
        def init() -> None:
            self.inits += 1

        def shutdown() -> None:
            self.shutdowns += 1

        def util(h: int) -> Any:
            self._check()
            return SimpleNamespace(gpu=40 + h, memory=10)

        def mem(h: int) -> Any:
            self._check()
            return SimpleNamespace(used=(h + 1) * 1024 * MIB, total=8192 * MIB, free=0)

        def power(h: int) -> int:
            if h == 1:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return 123_500

        def compute(h: int) -> list[Any]:
            return [SimpleNamespace(pid=1000 + h, usedGpuMemory=512 * MIB)]

        def graphics(h: int) -> list[Any]:
            return [SimpleNamespace(pid=2000, usedGpuMemory=None)] if h == 0 else []

        mp.setattr(pynvml, "nvmlInit", init)
        mp.setattr(pynvml, "nvmlShutdown", shutdown)
        mp.setattr(pynvml, "nvmlDeviceGetCount", lambda: 2)
        mp.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: i)
        mp.setattr(pynvml, "nvmlDeviceGetName", lambda h: b"Fake A100" if h == 0 else "Fake T4")
        mp.setattr(pynvml, "nvmlDeviceGetUtilizationRates", util)
        mp.setattr(pynvml, "nvmlDeviceGetMemoryInfo", mem)
        mp.setattr(pynvml, "nvmlDeviceGetTemperature", lambda h, kind: 60 + h)
        mp.setattr(pynvml, "nvmlDeviceGetPowerUsage", power)
        mp.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses", compute)
        mp.setattr(pynvml, "nvmlDeviceGetGraphicsRunningProcesses", graphics)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml()
    fake.install(monkeypatch)
    return fake


def test_nvml_present_samples_every_gpu(fake_nvml: FakeNvml) -> None:
    monitor = GpuMonitor()
    assert monitor.available and monitor.reason == ""
    assert monitor.count == 2
    first, second = monitor.sample()
    assert first == GpuSample(
        index=0,
        name="Fake A100",
        util_percent=40.0,
        memory_used=1024 * MIB,
        memory_total=8192 * MIB,
        temperature_c=60.0,
        power_w=123.5,
        processes=first.processes,
    )
    assert {(p.pid, p.used_memory) for p in first.processes} == {(1000, 512 * MIB), (2000, None)}
    assert first.memory_percent == pytest.approx(12.5)
    # An unsupported field is None; the rest of the GPU still shows.
    assert second.name == "Fake T4" and second.power_w is None and second.util_percent == 41.0
    monitor.sample()
    assert fake_nvml.inits == 1  # initialised once, not per sample
    monitor.close()
    assert fake_nvml.shutdowns == 1 and not monitor.available


def test_nvml_error_mid_run_turns_unavailable(fake_nvml: FakeNvml) -> None:
    monitor = GpuMonitor()
    assert len(monitor.sample()) == 2
    fake_nvml.lost = True
    assert monitor.sample() == []
    assert monitor.available is False
    assert monitor.reason == "NVML error: GPU is lost"
    assert fake_nvml.shutdowns == 1
    assert monitor.sample() == []


def test_gpu_count_with_fake_nvml(fake_nvml: FakeNvml) -> None:
    assert gpu_count() == 2
    assert fake_nvml.shutdowns == 1


def test_nvml_init_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def init() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", init)
    monitor = GpuMonitor()
    assert (monitor.available, monitor.reason) == (False, "NVIDIA driver not loaded")
    assert gpu_count() == 0


def test_no_gpu_found(monkeypatch: pytest.MonkeyPatch, fake_nvml: FakeNvml) -> None:
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 0)
    monitor = GpuMonitor()
    assert (monitor.available, monitor.reason) == (False, "NVIDIA driver found no GPU")
    assert fake_nvml.shutdowns == 1


def test_import_hygiene() -> None:
    code = "import sys, core.telemetry; assert 'torch' not in sys.modules and 'textual' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
