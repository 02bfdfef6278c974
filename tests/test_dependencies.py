"""Every package tek imports is one it declares: a plain install must run every command.

The test suite installs the ``dev`` extra, whose onnxruntime brings numpy
along; without this check a package only the extras install (numpy was one)
passes every test and fails on a user's machine. Imports guarded by
``except ImportError`` are optional and may come from an extra.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = {"core", "tek_tui", "tests"}
#: Packages tek needs without importing them by name: module -> what uses it.
IMPLICIT = {"numpy": r"\.to_numpy\(|\.numpy\(\)|from_numpy"}  # polars <-> torch in core/ml


def _guarded(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside a ``try`` that handles ImportError."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is not None and "ImportError" in ast.unparse(h.type) for h in node.handlers
        ):
            for inner in node.body:
                lines.update(n.lineno for n in ast.walk(inner) if isinstance(n, ast.Import | ast.ImportFrom))
    return lines


def _third_party_imports() -> dict[str, str]:
    """Top-level module -> first file importing it unguarded, for tek's own packages."""
    found: dict[str, str] = {}
    for package in ("core", "tek_tui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            guarded = _guarded(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno in guarded:
                    continue
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in OWN and top not in sys.stdlib_module_names and not top.startswith("_"):
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _base_requirements() -> set[str]:
    names = set()
    for req in metadata.requires("task-exec-kit") or []:
        if "extra ==" not in req:
            names.add(re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_every_unguarded_import_is_a_declared_dependency() -> None:
    dists = metadata.packages_distributions()
    declared = _base_requirements()
    missing = {
        module: where
        for module, where in _third_party_imports().items()
        if not {d.lower().replace("_", "-") for d in dists.get(module, [module])} & declared
    }
    assert missing == {}, f"imported but not in [project] dependencies: {missing}"


def test_packages_used_without_an_import_are_declared_too() -> None:
    ml_code = "\n".join(p.read_text() for p in (ROOT / "core" / "ml").rglob("*.py"))
    for module, use in IMPLICIT.items():
        assert re.search(use, ml_code), f"{module} is no longer used: drop it from IMPLICIT"
        assert module in _base_requirements(), f"{module} is used ({use}) but not declared"
