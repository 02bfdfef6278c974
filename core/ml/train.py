"""The ``train`` op: fit a model, report progress per epoch, save to the registry.

Imports torch: runs only inside an ML worker. Reproducibility: with ``seed=``
the generator for initial weights, dropout, the split and the batch order is
seeded, deterministic algorithms are on and the thread count is fixed
(``threads=``, else the task's ``cpus``), so the same command on the same CPU
gives bit-for-bit identical weights. Early stopping (``patience=``) watches
``val_loss`` and restores the best epoch's weights; the metrics are then the
best epoch's (``train_loss`` as it was in that epoch, ``val_*`` recomputed)
and ``best_epoch`` says which. A loss that becomes NaN or infinite fails the
task at once with :class:`DivergedError` and nothing is saved.
"""

from __future__ import annotations

import copy
import math
import random
import time
from typing import Any

import torch
from torch import nn

from core.ml import convert, data, models
from core.ml.context import OpContext
from core.ml.evaluate import loss_fn, metrics, resolve_device


class DivergedError(ValueError):
    """The loss became NaN or infinite: the model diverged."""


def _check_finite(loss: float, epoch: int, what: str = "loss") -> None:
    if not math.isfinite(loss):
        raise DivergedError(
            f"train: the {what} became {loss} at epoch {epoch} (the model diverged; try a lower lr)"
        )


def setup_torch(seed: int | None, threads: int) -> int:
    """Seed everything and fix the thread count; returns the seed used."""
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)
    return seed


def split(
    ds: data.Dataset, val_split: float, g: torch.Generator
) -> tuple[data.Dataset, data.Dataset | None]:
    """Shuffle and split into train and validation parts (None when ``val_split=0``)."""
    assert ds.y is not None
    order = torch.randperm(len(ds.x), generator=g)
    n_val = int(len(ds.x) * val_split)
    if n_val == 0:
        return ds, None
    parts = []
    for idx in (order[n_val:], order[:n_val]):
        part = copy.copy(ds)
        part.x, part.y = ds.x[idx], ds.y[idx]
        parts.append(part)
    return parts[0], parts[1]


def _optimizer(model: nn.Module, args: dict[str, Any]) -> torch.optim.Optimizer:
    if args["optimizer"] == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=args["lr"],
            momentum=args["momentum"],
            weight_decay=args["weight_decay"],
        )
    return torch.optim.AdamW(model.parameters(), lr=args["lr"], weight_decay=args["weight_decay"])


def _schedule(
    opt: torch.optim.Optimizer, args: dict[str, Any]
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if args["schedule"] == "step":
        return torch.optim.lr_scheduler.StepLR(
            opt, step_size=args["step_size"], gamma=args["gamma"]
        )
    if args["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args["epochs"])
    return None


def run_train(args: dict[str, Any], ctx: OpContext) -> dict[str, float]:
    """Train a model as the ``train`` op's arguments say.

    Returns:
        Final metrics (``train_loss``, ``val_loss``, ``val_accuracy`` or
        ``val_mse``/``val_mae``, ``epochs_run``, ``samples_per_s``,
        ``best_epoch`` under early stopping, and ``version`` when saved).

    Raises:
        DivergedError: the loss became NaN or infinite (nothing is saved).
    """
    seed = setup_torch(args.get("seed"), args.get("threads") or max(1, int(ctx.cpus)))
    device, note = resolve_device(args["device"], ctx.gpus)
    if note:
        ctx.log(note)
    ds = data.load(args, ctx.path)
    source = ctx.data_name(args["data"])  # the real path, not ${TEK_RUN_DIR}/...
    g = torch.Generator().manual_seed(seed)
    train_ds, val_ds = split(ds, args["val_split"], g)
    kind = args["model"]
    if kind == "logistic" and ds.task != "classification":
        raise data.DataError("model=logistic needs a classification target")
    arch = models.architecture(kind, ds.input_shape, ds.out_features, args)
    model = models.build(arch)
    models.standardizer(model).fit(train_ds.x)
    model.to(device)
    ctx.log(
        f"train {kind} on {source}: {len(train_ds.x)} train / "
        f"{0 if val_ds is None else len(val_ds.x)} val samples, {ds.task}, "
        f"{models.parameter_count(model)} parameters, device {device}, seed {seed}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    opt, criterion = _optimizer(model, args), loss_fn(ds.task)
    sched = _schedule(opt, args)
    x, y = train_ds.x.to(device), train_ds.y.to(device)  # type: ignore[union-attr]
    epochs, batch = args["epochs"], args["batch_size"]
    steps_per_epoch = (len(x) + batch - 1) // batch
    # (watched value, weights, epoch, that epoch's train_loss)
    best: tuple[float, dict[str, torch.Tensor], int, float] | None = None
    stale, step, final = 0, 0, {}
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        for idx in torch.split(torch.randperm(len(x), generator=g), batch):
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(x[idx]), y[idx])
            value = loss.item()
            # Checked per step: once NaN, every later step is wasted time.
            _check_finite(value, epoch)
            loss.backward()
            opt.step()
            total += value * len(idx)
            step += 1
        if sched is not None:
            sched.step()
        rate = len(x) / max(time.perf_counter() - t0, 1e-9)
        final = {"train_loss": total / len(x)}
        if val_ds is not None:
            final.update(
                {f"val_{k}": v for k, v in metrics(model, val_ds, device, batch * 8).items()}
            )
        _check_finite(final["train_loss"], epoch)
        _check_finite(final.get("val_loss", 0.0), epoch, "validation loss")
        # Key order is display order: the live view shows what fits.
        ctx.progress(
            epoch=epoch,
            epochs=epochs,
            loss=round(final["train_loss"], 6),
            **{k: round(v, 6) for k, v in final.items() if k != "train_loss"},
            samples_per_s=round(rate, 1),
            step=step,
            steps=steps_per_epoch * epochs,
            lr=opt.param_groups[0]["lr"],
            fraction=epoch / epochs,
        )
        ctx.log(f"epoch {epoch}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in final.items()))
        if args["patience"]:
            watched = final.get("val_loss", final["train_loss"])
            if best is None or watched < best[0] - args["min_delta"]:
                state = copy.deepcopy(model.state_dict())
                best, stale = (watched, state, epoch, final["train_loss"]), 0
            else:
                stale += 1
                if stale >= args["patience"]:
                    ctx.log(f"early stop after epoch {epoch}: no improvement for {stale} epochs")
                    break
    if best is not None:
        model.load_state_dict(best[1])
        final = {"train_loss": best[3], "best_epoch": float(best[2])}
        if val_ds is not None:
            final.update(
                {f"val_{k}": v for k, v in metrics(model, val_ds, device, batch * 8).items()}
            )
    final.update(
        epochs_run=float(epoch),
        seed=float(seed),
        samples_per_s=len(x) * epoch / max(time.perf_counter() - started, 1e-9),
    )
    if args.get("save"):
        config = {k: v for k, v in args.items() if k != "save"}
        config["data"] = source
        mv = convert.save(
            model,
            args["save"],
            ctx,
            architecture=arch,
            dataset=ds,
            device=str(device),
            metrics=final,
            config={**config, "seed": seed},
        )
        ctx.log(f"saved model {mv.ref} to {mv.path}")
        final["version"] = float(mv.version)
    return final
