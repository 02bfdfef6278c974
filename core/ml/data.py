"""Data sets for ML ops: built-in synthetic sets and CSV/Parquet tables (polars).

Imports torch: used only inside an ML worker. Every synthetic set is drawn
from a ``torch.Generator`` seeded with ``data_seed``, so the same arguments
give the same tensors on every machine. What defines the *problem* does not
depend on ``data_seed``: ``blobs``' cluster centres come from a fixed seed
(per ``classes`` and ``dims``), so a draw with another ``data_seed`` is a
held-out sample of the same problem, as for the other sets. As tables, synthetic sets have
feature columns ``x0..`` (``p0..`` pixels, row-major, for ``shapes``) and a
target column ``label`` (integer class) or ``y`` (regression).

A table's task is inferred when ``task=auto``: a float target is regression,
any other type (int, string, bool) is classification; class names are the
sorted distinct target values as text, and ``class_dtype`` remembers whether
they were integers so predictions can be written back the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch

SHAPES = ("circle", "square", "triangle", "cross")
#: Seeds the blobs' centres: fixed, so every ``data_seed`` samples one problem.
_BLOB_CENTRES_SEED = 20_240_917


class DataError(Exception):
    """A data set could not be built or read; the message names file and column."""


@dataclass
class Dataset:
    """Inputs and (optionally) targets, ready for a model."""

    x: torch.Tensor
    y: torch.Tensor | None
    task: str  # "classification" | "regression"
    features: list[str]
    target: str
    classes: list[str] = field(default_factory=list)
    class_dtype: str = "int"

    @property
    def input_shape(self) -> list[int]:
        """Shape of one sample."""
        return list(self.x.shape[1:])

    @property
    def out_features(self) -> int:
        """Model outputs: classes, or 1 for regression."""
        return len(self.classes) if self.task == "classification" else 1


def synthetic(kind: str, args: dict[str, Any]) -> Dataset:
    """Draw a built-in data set (``moons``, ``blobs``, ``spirals``, ``regression``, ``shapes``)."""
    g = torch.Generator().manual_seed(int(args.get("data_seed") or 0))
    n, noise = int(args.get("n") or 1000), float(args.get("noise") or 0.0)
    if kind == "shapes":
        return _shapes(n, noise, int(args.get("size") or 16), g)
    if kind == "regression":
        dims = int(args.get("dims") or 4)
        x = torch.randn(n, dims, generator=g)
        w = torch.linspace(-1.0, 1.0, dims)
        y = x @ w + torch.sin(2 * x[:, 0]) + noise * torch.randn(n, generator=g)
        return Dataset(x, y.unsqueeze(1), "regression", _names("x", dims), "y")
    if kind == "moons":
        half = n // 2
        t = torch.rand(n, generator=g) * math.pi
        outer = torch.stack([torch.cos(t[:half]), torch.sin(t[:half])], 1)
        inner = torch.stack([1 - torch.cos(t[half:]), 0.5 - torch.sin(t[half:])], 1)
        x = torch.cat([outer, inner]) + noise * torch.randn(n, 2, generator=g)
        y = torch.cat([torch.zeros(half), torch.ones(n - half)]).long()
        classes = 2
    elif kind == "blobs":
        classes, dims = int(args.get("classes") or 3), int(args.get("dims") or 4)
        centers = _blob_centres(classes, dims)
        y = torch.randint(0, classes, (n,), generator=g)
        x = centers[y] + (1.0 + noise) * torch.randn(n, dims, generator=g)
    elif kind == "spirals":
        classes = int(args.get("classes") or 3)
        y = torch.randint(0, classes, (n,), generator=g)
        r = torch.rand(n, generator=g)
        angle = 4 * r + y * (2 * math.pi / classes) + noise * torch.randn(n, generator=g)
        x = torch.stack([r * torch.sin(angle), r * torch.cos(angle)], 1)
    else:
        raise DataError(f"unknown data set {kind!r}")
    return Dataset(
        x.float(),
        y,
        "classification",
        _names("x", x.shape[1]),
        "label",
        [str(c) for c in range(classes)],
    )


def _blob_centres(classes: int, dims: int) -> torch.Tensor:
    """Well-spread cluster centres in ``[-6, 6]^dims``, the same for every ``data_seed``.

    Candidates come from a fixed seed; farthest-point picking keeps the
    clusters apart (plain random centres can land on top of each other).
    """
    g = torch.Generator().manual_seed(_BLOB_CENTRES_SEED)
    pool = (torch.rand(max(64, 16 * classes), dims, generator=g) - 0.5) * 12
    chosen = [0]
    nearest = (pool - pool[0]).norm(dim=1)  # each candidate's distance to the chosen ones
    for _ in range(classes - 1):
        chosen.append(int(nearest.argmax()))
        nearest = torch.minimum(nearest, (pool - pool[chosen[-1]]).norm(dim=1))
    return pool[chosen]


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def _shapes(n: int, noise: float, size: int, g: torch.Generator) -> Dataset:
    """Grey ``size``×``size`` images of four shapes at random places and scales."""
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    labels = torch.randint(0, len(SHAPES), (n,), generator=g)
    scale = size * (0.18 + 0.14 * torch.rand(n, generator=g))
    cx = size / 2 + (torch.rand(n, generator=g) - 0.5) * (size - 2 * scale)
    cy = size / 2 + (torch.rand(n, generator=g) - 0.5) * (size - 2 * scale)
    dx = (xx[None] - cx[:, None, None]) / scale[:, None, None]
    dy = (yy[None] - cy[:, None, None]) / scale[:, None, None]
    masks = torch.stack(
        [
            (dx**2 + dy**2) <= 1.0,  # circle
            (dx.abs() <= 0.85) & (dy.abs() <= 0.85),  # square
            (dy <= 0.9) & (dy >= -0.9) & (dx.abs() <= (dy + 0.9) / 1.8),  # triangle
            ((dx.abs() <= 0.3) | (dy.abs() <= 0.3)) & (dx.abs() <= 1) & (dy.abs() <= 1),  # cross
        ]
    )
    img = masks[labels, torch.arange(n)].float()
    img = img + noise * 0.5 * torch.randn(n, size, size, generator=g)
    features = _names("p", size * size)
    return Dataset(
        img.unsqueeze(1),
        labels,
        "classification",
        features,
        "label",
        [str(i) for i in range(len(SHAPES))],
    )


def to_frame(ds: Dataset) -> pl.DataFrame:
    """A data set as a table (feature columns then the target)."""
    flat = ds.x.reshape(len(ds.x), -1).numpy()
    columns: dict[str, Any] = {name: flat[:, i] for i, name in enumerate(ds.features)}
    if ds.y is not None:
        columns[ds.target] = ds.y.reshape(len(ds.y)).numpy()
    return pl.DataFrame(columns)


def write_table(frame: pl.DataFrame, path: Path) -> None:
    """Write CSV or Parquet by suffix, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)


