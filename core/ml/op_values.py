"""Value parsers of the ``ml`` op language: numbers, choices, lists, names, refs.

Split out of ``core.ml.ops`` (which holds the ops, their keys and the
command parser) to keep both modules short. Torch-free: the plan reader
checks every value at import. Each parser takes the text after ``key=`` and
returns a typed, JSON-ready value or raises :class:`OpError` saying why.
The ONNX opset range is read from the installed torch's
``torch/onnx/_constants.py`` *as text*, so checking a plan never imports torch.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

SYNTHETIC = ("moons", "blobs", "spirals", "regression", "shapes")
DATA_SUFFIXES = (".csv", ".parquet", ".pq")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

Value = Any
Parser = Callable[[str], Value]


class OpError(ValueError):
    """A value could not be parsed; the message says why."""


def int_in(lo: int | None = None, hi: int | None = None) -> Parser:
    """A parser of whole numbers in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise OpError("expected a whole number") from None
        _check_range(value, lo, hi)
        return value

    return parse


def float_in(lo: float | None = None, hi: float | None = None) -> Parser:
    """A parser of finite numbers in ``[lo, hi]``."""

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


def choice(*choices: str) -> Parser:
    """A parser accepting exactly one of ``choices``."""

    def parse(text: str) -> str:
        if text not in choices:
            raise OpError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def ints(text: str) -> list[int]:
    """``64;64``: sizes of at least 1."""
    parts = [p for p in re.split(r"[;,]", text) if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise OpError("expected whole numbers separated by ';'") from None
    if any(v < 1 for v in values):
        raise OpError("sizes must be at least 1")
    return values


def names(text: str) -> list[str]:
    """``a;b``: a list of non-empty words (``,`` also separates)."""
    return [p.strip() for p in re.split(r"[;,]", text) if p.strip()]


def text_value(text: str) -> str:
    """Any non-empty text."""
    if not text:
        raise OpError("must not be empty")
    return text


def boolean(text: str) -> bool:
    """``true|false|yes|no|on|off|1|0``."""
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


def ref(text: str) -> str:
    """``NAME[@VERSION]``, kept as text."""
    parse_ref(text)
    return text


def refs(text: str) -> list[str]:
    """``NAME[@V];NAME[@V];...``: at least one model reference."""
    found = names(text)
    if not found:
        raise OpError("expected at least one model")
    for one in found:
        parse_ref(one)
    return found


def data_value(text: str) -> str:
    """``data=``: a built-in set or a .csv/.parquet path."""
    if text in SYNTHETIC or text.lower().endswith(DATA_SUFFIXES):
        return text
    raise OpError(f"expected one of {', '.join(SYNTHETIC)} or a .csv/.parquet file")


def table_path(text: str) -> str:
    """A .csv or .parquet path."""
    if not text.lower().endswith(DATA_SUFFIXES):
        raise OpError("expected a .csv or .parquet file")
    return text


def device_value(text: str) -> str:
    """``auto|cpu|cuda|cuda:N|mps``."""
    if not DEVICE_RE.match(text):
        raise OpError("expected auto, cpu, cuda, cuda:N or mps")
    return text


#: Seeds torch accepts without overflow in every API we use (``manual_seed``,
#: ``Generator.manual_seed``): 0 <= seed < 2**63.
SEED_MAX = 2**63 - 1
#: Opsets assumed when the installed torch's constants cannot be read.
_OPSET_FALLBACK = (7, 30)


@functools.lru_cache(maxsize=1)
def onnx_opsets() -> tuple[int, int]:
    """The ONNX opsets the installed torch exporter supports, ``(min, max)``.

    Read from ``torch/onnx/_constants.py`` without importing torch (plan
    checks must stay light). When that file cannot be read the range is
    ``7..30`` and the exporter's own check, at run time, is the last word.
    """
    try:
        spec = importlib.util.find_spec("torch")  # a top-level find_spec imports nothing
        locations = list(spec.submodule_search_locations or []) if spec else []
        text = (Path(locations[0]) / "onnx" / "_constants.py").read_text(encoding="utf-8")
        low = re.search(r"^ONNX_MIN_OPSET\s*=\s*(\d+)", text, re.M)
        high = re.search(r"^ONNX_MAX_OPSET\s*=\s*(\d+)", text, re.M)
    except (ImportError, OSError, IndexError, ValueError):
        return _OPSET_FALLBACK
    if low is None or high is None:
        return _OPSET_FALLBACK
    return int(low.group(1)), int(high.group(1))


def check_opset(opset: int) -> int:
    """Check an ONNX opset against the installed torch exporter.

    Raises:
        OpError: outside the range torch can export.
    """
    low, high = onnx_opsets()
    if not low <= opset <= high:
        raise OpError(f"the installed torch exports ONNX opsets {low} to {high}")
    return opset


def opset(text: str) -> int:
    """Parser of ``opset=``: a whole number the installed torch can export."""
    return check_opset(int_in()(text))
