"""The ``ml`` agent's command language: ``OP key=value ...``, parsed without torch.

The plan reader calls :func:`validate_command` for every ``ml`` task at import,
so an unknown op, an unknown key, a bad value or a missing key fails before
anything runs. :func:`parse_command` returns the op and a complete dict of
typed, JSON-ready arguments (defaults filled in) that the worker executes.
Values with spaces are quoted the shell way (``out="my dir/p.csv"``); lists
are ``;``-separated (``hidden=64;64``). ``$VAR`` / ``${VAR}`` in path values
expand from the task's environment when the task runs (the agent adds
``TEK_RUN_DIR``, the run's own folder under ``$TEK_HOME/runs``).

Ops:

- ``dataset kind=moons|blobs|spirals|regression|shapes out=PATH [n= noise=
  classes= dims= data_seed= size=]``: write a synthetic data set to CSV or Parquet.
- ``train model=linear|logistic|mlp|cnn data=SET|PATH [target= features=a;b
  hidden=64;64 activation=relu|tanh|gelu|sigmoid dropout= optimizer=sgd|adamw
  lr= momentum= weight_decay= schedule=none|step|cosine step_size= gamma=
  epochs= batch_size= val_split= patience= min_delta= seed= device= threads=
  save=NAME]``: fit a model; ``save`` adds the next registry version.
  ``features`` (never the target) applies to data files only. ``seed`` and
  ``data_seed`` are ``0 <= seed < 2**63``. A loss that becomes NaN or
  infinite fails the task (the model diverged) and saves nothing.
- ``evaluate model=NAME[@V] data=SET|PATH [target=]``: metrics on a labelled
  data set (``eval_accuracy``, ``eval_loss``, ``eval_mse`` ...; ``target``
  and ``features`` default to the model's); they are also recorded in that
  version's ``meta.json`` (``metrics`` and ``evaluations``).
- ``infer model=NAME[@V] data=SET|PATH out=PATH.csv|.parquet``: predictions.
- ``convert model=NAME[@V] to=onnx|pt|safetensors out=PATH [opset=17]`` exports
  (``opset`` within what the installed torch exporter supports, checked at import);
  ``convert src=PATH.pt|.safetensors like=NAME[@V] save=NAME`` imports a state
  dict (``.pt`` loaded with ``weights_only=True``) with the architecture of
  ``like`` as a new registry model.
- ``select candidates=a;b;c metric=NAME [mode=auto|max|min] save=NAME``: copy
  the best candidate (latest versions unless ``@V`` is given) by a metric of
  its ``meta.json`` to a new version of ``save``; ``mode=auto`` minimises
  metrics whose name mentions loss, mse or mae and maximises the rest.
  Candidates whose metric is missing, NaN or infinite are skipped (the log
  says which); the op fails when none is left.

``model=NAME`` without ``@V`` (also ``like=`` and ``candidates=``) means,
inside a run, the latest version of NAME *this run* saved (``run_id`` in
``meta.json``), when it saved one; otherwise the latest version overall. So
two runs that train and then evaluate or select the same name at the same
time each use their own models. ``NAME@latest`` is always the newest overall.

Built-in data sets: ``moons`` and ``spirals`` (2-D classification), ``blobs``
(``classes`` Gaussian clusters in ``dims`` dimensions, default 4; the centres
depend only on ``classes`` and ``dims``, ``data_seed`` draws the samples, so
a held-out draw is the same problem), ``regression`` (``dims`` inputs, noisy
linear-plus-sine target) and
``shapes`` (``size``×``size`` grey images of circles, squares, triangles and
crosses, for ``model=cnn``).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from core.ml.op_values import (
    SEED_MAX,
    SYNTHETIC,
    OpError,
    Parser,
    Value,
    check_name,
    choice,
    data_value,
    device_value,
    float_in,
    int_in,
    ints,
    names,
    opset,
    parse_ref,
    ref,
    refs,
    table_path,
    text_value,
)

__all__ = [
    "OPS",
    "CommandError",
    "MlCommand",
    "OpError",
    "check_name",
    "parse_command",
    "parse_ref",
    "validate_command",
]


@dataclass(frozen=True)
class Key:
    """One ``key=value`` an op accepts: its parser and default (None = no default)."""

    parse: Parser
    default: Value = None


@dataclass(frozen=True)
class OpSpec:
    """An op: its keys and which of them must be given."""

    keys: dict[str, Key]
    required: tuple[str, ...] = ()
    check: Callable[[dict[str, Value]], list[str]] = field(default=lambda args: [])


_DATA_KEYS: dict[str, Key] = {
    "data": Key(data_value),
    "target": Key(text_value),
    "features": Key(names),
    "task": Key(choice("auto", "classification", "regression"), "auto"),
    "n": Key(int_in(8, 10_000_000), 1000),
    "noise": Key(float_in(0.0, 10.0), 0.2),
    "classes": Key(int_in(2, 100), 3),
    "dims": Key(int_in(1, 10_000), 4),
    "data_seed": Key(int_in(0, SEED_MAX), 0),
    "size": Key(int_in(8, 128), 16),
}
_RUN_KEYS: dict[str, Key] = {
    "device": Key(device_value, "auto"),
    "threads": Key(int_in(1, 256)),
    "batch_size": Key(int_in(1, 1_000_000), 64),
}


def _check_features(args: dict[str, Value]) -> list[str]:
    """``features=`` names columns of a data file, never the target."""
    data, target, features = args.get("data"), args.get("target"), args.get("features")
    if not features:
        return []
    if data in SYNTHETIC:
        # A built-in set has fixed columns; silently ignoring the choice would
        # train on other features than the user asked for.
        return [f"features: data={data} is a built-in set; features= applies to data files only"]
    if target is not None and target in features:
        return [f"features: the target column {target!r} cannot also be a feature"]
    return []


def _check_table(args: dict[str, Value]) -> list[str]:
    data = args.get("data")
    problems = _check_features(args)
    if isinstance(data, str) and data not in SYNTHETIC and not args.get("target"):
        problems.append("target: a data file needs target=COLUMN")
    return problems


def _check_train(args: dict[str, Value]) -> list[str]:
    problems = _check_table(args)
    if args.get("model") == "cnn" and args.get("data") != "shapes":
        problems.append("model: cnn trains on image data (data=shapes)")
    if args.get("model") != "cnn" and args.get("data") == "shapes":
        problems.append("data: shapes is an image set; use model=cnn")
    return problems


def _check_convert(args: dict[str, Value]) -> list[str]:
    exporting = args.get("model") is not None
    importing = args.get("src") is not None
    if exporting == importing:
        return ["convert takes either model= to= out= (export) or src= like= save= (import)"]
    need = ("to", "out") if exporting else ("like", "save")
    mode = "exporting" if exporting else "importing"
    return [f"{k}: required when {mode}" for k in need if args.get(k) is None]


OPS: dict[str, OpSpec] = {
    "dataset": OpSpec(
        {
            "kind": Key(choice(*SYNTHETIC)),
            "out": Key(table_path),
            **{k: _DATA_KEYS[k] for k in ("n", "noise", "classes", "dims", "data_seed", "size")},
        },
        required=("kind", "out"),
    ),
    "train": OpSpec(
        {
            "model": Key(choice("linear", "logistic", "mlp", "cnn")),
            **_DATA_KEYS,
            **_RUN_KEYS,
            "hidden": Key(ints, [64, 64]),
            "activation": Key(choice("relu", "tanh", "gelu", "sigmoid"), "relu"),
            "dropout": Key(float_in(0.0, 0.95), 0.0),
            "optimizer": Key(choice("sgd", "adamw"), "adamw"),
            "lr": Key(float_in(1e-9, 100.0), 0.01),
            "momentum": Key(float_in(0.0, 1.0), 0.9),
            "weight_decay": Key(float_in(0.0, 10.0), 0.0),
            "schedule": Key(choice("none", "step", "cosine"), "none"),
            "step_size": Key(int_in(1), 10),
            "gamma": Key(float_in(0.0, 1.0), 0.5),
            "epochs": Key(int_in(1, 100_000), 20),
            "val_split": Key(float_in(0.0, 0.9), 0.2),
            "patience": Key(int_in(0), 0),
            "min_delta": Key(float_in(0.0), 0.0),
            "seed": Key(int_in(0, SEED_MAX)),
            "save": Key(check_name),
        },
        required=("model", "data"),
        check=_check_train,
    ),
    "evaluate": OpSpec(
        {"model": Key(ref), **_DATA_KEYS, **_RUN_KEYS},
        required=("model", "data"),
        check=_check_features,
    ),
    "infer": OpSpec(
        {"model": Key(ref), **_DATA_KEYS, **_RUN_KEYS, "out": Key(table_path)},
        required=("model", "data", "out"),
        check=_check_features,
    ),
    "convert": OpSpec(
        {
            "model": Key(ref),
            "to": Key(choice("onnx", "pt", "safetensors")),
            "out": Key(text_value),
            "src": Key(text_value),
            "like": Key(ref),
            "save": Key(check_name),
            "opset": Key(opset, 17),
        },
        check=_check_convert,
    ),
    "select": OpSpec(
        {
            "candidates": Key(refs),
            "metric": Key(text_value),
            "mode": Key(choice("auto", "max", "min"), "auto"),
            "save": Key(check_name),
        },
        required=("candidates", "metric", "save"),
    ),
}


@dataclass(frozen=True)
class MlCommand:
    """A parsed ``ml`` command: the op and its typed arguments, defaults included."""

    op: str
    args: dict[str, Value]


class CommandError(ValueError):
    """An ``ml`` command is invalid; ``problems`` has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_command(command: str) -> MlCommand:
    """Parse and check one ``ml`` command line.

    Args:
        command: e.g. ``"train model=mlp data=moons epochs=5 save=m"``.

    Returns:
        The op and its arguments, every key of the op present (None when unset
        and without a default).

    Raises:
        CommandError: with every problem found, one line each.
    """
    try:
        words = shlex.split(command, comments=False)
    except ValueError as exc:
        raise CommandError([f"cannot split command: {exc}"]) from None
    if not words:
        raise CommandError(["empty command; expected OP key=value ..."])
    op, *pairs = words
    spec = OPS.get(op)
    if spec is None:
        raise CommandError([f"unknown op {op!r}; expected one of {', '.join(OPS)}"])
    problems: list[str] = []
    given: dict[str, Value] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            problems.append(f"{pair!r} is not key=value")
        elif key not in spec.keys:
            problems.append(f"{op}: unknown key {key!r}; known: {', '.join(sorted(spec.keys))}")
        elif key in given:
            problems.append(f"{key}: given twice")
        else:
            try:
                given[key] = spec.keys[key].parse(text)
            except OpError as exc:
                problems.append(f"{key}: {exc} (got {text!r})")
    bad = {p.partition(":")[0] for p in problems}
    problems += [
        f"{op}: missing required key {k}=" for k in spec.required if k not in given and k not in bad
    ]
    # Defaults are copied so that no caller can mutate a shared list default.
    args = {k: given[k] if k in given else copy.copy(key.default) for k, key in spec.keys.items()}
    if not problems:
        problems += spec.check(args)
    if problems:
        raise CommandError(problems)
    return MlCommand(op, args)


def validate_command(command: str) -> list[str]:
    """Problems with an ``ml`` command, one line each (empty when it is fine)."""
    try:
        parse_command(command)
    except CommandError as exc:
        return exc.problems
    return []
