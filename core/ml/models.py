"""Model architectures: linear/logistic, MLP and a small CNN, built from a dict.

Imports torch: used only inside an ML worker (and by ``tek models export``).
An architecture is a JSON-ready dict stored in ``meta.json`` (``kind`` plus
its config), so a registry version can be rebuilt and its safetensors loaded
with ``strict=True``. Every model starts with a :class:`Standardize` layer
whose mean and std are buffers fitted on the training split: they travel in
the weights file and into ONNX, so callers feed raw features.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed buffers (per feature, or one scalar for images)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    def fit(self, x: torch.Tensor) -> None:
        """Set mean and std from training inputs (std floors at 1e-6)."""
        if self.mean.numel() == 1:
            self.mean.copy_(x.mean().reshape(1))
            self.std.copy_(x.std().clamp_min(1e-6).reshape(1))
        else:
            self.mean.copy_(x.mean(0))
            self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def architecture(
    kind: str, input_shape: list[int], out_features: int, args: dict[str, Any]
) -> dict[str, Any]:
    """The architecture dict for ``model=`` ``kind`` and the op's arguments."""
    arch: dict[str, Any] = {"kind": kind, "input_shape": input_shape, "out_features": out_features}
    if kind == "mlp":
        arch.update(
            hidden=list(args["hidden"]), activation=args["activation"], dropout=args["dropout"]
        )
    elif kind == "cnn":
        arch.update(channels=[8, 16], hidden=64, dropout=args["dropout"])
    return arch


def build(arch: dict[str, Any]) -> nn.Sequential:
    """Build an untrained model from an architecture dict.

    Raises:
        ValueError: unknown kind or bad config.
    """
    kind = arch["kind"]
    shape = [int(v) for v in arch["input_shape"]]
    out = int(arch["out_features"])
    if kind in ("linear", "logistic"):
        return nn.Sequential(Standardize(shape[0]), nn.Linear(shape[0], out))
    if kind == "mlp":
        act = ACTIVATIONS[arch.get("activation", "relu")]
        layers: list[nn.Module] = [Standardize(shape[0])]
        width = shape[0]
        for size in arch["hidden"]:
            layers += [nn.Linear(width, int(size)), act()]
            if arch.get("dropout"):
                layers.append(nn.Dropout(float(arch["dropout"])))
            width = int(size)
        layers.append(nn.Linear(width, out))
        return nn.Sequential(*layers)
    if kind == "cnn":
        c1, c2 = (int(c) for c in arch.get("channels", [8, 16]))
        hidden = int(arch.get("hidden", 64))
        return nn.Sequential(
            Standardize(1),
            nn.Conv2d(shape[0], c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            # Adaptive pooling makes the head independent of the image size.
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(c2 * 16, hidden),
            nn.ReLU(),
            nn.Dropout(float(arch.get("dropout", 0.0))),
            nn.Linear(hidden, out),
        )
    raise ValueError(f"unknown model kind {kind!r}")


def standardizer(model: nn.Sequential) -> Standardize:
    """The model's first layer."""
    first = model[0]
    assert isinstance(first, Standardize)
    return first


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
