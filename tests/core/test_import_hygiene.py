"""Each ``core`` module, imported alone in a fresh interpreter, leaves textual and torch out.

Modules are found with ``pkgutil``, so a new module is covered the day it is
added. The only exceptions are the ML worker's own modules, which the ML
package documents as imported inside worker processes only (``core/ml/__init__``):
they may import torch, never textual.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import core
from tests.conftest import REPO

#: Worker-only modules (see ``core/ml/__init__.py``): torch is their job.
TORCH_ALLOWED = frozenset(
    {"core.ml.models", "core.ml.data", "core.ml.train", "core.ml.evaluate", "core.ml.convert"}
)

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'torch'})))
"""


def core_modules() -> list[str]:
    """Every module and package under ``core``."""
    found = ["core"]
    for info in pkgutil.walk_packages(core.__path__, "core."):
        found.append(info.name)
    return sorted(found)


def _heavy_imports(modules: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules.split()], capture_output=True, text=True,
        cwd=REPO, env=env, timeout=120,
    )
    assert out.returncode == 0, f"importing {modules} failed:\n{out.stderr}"
    heavy: list[str] = json.loads(out.stdout)
    return heavy


def test_modules_are_discovered() -> None:
    modules = core_modules()
    assert {"core.plan", "core.plan_io", "core.dag", "core.agents.registry"} <= set(modules)


def test_no_core_module_imports_textual_or_torch() -> None:
    modules = [m for m in core_modules() if m not in TORCH_ALLOWED]
    # One fresh interpreter per module, a few at a time: sys.modules of a
    # shared interpreter would hide which module pulled a package in. The
    # worker-only modules share one (each would pay torch's import again),
    # since textual is banned from all of them alike.
    groups = [*modules, " ".join(sorted(TORCH_ALLOWED))]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = dict(zip(groups, pool.map(_heavy_imports, groups), strict=True))
    offenders = {
        group: heavy for group, heavy in results.items()
        if set(heavy) - ({"torch"} if group == groups[-1] else set())
    }
    assert offenders == {}
