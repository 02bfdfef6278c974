"""System memory in MiB: :func:`total_mb` and :func:`available_mb`.

Read from ``/proc/meminfo`` on Linux (what psutil reads there too, without
the 10-15 ms its import adds to every ``tek run``); psutil elsewhere.
"""

from __future__ import annotations

_MIB = 1 << 20
#: Where Linux tells; missing elsewhere (tests point it at a missing file).
MEMINFO = "/proc/meminfo"


def _meminfo(key: str) -> int | None:
    try:
        with open(MEMINFO, encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) // 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def total_mb() -> int:
    """Physical memory in MiB."""
    mb = _meminfo("MemTotal:")
    if mb is None:
        import psutil

        mb = int(psutil.virtual_memory().total // _MIB)
    return mb


def available_mb() -> int:
    """Memory available to new processes without swapping, in MiB."""
    mb = _meminfo("MemAvailable:")
    if mb is None:
        import psutil

        mb = int(psutil.virtual_memory().available // _MIB)
    return mb
