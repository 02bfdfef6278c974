"""The model registry on disk: ``<TEK_HOME>/models/<name>/<version>/``.

Each version folder holds ``model.safetensors`` and ``meta.json`` (see
:func:`new_meta`). This module is torch-free: listing, showing, removing,
resolving ``NAME[@VERSION]`` and checking a weights file's sha256 read only
files, so the CLI and the engine can use it. Loading weights into a model is
``core.ml.convert``'s job, in a worker.

Versions are whole numbers from 1. A new version is built in a staging folder
and renamed into place, so a reader never sees half a version, and two
writers racing for the same number cannot both win (renaming onto an
existing, non-empty folder fails with EEXIST or ENOTEMPTY; the loser takes
the next number; any other failure is an error, never a retry).

``meta.json`` is strict JSON: NaN and infinite numbers are written as
``null`` (:func:`dumps`). A bare ``NAME`` resolves per run (:func:`resolve`);
the ``select`` op lives in ``core.ml.selection``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import RegistryError
from core.files import write_atomic
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


def resolve(ref: str, root: Path | None = None, run_id: str | None = None) -> ModelVersion:
    """The version ``ref`` names (latest when no ``@VERSION``).

    Args:
        ref: ``NAME``, ``NAME@VERSION`` or ``NAME@latest``.
        root: the registry folder (default ``$TEK_HOME/models``).
        run_id: the run asking. A bare ``NAME`` then means the latest
            version this run saved, if it saved one (``run_id`` in
            ``meta.json``), else the latest overall: two runs working on
            one name at once never pick up each other's models.
            ``NAME@latest`` is the latest overall regardless.

    Raises:
        RegistryError: bad reference, no such model or version, unreadable meta.
    """
    name, version = split_ref(ref)
    known = versions(name, root)
    if not known:
        raise RegistryError(f"no model named {name!r} in the registry ({_root(root)})")
    if version is None and run_id and "@" not in ref:
        own = _latest_of_run(name, known, run_id, root)
        if own is not None:
            return own
    if version is None:
        version = known[-1]
    elif version not in known:
        raise RegistryError(f"model {name!r} has no version {version} (has {_span(known)})")
    return _load(name, version, root)


def _latest_of_run(
    name: str, known: list[int], run_id: str, root: Path | None
) -> ModelVersion | None:
    # Newest first: the usual case (the run's own save is the newest) reads one file.
    for version in reversed(known):
        try:
            mv = _load(name, version, root)
        except RegistryError:
            continue  # damaged: cannot be this run's, as far as we can tell
        if mv.meta.get("run_id") == run_id:
            return mv
    return None


def _span(known: list[int]) -> str:
    return ", ".join(str(v) for v in known)


@dataclass(frozen=True)
class DamagedVersion:
    """A version folder whose ``meta.json`` is missing or unreadable."""

    name: str
    version: int
    path: Path
    problem: str

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


def scan(root: Path | None = None) -> tuple[list[ModelVersion], list[DamagedVersion]]:
    """Every stored version, by name then version, and the damaged ones apart."""
    base = _root(root)
    good: list[ModelVersion] = []
    damaged: list[DamagedVersion] = []
    if not base.is_dir():
        return good, damaged
    for folder in sorted(base.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        for version in versions(folder.name, root):
            try:
                good.append(_load(folder.name, version, root))
            except RegistryError as exc:
                damaged.append(
                    DamagedVersion(folder.name, version, folder / str(version), str(exc))
                )
    return good, damaged


def list_models(root: Path | None = None) -> list[ModelVersion]:
    """Every readable stored version, by name then version (see :func:`scan`)."""
    return scan(root)[0]


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) turned into None.

    JSON has no NaN: ``meta.json`` and ``--json`` output must stay readable
    by strict parsers, so a diverged metric is written as ``null``.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def dumps(value: Any, **kw: Any) -> str:
    """Strict JSON (NaN and infinities written as null)."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kw)


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
    try:
        base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=base))
    except OSError as exc:
        raise RegistryError(f"cannot save a model in {base}: {exc.strerror or exc}") from None
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
        RegistryError: bad name, no weights in the staging folder, or the
            version could not be written (permissions, read-only or full disk).
    """
    _checked(name)
    weights = staging / WEIGHTS_FILE
    if not weights.is_file():
        raise RegistryError(f"cannot save {name!r}: no weights were written")
    meta = finite_or_none({**meta, "name": name, "sha256": sha256_file(weights)})
    folder = _root(root) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        version = (versions(name, root) or [0])[-1] + 1
        while True:
            meta["version"] = version
            (staging / META_FILE).write_text(dumps(meta, indent=2, sort_keys=True), "utf-8")
            try:
                os.rename(staging, folder / str(version))
            except OSError as exc:
                # Renaming onto an existing non-empty version fails with one of
                # these: another writer won, take the next number. Any other
                # error (EACCES, EPERM, EROFS, ENOSPC) would fail for every
                # number: retrying would loop forever.
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                version += 1
                continue
            break
    except OSError as exc:  # open_staging removes the staging folder
        raise RegistryError(f"cannot save model {name}: {exc.strerror or exc}") from None
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
        write_atomic(mv.path / META_FILE, dumps(meta, indent=2, sort_keys=True))
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
