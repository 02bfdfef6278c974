"""The ``select`` op: copy the best of several registry models to a new version.

Torch-free (it compares numbers in ``meta.json`` and copies a weights file),
split out of ``core.ml.registry``. A candidate whose metric is missing, NaN
or infinite (a diverged model; ``null`` in ``meta.json``) is skipped and the
log says so; when none is left the op fails rather than pick at random.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.errors import RegistryError
from core.ml import registry


def _minimise(metric: str, mode: str) -> bool:
    if mode != "auto":
        return mode == "min"
    return any(word in metric for word in ("loss", "mse", "mae", "error"))


def select_best(
    candidates: list[str],
    metric: str,
    mode: str,
    save: str,
    lineage: Mapping[str, Any],
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[registry.ModelVersion, registry.ModelVersion]:
    """The ``select`` op: copy the best candidate by ``metric`` to a new version of ``save``.

    Args:
        candidates: ``NAME[@VERSION]`` refs (a bare name is resolved for the
            selecting run, see :func:`resolve`).
        metric: a key of each candidate's ``meta.json`` ``metrics``.
        mode: ``max``, ``min`` or ``auto`` (minimise loss/mse/mae/error).
        save: name that receives the copy.
        lineage: ``run_id``/``task_id``/``attempt`` of the selecting task.
        root: the registry folder.
        log: told about each candidate left out (metric missing, NaN or infinite).

    Returns:
        ``(winner, new_version)``; the new version's ``parent`` is the winner.

    Raises:
        RegistryError: unknown candidate, no candidate with a finite metric, bad weights.
    """
    scored: list[tuple[float, registry.ModelVersion]] = []
    skipped: dict[str, str] = {}
    run_id = lineage.get("run_id") or None
    for ref in candidates:
        mv = registry.resolve(ref, root, run_id=run_id)
        metrics = mv.meta.get("metrics", {})
        value = metrics.get(metric)
        # A diverged model's metric is NaN (null in meta.json): it must never
        # win, and NaN compares false with everything, so min() could pick it.
        if metric not in metrics:
            skipped[mv.ref] = f"no metric {metric!r} (has: {', '.join(sorted(metrics)) or 'none'})"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            skipped[mv.ref] = f"{metric} is {'null (not finite)' if value is None else repr(value)}"
        elif not math.isfinite(value):
            skipped[mv.ref] = f"{metric} is {value}"
        else:
            scored.append((float(value), mv))
    if log is not None:
        for ref, why in skipped.items():
            log(f"select: skipping {ref}: {why}")
    if not scored:
        reasons = "; ".join(f"{ref}: {why}" for ref, why in skipped.items())
        raise RegistryError(f"select: no candidate has a finite {metric!r} ({reasons})")
    sign = 1.0 if _minimise(metric, mode) else -1.0
    # Ties go to the earlier candidate: the plan's order is the user's preference.
    best_value, winner = min(scored, key=lambda pair: sign * pair[0])
    registry.verify_weights(winner)
    meta = {k: v for k, v in winner.meta.items() if k not in ("name", "version", "sha256")}
    meta.update(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        parent=winner.ref,
        selection={
            "metric": metric,
            "mode": "min" if sign > 0 else "max",
            "value": best_value,
            "candidates": {mv.ref: value for value, mv in scored},
            "skipped": skipped,
        },
        evaluations=[],
        **lineage,
    )
    with registry.open_staging(root) as staging:
        shutil.copyfile(winner.weights_path, staging / registry.WEIGHTS_FILE)
        return winner, registry.publish(save, staging, meta, root)
