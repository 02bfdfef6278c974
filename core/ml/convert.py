"""Weights in and out: registry save/load, safetensors <-> state dict, ONNX export.

Imports torch: runs inside an ML worker, or lazily in ``tek models export``.
Nothing is ever unpickled: registry weights load with safetensors, and a
``.pt`` file only through ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers. Loading checks the sha256 in
``meta.json`` first, so a corrupt or truncated file is a clear error, not a
crash inside safetensors.

ONNX export uses torch's TorchScript-based exporter (``dynamo=False``): the
newer exporter needs ``onnxscript``, which the ``onnx`` extra does not ship.
The exported graph has one input ``input`` and one output ``output`` with a
dynamic batch axis; it includes the standardisation layer, so it takes raw
features. Every export problem (an opset the installed exporter lacks, an
output path that is a folder, a failed write, an exporter error) is one
:class:`~core.errors.RegistryError` line, never a traceback.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from core.errors import RegistryError
from core.ml import models, registry
from core.ml.op_values import OpError, check_opset

if TYPE_CHECKING:
    from core.ml.context import OpContext
    from core.ml.data import Dataset


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save(
    model: nn.Module,
    name: str,
    ctx: OpContext,
    *,
    architecture: dict[str, Any],
    dataset: Dataset | None = None,
    device: str = "cpu",
    metrics: dict[str, float] | None = None,
    config: dict[str, Any] | None = None,
    parent: str | None = None,
    extra: dict[str, Any] | None = None,
) -> registry.ModelVersion:
    """Store a model as the next version of ``name`` (weights + ``meta.json``)."""
    shape = list(architecture["input_shape"])
    meta = registry.new_meta(
        architecture=architecture,
        input_shape=[None, *shape],
        output_shape=[None, int(architecture["out_features"])],
        metrics=metrics or {},
        config=config or {},
        torch_version=torch.__version__,
        device=device,
        parent=parent,
        parameters=models.parameter_count(model),
        **ctx.lineage(),
    )
    if dataset is not None:
        meta.update(
            task=dataset.task,
            features=dataset.features,
            target=dataset.target,
            classes=dataset.classes,
            class_dtype=dataset.class_dtype,
        )
    meta.update(extra or {})
    with registry.open_staging() as staging:
        save_file(_state(model), str(staging / registry.WEIGHTS_FILE))
        return registry.publish(name, staging, meta)


def load(mv: registry.ModelVersion) -> nn.Sequential:
    """Rebuild a registry version's model with its weights (checked by sha256).

    Raises:
        RegistryError: corrupt/truncated weights, or weights that do not fit
            the architecture in ``meta.json``.
    """
    registry.verify_weights(mv)
    try:
        state = load_file(str(mv.weights_path))
    except (SafetensorError, OSError) as exc:
        raise RegistryError(f"model {mv.ref}: cannot read weights: {exc}") from None
    return _fit(models.build(dict(mv.meta["architecture"])), state, mv.ref)


def _fit(model: nn.Sequential, state: dict[str, torch.Tensor], what: str) -> nn.Sequential:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise RegistryError(
            f"{what}: weights do not fit the architecture: {' '.join(first[:2])}"
        ) from None
    model.eval()
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pt`` state dict, never unpickling code.

    Raises:
        RegistryError: missing, unreadable or not a flat dict of tensors.
    """
    if not path.is_file():
        raise RegistryError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises several types
            raise RegistryError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        # torch's own message advises weights_only=False, i.e. running the
        # file's pickled code: never what tek does, so never what it says.
        raise RegistryError(
            f"cannot read weights {path}: not a PyTorch state dict file "
            "(loaded with weights_only=True)"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RegistryError(f"{path} is not a state dict of tensors")
    return state


def export(mv: registry.ModelVersion, to: str, out: Path, opset: int = 17) -> Path:
    """Write a registry version as ``onnx``, ``pt`` (state dict) or ``safetensors``.

    Raises:
        RegistryError: bad weights, an opset the installed exporter lacks,
            ``out`` is a folder or cannot be written, the exporter failed, or
            ONNX asked for without the ``onnx`` extra.
    """
    if to not in ("onnx", "pt", "safetensors"):
        raise RegistryError(f"unknown export format {to!r}; expected onnx, pt or safetensors")
    if to == "onnx":
        try:
            check_opset(opset)
        except OpError as exc:
            raise RegistryError(f"cannot export {mv.ref} with opset {opset}: {exc}") from None
    if out.is_dir():
        raise RegistryError(f"cannot export {mv.ref} to {out}: it is a folder; give a file name")
    model = load(mv)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if to == "safetensors":
            shutil.copyfile(mv.weights_path, out)
        elif to == "pt":
            torch.save(_state(model), out)
        else:
            export_onnx(model, list(mv.meta["architecture"]["input_shape"]), out, opset)
    except OSError as exc:
        raise RegistryError(f"cannot export {mv.ref} to {out}: {exc.strerror or exc}") from None
    return out


def export_onnx(model: nn.Module, input_shape: list[int], out: Path, opset: int = 17) -> None:
    """Export to ONNX with a dynamic batch axis, then check the file with ``onnx``.

    Raises:
        RegistryError: the ``onnx`` package is not installed, or the export failed.
        OSError: the file could not be written.
    """
    try:
        import onnx
    except ImportError:
        raise RegistryError(
            "ONNX export needs the onnx extra: pip install 'task-exec-kit[onnx]'"
        ) from None
    sample = torch.zeros(1, *input_shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
            torch.onnx.export(
                model.eval(),
                (sample,),
                str(out),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        onnx.checker.check_model(onnx.load(str(out)))
    except OSError:
        raise  # export() words these (permissions, disk full)
    except Exception as exc:  # the exporter raises many types, with long dumps
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RegistryError(f"ONNX export (opset {opset}) failed: {first}") from None


def run_convert(args: dict[str, Any], ctx: OpContext) -> dict[str, float]:
    """The ``convert`` op: export a registry version, or import a state dict."""
    if args.get("model"):
        mv = ctx.resolve(args["model"])
        out = export(mv, args["to"], ctx.path(args["out"]), args["opset"])
        ctx.log(f"convert {mv.ref} -> {args['to']}: {out} ({out.stat().st_size} bytes)")
        return {"bytes": float(out.stat().st_size)}
    like = ctx.resolve(args["like"])
    src = ctx.path(args["src"])
    model = _fit(models.build(dict(like.meta["architecture"])), read_state_dict(src), str(src))
    keep = {
        k: like.meta[k]
        for k in ("task", "features", "target", "classes", "class_dtype")
        if k in like.meta
    }
    mv = save(
        model,
        args["save"],
        ctx,
        architecture=dict(like.meta["architecture"]),
        parent=like.ref,
        extra={**keep, "imported_from": str(src)},
    )
    ctx.log(f"convert {src} (architecture of {like.ref}) -> {mv.ref}")
    return {"version": float(mv.version)}