def read_table(path: Path) -> pl.DataFrame:
    """Read CSV or Parquet by suffix.

    Raises:
        DataError: missing or unreadable file.
    """
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000)
        return pl.read_parquet(path)
    except Exception as exc:  # polars raises many types; the message is what matters
        raise DataError(f"cannot read {path}: {exc}") from None


def from_table(
    frame: pl.DataFrame,
    source: str,
    target: str | None,
    features: list[str] | None,
    task: str = "auto",
    classes: list[str] | None = None,
    input_shape: list[int] | None = None,
) -> Dataset:
    """Turn a table into tensors.

    Args:
        frame: the table.
        source: file name for messages.
        target: target column, or None (inference without labels).
        features: feature columns; None = every column but the target.
        task: ``auto``, ``classification`` or ``regression``.
        classes: class names a trained model knows (labels are mapped to them).
        input_shape: shape of one sample (e.g. ``[1, 16, 16]`` for images).

    Raises:
        DataError: missing column, non-numeric feature, unknown label.
    """
    if target is not None and target not in frame.columns:
        raise DataError(
            f"{source}: no target column {target!r} (columns: {', '.join(frame.columns)})"
        )
    names = features or [c for c in frame.columns if c != target]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: no feature column {missing[0]!r} (columns: {', '.join(frame.columns)})"
        )
    if not names:
        raise DataError(f"{source}: no feature columns")
    for name in names:
        if not frame[name].dtype.is_numeric() and frame[name].dtype != pl.Boolean:
            bad = frame[name].drop_nulls().head(1).to_list()
            raise DataError(
                f"{source}: feature column {name!r} is not numeric (e.g. {bad[0]!r})"
                if bad
                else f"{source}: feature column {name!r} is empty"
            )
    try:
        x = torch.from_numpy(frame.select(names).cast(pl.Float32).to_numpy().copy())
    except Exception as exc:
        raise DataError(f"{source}: cannot read features as numbers: {exc}") from None
    if torch.isnan(x).any():
        row = int(torch.isnan(x).any(1).nonzero()[0])
        raise DataError(f"{source}: missing or NaN feature value in data row {row + 1}")
    if input_shape and len(input_shape) > 1:
        x = x.reshape(len(x), *input_shape)
    if target is None:
        return Dataset(
            x, None, "classification" if classes else "regression", names, "", classes or []
        )
    column = frame[target]
    if task == "auto":
        task = "regression" if column.dtype.is_float() else "classification"
    if task == "regression":
        y = torch.from_numpy(column.cast(pl.Float32).to_numpy().copy()).unsqueeze(1)
        return Dataset(x, y, task, names, target)
    if column.null_count():
        row = int(column.is_null().arg_max() or 0)
        raise DataError(f"{source}: empty target {target!r} in data row {row + 1}")
    dtype = "int" if column.dtype.is_integer() else "str"
    labels = [str(v) for v in column.cast(pl.String).to_list()]
    known = classes or (sorted(set(labels), key=int) if dtype == "int" else sorted(set(labels)))
    index = {name: i for i, name in enumerate(known)}
    unknown = next((v for v in labels if v not in index), None)
    if unknown is not None:
        raise DataError(f"{source}: label {unknown!r} in column {target!r} is not a known class")
    y = torch.tensor([index[v] for v in labels], dtype=torch.long)
    return Dataset(x, y, task, names, target, list(known), dtype)


def load(args: dict[str, Any], path_of: Any, meta: dict[str, Any] | None = None) -> Dataset:
    """The data set an op's ``data=`` names (synthetic or a file).

    Args:
        args: the op's arguments.
        path_of: ``OpContext.path``, resolving a path argument.
        meta: the model's ``meta.json`` when evaluating or inferring (its
            features, target, classes and input shape win over defaults).
    """
    data = args["data"]
    if data in ("moons", "blobs", "spirals", "regression", "shapes"):
        ds = synthetic(data, args)
        if meta and meta.get("features") and len(meta["features"]) != len(ds.features):
            raise DataError(
                f"data={data} has {len(ds.features)} features; the model expects {len(meta['features'])}"
            )
        return ds
    path = path_of(data)
    frame = read_table(path)
    meta = meta or {}
    target = args.get("target") or meta.get("target")
    if target and target not in frame.columns and args.get("target") is None:
        target = None  # inference on a table without labels
    return from_table(
        frame,
        str(path),
        target,
        args.get("features") or meta.get("features"),
        meta.get("task") or args.get("task", "auto"),
        meta.get("classes") or None,
        (meta.get("architecture") or {}).get("input_shape"),
    )
