"""Choosing the torch device for an ML op, as pure logic (no torch import).

``device=`` is ``auto|cpu|cuda|cuda:N|mps``. The worker asks torch what it
has (CUDA device count, MPS) and calls :func:`choose_device` with the answers
and the GPU indices the engine assigned, so every branch is testable on a
machine with no GPU. Rules:

- ``cpu``: the CPU.
- ``auto``: the first assigned GPU when the task holds GPUs and CUDA works;
  otherwise the CPU, with a note saying why (the task's log shows it).
  ``auto`` never picks MPS or an unassigned GPU on its own: the engine's
  resource accounting decides who gets accelerators.
- ``cuda``: the first assigned GPU (device 0 when the task holds none, noted);
  no CUDA is an error.
- ``cuda:N``: index N of the task's assigned GPUs when it holds some (the
  engine's indices are physical; the worker sees all devices), else physical N.
- ``mps``: Apple's Metal backend; an error when not available.
"""

from __future__ import annotations

from collections.abc import Sequence


class DeviceError(Exception):
    """The requested device does not exist here; the message says why."""


def choose_device(
    spec: str, gpus: Sequence[int], cuda_count: int, mps_available: bool
) -> tuple[str, str]:
    """Pick a torch device string for ``spec``.

    Args:
        spec: the op's ``device=`` value.
        gpus: GPU indices the engine assigned to the attempt.
        cuda_count: ``torch.cuda.device_count()`` (0 when CUDA is unavailable).
        mps_available: ``torch.backends.mps.is_available()``.

    Returns:
        ``(device, note)``: e.g. ``("cuda:1", "")`` or ``("cpu", "device=auto: ...")``.

    Raises:
        DeviceError: ``cuda``/``mps`` asked for but absent, or index out of range.
    """
    if spec == "cpu":
        return "cpu", ""
    if spec == "auto":
        if gpus and cuda_count:
            return _cuda(gpus[0], cuda_count), ""
        if gpus:
            return (
                "cpu",
                f"device=auto: GPUs {list(gpus)} assigned but CUDA is not available; using the CPU",
            )
        return "cpu", "device=auto: no GPU assigned to this task; using the CPU"
    if spec == "mps":
        if not mps_available:
            raise DeviceError("device=mps asked for, but Apple's MPS backend is not available here")
        return "mps", ""
    if spec.startswith("cuda"):
        if cuda_count == 0:
            raise DeviceError(
                f"device={spec} asked for, but CUDA is not available "
                "(no NVIDIA driver or a CPU-only torch build); use device=auto or device=cpu"
            )
        _, _, index = spec.partition(":")
        if not index:
            if not gpus:
                return _cuda(0, cuda_count), "device=cuda: task holds no GPU (gpus=0); using cuda:0"
            return _cuda(gpus[0], cuda_count), ""
        n = int(index)
        if gpus:
            if n >= len(gpus):
                raise DeviceError(
                    f"device={spec}: the task holds only {len(gpus)} GPU(s) {list(gpus)}"
                )
            return _cuda(gpus[n], cuda_count), ""
        return _cuda(n, cuda_count), ""
    raise DeviceError(f"unknown device {spec!r}")


def _cuda(index: int, count: int) -> str:
    if index >= count:
        raise DeviceError(f"CUDA device {index} does not exist (this machine has {count})")
    return f"cuda:{index}"
