"""The model registry on disk: ``<TEK_HOME>/models/<name>/<version>/``.

Each version folder holds ``model.safetensors`` and ``meta.json`` (see
:func:`new_meta`). This module is torch-free: listing, showing, removing,
resolving ``NAME[@VERSION]`` and checking a weights file's sha256 read only
files, so the CLI and the engine can use it. Loading weights into a model is
``core.ml.convert``'s job, in a worker.

Versions are whole numbers from 1. A new version is built in a staging folder
and renamed into place, so a reader never sees half a version, and two
writers racing for the same number cannot both win (renaming onto an
existing, non-empty folder fails; the loser takes the next number).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RegistryError
from core.ml.ops import OpError, check_name, parse_ref
from core.paths import models_dir

WEIGHTS_FILE = "model.safetensors"
META_FILE = "meta.json"
STAGING = ".staging"


@dataclass(frozen=True)
class ModelVersion:
    """One stored version of a model."""

    name: str
    version: int
    path: Path
    meta: Mapping[str, Any]

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def weights_path(self) -> Path:
        """The safetensors file."""
        return self.path / WEIGHTS_FILE


def _root(root: Path | None) -> Path:
    return root if root is not None else models_dir()


def _checked(name: str) -> str:
    try:
        return check_name(name)
    except OpError as exc:
        raise RegistryError(f"bad model name {name!r}: {exc}") from None


def split_ref(ref: str) -> tuple[str, int | None]:
    """Parse ``NAME[@VERSION]``.

    Raises:
        RegistryError: the name or version is invalid.
    """
    try:
        return parse_ref(ref)
    except OpError as exc:
        raise RegistryError(f"bad model reference {ref!r}: {exc}") from None


def versions(name: str, root: Path | None = None) -> list[int]:
    """Stored versions of ``name``, ascending (empty when there is no such model)."""
    folder = _root(root) / _checked(name)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def _load(name: str, version: int, root: Path | None) -> ModelVersion:
    path = _root(root) / name / str(version)
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"model {name}@{version}: {META_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"model {name}@{version}: unreadable {META_FILE}: {exc}") from None
    if not isinstance(meta, dict):
        raise RegistryError(f"model {name}@{version}: {META_FILE} is not an object")
    return ModelVersion(name, version, path, meta)


def resolve(ref: str, root: Path | None = None) -> ModelVersion:
    """The version ``ref`` names (latest when no ``@VERSION``).

    Raises:
        RegistryError: bad reference, no such model or version, unreadable meta.
    """
    name, version = split_ref(ref)
    known = versions(name, root)
    if not known:
        raise RegistryError(f"no model named {name!r} in the registry ({_root(root)})")
    if version is None:
        version = known[-1]
    elif version not in known:
        raise RegistryError(f"model {name!r} has no version {version} (has {_span(known)})")
    return _load(name, version, root)


def _span(known: list[int]) -> str:
    return ", ".join(str(v) for v in known)


def list_models(root: Path | None = None) -> list[ModelVersion]:
    """Every stored version, by name then version; unreadable ones are left out."""
    base = _root(root)
    out: list[ModelVersion] = []
    if not base.is_dir():
        return out
    for folder in sorted(base.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        for version in versions(folder.name, root):
            with contextlib.suppress(RegistryError):
                out.append(_load(folder.name, version, root))
    return out


def remove(ref: str, root: Path | None = None) -> list[str]:
    """Delete one version (``name@v``) or every version (``name``).

    Returns:
        The ``name@version`` refs removed.

    Raises:
        RegistryError: no such model or version.
    """
    name, version = split_ref(ref)
    known = versions(name, root)
    if not known or (version is not None and version not in known):
        raise RegistryError(f"no model {ref!r} in the registry")
    doomed = known if version is None else [version]
    for v in doomed:
        shutil.rmtree(_root(root) / name / str(v))
    if version is None or doomed == known:
        shutil.rmtree(_root(root) / name, ignore_errors=True)
    return [f"{name}@{v}" for v in doomed]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(mv: ModelVersion) -> None:
    """Check that the weights file exists and matches the sha256 in ``meta.json``.

    Raises:
        RegistryError: missing, truncated or altered weights.
    """
    path = mv.weights_path
    if not path.is_file():
        raise RegistryError(f"model {mv.ref}: weights file {path} is missing")
    expected = mv.meta.get("sha256")
    actual = sha256_file(path)
    if actual != expected:
        size = path.stat().st_size
        raise RegistryError(
            f"model {mv.ref}: weights file {path} is corrupt or truncated "
            f"(sha256 {actual[:12]}…, {size} bytes; meta.json expects {str(expected)[:12]}…)"
        )


@contextlib.contextmanager
def open_staging(root: Path | None = None) -> Iterator[Path]:
    """A fresh folder inside the registry to build a version in; removed on exit."""
    base = _root(root) / STAGING
    base.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=base))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(
    name: str, staging: Path, meta: dict[str, Any], root: Path | None = None
) -> ModelVersion:
    """Move a staged version (weights already written) into place as the next version.

    ``meta`` gets ``name``, ``version`` and ``sha256`` filled in and is written
    as ``meta.json``.

    Returns:
        The new version.

    Raises:
        RegistryError: bad name, or no weights in the staging folder.
    """
    _checked(name)
    weights = staging / WEIGHTS_FILE
    if not weights.is_file():
        raise RegistryError(f"cannot save {name!r}: no weights were written")
    meta = {**meta, "name": name, "sha256": sha256_file(weights)}
    folder = _root(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    version = (versions(name, root) or [0])[-1] + 1
    while True:
        meta["version"] = version
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
        try:
            # Renaming onto an existing non-empty version fails: another writer won.
            os.rename(staging, folder / str(version))
        except OSError:
            version += 1
            continue
        staging.mkdir()  # open_staging's cleanup expects the folder
        return ModelVersion(name, version, folder / str(version), meta)


def update_meta(mv: ModelVersion, changes: Mapping[str, Any]) -> ModelVersion:
    """Merge ``changes`` into a version's ``meta.json`` (dict values merge one level).

    Concurrent updaters of one version are serialised with a lock file, and
    the new file replaces the old atomically.
    """
    lock = mv.path / ".meta.lock"
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        meta = dict(_load(mv.name, mv.version, mv.path.parent.parent).meta)
        for key, value in changes.items():
            old = meta.get(key)
            if isinstance(old, dict) and isinstance(value, Mapping):
                meta[key] = {**old, **value}
            elif isinstance(old, list) and isinstance(value, list):
                meta[key] = old + value
            else:
                meta[key] = value
        tmp = mv.path / f".{META_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
        os.replace(tmp, mv.path / META_FILE)
    return ModelVersion(mv.name, mv.version, mv.path, meta)


def new_meta(**fields: Any) -> dict[str, Any]:
    """A ``meta.json`` body with the common fields and a UTC creation time.

    Expected fields: ``architecture`` (kind and config), ``task``, ``classes``,
    ``features``, ``target``, ``input_shape``, ``output_shape``, ``metrics``,
    ``torch_version``, ``device``, ``run_id``, ``task_id``, ``parent``.
    """
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "metrics": {},
        "evaluations": [],
        "parent": None,
        **fields,
    }


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
) -> tuple[ModelVersion, ModelVersion]:
    """The ``select`` op: copy the best candidate by ``metric`` to a new version of ``save``.

    Args:
        candidates: ``NAME[@VERSION]`` refs (latest version when none given).
        metric: a key of each candidate's ``meta.json`` ``metrics``.
        mode: ``max``, ``min`` or ``auto`` (minimise loss/mse/mae/error).
        save: name that receives the copy.
        lineage: ``run_id``/``task_id`` of the selecting task.

    Returns:
        ``(winner, new_version)``; the new version's ``parent`` is the winner.

    Raises:
        RegistryError: unknown candidate, a candidate without the metric, bad weights.
    """
    scored: list[tuple[float, ModelVersion]] = []
    for ref in candidates:
        mv = resolve(ref, root)
        value = mv.meta.get("metrics", {}).get(metric)
        if not isinstance(value, int | float):
            known = ", ".join(sorted(mv.meta.get("metrics", {}))) or "none"
            raise RegistryError(f"model {mv.ref} has no metric {metric!r} (has: {known})")
        scored.append((float(value), mv))
    sign = 1.0 if _minimise(metric, mode) else -1.0
    # Ties go to the earlier candidate: the plan's order is the user's preference.
    best_value, winner = min(scored, key=lambda pair: sign * pair[0])
    verify_weights(winner)
    meta = {k: v for k, v in winner.meta.items() if k not in ("name", "version", "sha256")}
    meta.update(
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        parent=winner.ref,
        selection={
            "metric": metric,
            "mode": "min" if sign > 0 else "max",
            "value": best_value,
            "candidates": {mv.ref: value for value, mv in scored},
        },
        evaluations=[],
        **lineage,
    )
    with open_staging(root) as staging:
        shutil.copyfile(winner.weights_path, staging / WEIGHTS_FILE)
        return winner, publish(save, staging, meta, root)
