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
- ``evaluate model=NAME[@V] data=SET|PATH [target=]``: metrics on a labelled
  data set (``eval_accuracy``, ``eval_loss``, ``eval_mse`` ...; ``target``
  and ``features`` default to the model's); they are also recorded in that
  version's ``meta.json`` (``metrics`` and ``evaluations``).
- ``infer model=NAME[@V] data=SET|PATH out=PATH.csv|.parquet``: predictions.
- ``convert model=NAME[@V] to=onnx|pt|safetensors out=PATH`` exports;
  ``convert src=PATH.pt|.safetensors like=NAME[@V] save=NAME`` imports a state
  dict (``.pt`` loaded with ``weights_only=True``) with the architecture of
  ``like`` as a new registry model.
- ``select candidates=a;b;c metric=NAME [mode=auto|max|min] save=NAME``: copy
  the best candidate (latest versions unless ``@V`` is given) by a metric of
  its ``meta.json`` to a new version of ``save``; ``mode=auto`` minimises
  metrics whose name mentions loss, mse or mae and maximises the rest.

Built-in data sets: ``moons``, ``blobs``, ``spirals`` (2-D classification),
``regression`` (``dims`` inputs, noisy linear-plus-sine target) and
``shapes`` (``size``×``size`` grey images of circles, squares, triangles and
crosses, for ``model=cnn``).
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SYNTHETIC = ("moons", "blobs", "spirals", "regression", "shapes")
DATA_SUFFIXES = (".csv", ".parquet", ".pq")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

Value = Any
Parser = Callable[[str], Value]


class OpError(ValueError):
    """A value could not be parsed; the message says why."""


def _int(lo: int | None = None, hi: int | None = None) -> Parser:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise OpError("expected a whole number") from None
        _check_range(value, lo, hi)
        return value

    return parse


def _float(lo: float | None = None, hi: float | None = None) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise OpError("expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise OpError("expected a finite number")
        _check_range(value, lo, hi)
        return value

    return parse


def _check_range(value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise OpError(f"must be at least {lo}")
    if hi is not None and value > hi:
        raise OpError(f"must be at most {hi}")


def _choice(*choices: str) -> Parser:
    def parse(text: str) -> str:
        if text not in choices:
            raise OpError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _ints(text: str) -> list[int]:
    parts = [p for p in re.split(r"[;,]", text) if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise OpError("expected whole numbers separated by ';'") from None
    if any(v < 1 for v in values):
        raise OpError("sizes must be at least 1")
    return values


def _names(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[;,]", text) if p.strip()]


def _text(text: str) -> str:
    if not text:
        raise OpError("must not be empty")
    return text


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise OpError("expected true or false")


def check_name(text: str) -> str:
    """Validate a registry model name (``[A-Za-z0-9_.-]+``, no ``.``/``..``).

    Raises:
        OpError: the name could leave the registry or has other characters.
    """
    if not NAME_RE.match(text) or text.startswith(".") or len(text) > 100:
        raise OpError("model names are 1-100 of A-Z a-z 0-9 _ . - and do not start with '.'")
    return text


def parse_ref(text: str) -> tuple[str, int | None]:
    """Split ``NAME[@VERSION]`` into a checked name and a version (None = latest).

    Raises:
        OpError: bad name or version.
    """
    name, sep, version = text.partition("@")
    check_name(name)
    if not sep or version == "latest":
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise OpError("version must be a positive whole number or 'latest'")
    return name, int(version)


def _ref(text: str) -> str:
    parse_ref(text)
    return text


def _refs(text: str) -> list[str]:
    refs = _names(text)
    if len(refs) < 1:
        raise OpError("expected at least one model")
    for ref in refs:
        parse_ref(ref)
    return refs


def _data(text: str) -> str:
    if text in SYNTHETIC or text.lower().endswith(DATA_SUFFIXES):
        return text
    raise OpError(f"expected one of {', '.join(SYNTHETIC)} or a .csv/.parquet file")


def _table_path(text: str) -> str:
    if not text.lower().endswith(DATA_SUFFIXES):
        raise OpError("expected a .csv or .parquet file")
    return text


def _device(text: str) -> str:
    if not DEVICE_RE.match(text):
        raise OpError("expected auto, cpu, cuda, cuda:N or mps")
    return text


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
    "data": Key(_data),
    "target": Key(_text),
    "features": Key(_names),
    "task": Key(_choice("auto", "classification", "regression"), "auto"),
    "n": Key(_int(8, 10_000_000), 1000),
    "noise": Key(_float(0.0, 10.0), 0.2),
    "classes": Key(_int(2, 100), 3),
    "dims": Key(_int(1, 10_000), 4),
    "data_seed": Key(_int(0), 0),
    "size": Key(_int(8, 128), 16),
}
_RUN_KEYS: dict[str, Key] = {
    "device": Key(_device, "auto"),
    "threads": Key(_int(1, 256)),
    "batch_size": Key(_int(1, 1_000_000), 64),
}


def _check_table(args: dict[str, Value]) -> list[str]:
    data = args.get("data")
    if isinstance(data, str) and data not in SYNTHETIC and not args.get("target"):
        return ["target: a data file needs target=COLUMN"]
    return []


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
            "kind": Key(_choice(*SYNTHETIC)),
            "out": Key(_table_path),
            **{k: _DATA_KEYS[k] for k in ("n", "noise", "classes", "dims", "data_seed", "size")},
        },
        required=("kind", "out"),
    ),
    "train": OpSpec(
        {
            "model": Key(_choice("linear", "logistic", "mlp", "cnn")),
            **_DATA_KEYS,
            **_RUN_KEYS,
            "hidden": Key(_ints, [64, 64]),
            "activation": Key(_choice("relu", "tanh", "gelu", "sigmoid"), "relu"),
            "dropout": Key(_float(0.0, 0.95), 0.0),
            "optimizer": Key(_choice("sgd", "adamw"), "adamw"),
            "lr": Key(_float(1e-9, 100.0), 0.01),
            "momentum": Key(_float(0.0, 1.0), 0.9),
            "weight_decay": Key(_float(0.0, 10.0), 0.0),
            "schedule": Key(_choice("none", "step", "cosine"), "none"),
            "step_size": Key(_int(1), 10),
            "gamma": Key(_float(0.0, 1.0), 0.5),
            "epochs": Key(_int(1, 100_000), 20),
            "val_split": Key(_float(0.0, 0.9), 0.2),
            "patience": Key(_int(0), 0),
            "min_delta": Key(_float(0.0), 0.0),
            "seed": Key(_int(0)),
            "save": Key(check_name),
        },
        required=("model", "data"),
        check=_check_train,
    ),
    "evaluate": OpSpec(
        {"model": Key(_ref), **_DATA_KEYS, **_RUN_KEYS},
        required=("model", "data"),
    ),
    "infer": OpSpec(
        {"model": Key(_ref), **_DATA_KEYS, **_RUN_KEYS, "out": Key(_table_path)},
        required=("model", "data", "out"),
    ),
    "convert": OpSpec(
        {
            "model": Key(_ref),
            "to": Key(_choice("onnx", "pt", "safetensors")),
            "out": Key(_text),
            "src": Key(_text),
            "like": Key(_ref),
            "save": Key(check_name),
            "opset": Key(_int(7, 30), 17),
        },
        check=_check_convert,
    ),
    "select": OpSpec(
        {
            "candidates": Key(_refs),
            "metric": Key(_text),
            "mode": Key(_choice("auto", "max", "min"), "auto"),
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
