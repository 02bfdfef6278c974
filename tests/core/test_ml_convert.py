"""Conversion: ONNX export checked in onnxruntime, state dicts in and out, no unpickling."""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.agents.ml import MlAgent
from core.errors import RegistryError
from core.ml import convert, data, models, registry
from core.ml.pool import WorkerPool
from tek_tui.cli import main
from tests.core.ml_helpers import run_op


@pytest.fixture(scope="module")
def agent() -> Iterator[MlAgent]:
    """One agent (and its warm workers) for the whole module."""
    a = MlAgent(WorkerPool(max_idle=1))
    yield a
    a.pool.close()


def _onnx_matches_torch(path: Path, mv: registry.ModelVersion, x: torch.Tensor) -> None:
    expected = convert.load(mv)(x).detach().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"input": x.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("train", "sample"),
    [
        ("train model=mlp data=moons n=200 epochs=2 activation=gelu seed=1 save=net", "moons"),
        ("train model=cnn data=shapes n=64 epochs=1 seed=1 save=net", "shapes"),
    ],
)
async def test_onnx_export_runs_in_onnxruntime_like_torch(
    agent: MlAgent, tmp_path: Path, train: str, sample: str
) -> None:
    outcome, _ = await run_op(agent, train, tmp_path)
    assert outcome.ok, outcome.reason
    outcome, _ = await run_op(agent, "convert model=net to=onnx out=net.onnx", tmp_path)
    assert outcome.ok, outcome.reason
    x = data.synthetic(sample, {"n": 37, "data_seed": 5}).x  # batch of 37: dynamic axis
    _onnx_matches_torch(tmp_path / "net.onnx", registry.resolve("net"), x)


async def test_state_dict_round_trip(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(agent, "train model=mlp data=moons n=200 epochs=1 seed=4 save=src", tmp_path)
    for fmt in ("pt", "safetensors"):
        outcome, _ = await run_op(agent, f"convert model=src to={fmt} out=w.{fmt}", tmp_path)
        assert outcome.ok, outcome.reason
        outcome, _ = await run_op(agent, f"convert src=w.{fmt} like=src save=copy", tmp_path)
        assert outcome.ok, outcome.reason
    original, copy = registry.resolve("src"), registry.resolve("copy")
    assert copy.version == 2 and copy.meta["parent"] == "src@1"
    assert copy.meta["sha256"] == original.meta["sha256"]
    assert copy.meta["classes"] == original.meta["classes"]


async def test_pickled_code_is_never_run(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(agent, "train model=logistic data=moons n=100 epochs=1 save=base", tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"0.mean": Evil()}))
    outcome, _ = await run_op(agent, "convert src=evil.pt like=base save=evil", tmp_path)
    assert not outcome.ok and "cannot read weights" in outcome.reason
    assert not marker.exists()
    with pytest.raises(RegistryError, match="weights do not fit"):
        torch.save({"nope": torch.zeros(1)}, tmp_path / "wrong.pt")
        convert._fit(
            models.build(dict(registry.resolve("base").meta["architecture"])),
            convert.read_state_dict(tmp_path / "wrong.pt"),
            "wrong.pt",
        )


def test_onnx_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = models.build({"kind": "linear", "input_shape": [2], "out_features": 1})
    with pytest.raises(
        RegistryError, match=r"needs the onnx extra: pip install 'task-exec-kit\[onnx\]'"
    ):
        convert.export_onnx(model, [2], tmp_path / "m.onnx")


async def test_tek_models_export(
    agent: MlAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_op(agent, "train model=mlp data=moons n=200 epochs=1 seed=1 save=cli", tmp_path)
    out = tmp_path / "cli.onnx"
    assert main(["models", "export", "cli", "-f", "onnx", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "cli@1" and summary["bytes"] == out.stat().st_size
    _onnx_matches_torch(out, registry.resolve("cli"), data.synthetic("moons", {"n": 10}).x)
    registry.resolve("cli").weights_path.write_bytes(b"junk")
    assert main(["models", "export", "cli", "-o", str(out)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


async def test_export_problems_are_one_line_and_exit_2(
    agent: MlAgent, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_op(agent, "train model=logistic data=moons n=100 epochs=1 seed=1 save=ex", tmp_path)
    folder = tmp_path / "out"
    folder.mkdir()
    cases = {
        ("--opset", "3", "-o", str(tmp_path / "x.onnx")): "the installed torch exports ONNX opsets",
        (
            "--opset",
            "99",
            "-o",
            str(tmp_path / "x.onnx"),
        ): "the installed torch exports ONNX opsets",
        ("-f", "pt", "-o", str(folder)): "it is a folder; give a file name",
        ("-f", "onnx", "-o", str(folder)): "it is a folder; give a file name",
    }
    for argv, needle in cases.items():
        assert main(["models", "export", "ex", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tek: ") and needle in err[0], (argv, err)
    assert not (tmp_path / "x.onnx").exists() and not list(folder.iterdir())


def test_exporter_failure_is_a_registry_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Unsupported onnx_opset_version: 3\nTorch IR graph at exception: ...")

    monkeypatch.setattr(torch.onnx, "export", broken)
    model = models.build({"kind": "linear", "input_shape": [2], "out_features": 1})
    with pytest.raises(RegistryError, match=r"^ONNX export \(opset 17\) failed: Unsupported"):
        convert.export_onnx(model, [2], tmp_path / "m.onnx")


async def test_junk_state_dict_gets_our_message(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(agent, "train model=logistic data=moons n=100 epochs=1 save=base2", tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a state dict at all")
    outcome, attempt = await run_op(agent, "convert src=junk.pt like=base2 save=junk", tmp_path)
    assert not outcome.ok
    assert outcome.reason == (
        f"cannot read weights {tmp_path / 'junk.pt'}: not a PyTorch state dict file "
        "(loaded with weights_only=True)"
    )
    assert "weights_only=False" not in "\n".join(attempt.lines)
