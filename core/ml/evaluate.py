"""The ``evaluate`` and ``infer`` ops, plus the metrics and device choice they share.

Imports torch: runs only inside an ML worker. Classification metrics are
``loss`` (cross-entropy) and ``accuracy``; regression metrics are ``loss``
(MSE), ``mse``, ``mae`` and ``r2``. ``evaluate`` reports them as ``eval_*``
and records them in the model version's ``meta.json`` (merged into
``metrics``, appended to ``evaluations`` with the data and the run/task), so
``select`` can compare candidates by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import torch
from torch import nn

from core.ml import convert, data, registry
from core.ml.context import OpContext
from core.ml.device import choose_device


def resolve_device(spec: str, gpus: Sequence[int]) -> tuple[torch.device, str]:
    """The torch device for ``device=spec`` on this machine (see ``core.ml.device``)."""
    mps = getattr(torch.backends, "mps", None)
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name, note = choose_device(spec, gpus, cuda_count, bool(mps and mps.is_available()))
    return torch.device(name), note


def loss_fn(task: str) -> nn.Module:
    """Cross-entropy for classification, MSE for regression."""
    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch: int) -> torch.Tensor:
    """Model outputs for every row of ``x`` (on the CPU), in eval mode, batched."""
    model.eval()
    outs = [model(part.to(device)).cpu() for part in torch.split(x, max(batch, 1))]
    return torch.cat(outs) if outs else torch.empty(0)


def metrics(
    model: nn.Module, ds: data.Dataset, device: torch.device, batch: int
) -> dict[str, float]:
    """Loss and task metrics of ``model`` on a labelled data set."""
    assert ds.y is not None
    out = predict(model, ds.x, device, batch)
    result = {"loss": float(loss_fn(ds.task)(out, ds.y))}
    if ds.task == "classification":
        result["accuracy"] = float((out.argmax(1) == ds.y).float().mean())
    else:
        err = out - ds.y
        result["mse"] = float((err**2).mean())
        result["mae"] = float(err.abs().mean())
        var = float(((ds.y - ds.y.mean()) ** 2).mean())
        result["r2"] = 1.0 - result["mse"] / var if var > 0 else 0.0
    return result


def _load(
    args: dict[str, Any], ctx: OpContext
) -> tuple[registry.ModelVersion, nn.Module, data.Dataset, torch.device]:
    torch.set_num_threads(args.get("threads") or max(1, int(ctx.cpus)))
    device, note = resolve_device(args["device"], ctx.gpus)
    if note:
        ctx.log(note)
    mv = ctx.resolve(args["model"])
    model = convert.load(mv).to(device)
    ds = data.load(args, ctx.path, dict(mv.meta))
    return mv, model, ds, device


def run_evaluate(args: dict[str, Any], ctx: OpContext) -> dict[str, float]:
    """Evaluate a registry model on a labelled data set.

    Returns:
        ``eval_*`` metrics and ``samples``.
    """
    mv, model, ds, device = _load(args, ctx)
    if ds.y is None:
        raise data.DataError(f"data {args['data']} has no target column to evaluate against")
    result = {f"eval_{k}": v for k, v in metrics(model, ds, device, args["batch_size"]).items()}
    source = ctx.data_name(args["data"])  # the real path, not ${TEK_RUN_DIR}/...
    registry.update_meta(
        mv,
        {
            "metrics": result,
            "evaluations": [
                {"data": source, "samples": len(ds.x), "metrics": result, **ctx.lineage()}
            ],
        },
    )
    ctx.log(
        f"evaluate {mv.ref} on {source} ({len(ds.x)} samples): "
        + " ".join(f"{k}={v:.4f}" for k, v in result.items())
    )
    return {**result, "samples": float(len(ds.x))}


def run_infer(args: dict[str, Any], ctx: OpContext) -> dict[str, float]:
    """Predict for every row of a data set and write a CSV or Parquet file.

    The output has the input's feature columns (not for images), ``prediction``
    and, for classification, ``prob_<class>`` per class.
    """
    mv, model, ds, device = _load(args, ctx)
    out = predict(model, ds.x, device, args["batch_size"])
    columns: dict[str, Any] = {}
    if ds.x.dim() == 2:
        columns.update({name: ds.x[:, i].numpy() for i, name in enumerate(ds.features)})
    if ds.task == "classification":
        probs = out.softmax(1)
        classes = mv.meta.get("classes") or [str(i) for i in range(out.shape[1])]
        picked = [classes[i] for i in probs.argmax(1).tolist()]
        columns["prediction"] = (
            [int(c) for c in picked] if mv.meta.get("class_dtype") == "int" else picked
        )
        columns.update({f"prob_{c}": probs[:, i].numpy() for i, c in enumerate(classes)})
    else:
        columns["prediction"] = out[:, 0].numpy()
    path = ctx.path(args["out"])
    data.write_table(pl.DataFrame(columns), path)
    ctx.log(f"infer {mv.ref}: {len(out)} predictions written to {path}")
    return {"rows": float(len(out))}
