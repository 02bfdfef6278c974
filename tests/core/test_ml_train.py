"""Training, evaluation and inference through the real ``ml`` agent and its workers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from core.agents.ml import MlAgent
from core.ml import registry
from core.ml.pool import WorkerPool
from core.paths import models_dir
from tests.core.ml_helpers import run_op


@pytest.fixture(scope="module")
def agent() -> Iterator[MlAgent]:
    """One agent (and its warm workers) for the whole module."""
    a = MlAgent(WorkerPool(max_idle=2))
    yield a
    a.pool.close()


async def test_mlp_on_moons_learns(agent: MlAgent, tmp_path: Path) -> None:
    outcome, attempt = await run_op(
        agent, "train model=mlp data=moons n=800 epochs=12 lr=0.01 seed=1 save=moons", tmp_path
    )
    assert outcome.ok, outcome.reason
    losses = [p["loss"] for p in attempt.progress]
    assert len(losses) == 12 and losses[-1] < losses[0] * 0.5
    assert outcome.metrics["val_accuracy"] >= 0.95
    last = attempt.progress[-1]
    assert (last["epoch"], last["epochs"], last["fraction"]) == (12, 12, 1.0)
    assert last["step"] == last["steps"] and last["samples_per_s"] > 0
    assert {"val_loss", "val_accuracy", "lr"} <= set(last)
    assert any("no GPU assigned" in line for line in attempt.lines)  # auto fell back, and said so


async def test_logistic_on_blobs_with_sgd_and_schedule(agent: MlAgent, tmp_path: Path) -> None:
    command = "train model=logistic data=blobs classes=4 n=600 optimizer=sgd lr=0.1 schedule=step step_size=3 epochs=8 seed=2"
    outcome, attempt = await run_op(agent, command, tmp_path)
    assert outcome.ok, outcome.reason
    assert outcome.metrics["val_accuracy"] >= 0.9
    assert attempt.progress[-1]["lr"] < 0.1  # the step schedule lowered it


async def test_regression_and_early_stopping(agent: MlAgent, tmp_path: Path) -> None:
    command = (
        "train model=mlp data=regression n=400 epochs=300 patience=3 min_delta=0.01 seed=0 save=reg"
    )
    outcome, attempt = await run_op(agent, command, tmp_path)
    assert outcome.ok, outcome.reason
    assert outcome.metrics["epochs_run"] < 300
    assert any("early stop" in line for line in attempt.lines)
    # The metrics are the restored best epoch's, train_loss included.
    best = int(outcome.metrics["best_epoch"])
    assert best == outcome.metrics["epochs_run"] - 3  # patience=3 epochs without improvement
    assert outcome.metrics["train_loss"] == pytest.approx(
        attempt.progress[best - 1]["loss"], abs=1e-6
    )
    assert outcome.metrics["train_loss"] != pytest.approx(attempt.progress[-1]["loss"], abs=1e-6)
    assert registry.resolve("reg").meta["task"] == "regression"
    outcome, _ = await run_op(
        agent, "evaluate model=reg data=regression n=300 data_seed=9", tmp_path
    )
    assert outcome.ok and outcome.metrics["eval_r2"] > 0.8


async def test_small_cnn_on_shapes(agent: MlAgent, tmp_path: Path) -> None:
    command = (
        "train model=cnn data=shapes n=600 size=16 noise=0.1 epochs=6 lr=0.005 seed=3 save=cnn"
    )
    outcome, _ = await run_op(agent, command, tmp_path)
    assert outcome.ok, outcome.reason
    assert outcome.metrics["val_accuracy"] >= 0.6
    assert registry.resolve("cnn").meta["input_shape"] == [None, 1, 16, 16]
    # Images from a file: pixel columns p0..p255, target taken from the model.
    await run_op(agent, "dataset kind=shapes n=100 noise=0.1 data_seed=5 out=img.parquet", tmp_path)
    outcome, _ = await run_op(agent, "evaluate model=cnn data=img.parquet", tmp_path)
    assert outcome.ok, outcome.reason
    assert outcome.metrics["eval_accuracy"] >= 0.5 and outcome.metrics["samples"] == 100


async def test_same_seed_gives_identical_weights(agent: MlAgent, tmp_path: Path) -> None:
    command = "train model=mlp data=spirals n=300 epochs=3 dropout=0.1 seed={seed} save=s"
    for seed in (7, 7, 8):
        outcome, _ = await run_op(agent, command.format(seed=seed), tmp_path)
        assert outcome.ok, outcome.reason
    shas = [registry.resolve(f"s@{v}").meta["sha256"] for v in (1, 2, 3)]
    assert shas[0] == shas[1] != shas[2]
    assert (
        registry.resolve("s@1").weights_path.read_bytes()
        == registry.resolve("s@2").weights_path.read_bytes()
    )


async def test_registry_round_trip_and_lineage(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(agent, "train model=mlp data=moons n=300 epochs=2 seed=1 save=m", tmp_path)
    outcome, attempt = await run_op(
        agent, "train model=mlp data=moons n=300 epochs=2 seed=2 save=m", tmp_path, task_id="train2"
    )
    assert outcome.metrics["version"] == 2
    meta = registry.resolve("m").meta
    assert meta["version"] == 2 and meta["run_id"] == "run-test" and meta["task_id"] == "train2"
    assert meta["architecture"]["kind"] == "mlp" and meta["torch_version"].startswith("2.")
    assert meta["input_shape"] == [None, 2] and meta["output_shape"] == [None, 2]
    assert meta["sha256"] == registry.sha256_file(registry.resolve("m").weights_path)
    outcome, _ = await run_op(
        agent, "evaluate model=m@1 data=moons n=300 data_seed=4", tmp_path, task_id="ev"
    )
    assert outcome.ok and outcome.metrics["eval_accuracy"] > 0.7
    evaluated = registry.resolve("m@1").meta
    assert evaluated["metrics"]["eval_accuracy"] == outcome.metrics["eval_accuracy"]
    assert evaluated["evaluations"][0]["task_id"] == "ev"
    outcome, _ = await run_op(
        agent, "select candidates=m@1;m@2 metric=val_accuracy save=best", tmp_path
    )
    assert outcome.ok and registry.resolve("best").meta["parent"] in ("m@1", "m@2")


async def test_corrupt_weights_fail_the_task_clearly(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(agent, "train model=logistic data=moons n=100 epochs=1 save=c", tmp_path)
    weights = registry.resolve("c").weights_path
    weights.write_bytes(weights.read_bytes()[:50])
    outcome, attempt = await run_op(agent, "evaluate model=c data=moons", tmp_path)
    assert not outcome.ok and "corrupt or truncated" in outcome.reason
    assert "Traceback" not in "\n".join(attempt.lines)


async def test_table_data_train_and_infer(agent: MlAgent, tmp_path: Path) -> None:
    outcome, _ = await run_op(
        agent, "dataset kind=moons n=400 data_seed=1 out=data/train.csv", tmp_path
    )
    assert outcome.ok and outcome.metrics["rows"] == 400
    frame = pl.read_csv(tmp_path / "data/train.csv")
    frame = frame.with_columns(
        kind=pl.when(pl.col("label") == 1).then(pl.lit("inner")).otherwise(pl.lit("outer"))
    )
    frame.drop("label").write_parquet(tmp_path / "data/named.parquet")
    command = "train model=mlp data=data/named.parquet target=kind features=x0;x1 epochs=8 seed=1 save=named"
    outcome, _ = await run_op(agent, command, tmp_path)
    assert outcome.ok, outcome.reason
    assert registry.resolve("named").meta["classes"] == ["inner", "outer"]
    frame.drop("label", "kind").write_csv(tmp_path / "data/unlabelled.csv")
    outcome, _ = await run_op(
        agent, "infer model=named data=data/unlabelled.csv out=$TEK_RUN_DIR/pred.parquet", tmp_path
    )
    assert outcome.ok, outcome.reason
    pred = pl.read_parquet(models_dir().parent / "runs/run-test/pred.parquet")
    assert pred.columns == ["x0", "x1", "prediction", "prob_inner", "prob_outer"]
    agree = (pred["prediction"] == frame["kind"]).mean()
    assert isinstance(agree, float) and agree > 0.85


async def test_bad_data_is_one_clear_reason(agent: MlAgent, tmp_path: Path) -> None:
    pl.DataFrame({"a": ["x", "y"], "label": [0, 1]}).write_csv(tmp_path / "bad.csv")
    cases = {
        "train model=mlp data=missing.csv target=y": "does not exist",
        "train model=mlp data=bad.csv target=nope": "no target column 'nope'",
        "train model=mlp data=bad.csv target=label": "feature column 'a' is not numeric",
        "evaluate model=ghost data=moons": "no model named 'ghost'",
        "train model=mlp data=moons device=cuda": "CUDA is not available",
        "dataset kind=moons out=$NOPE/p.csv": "$NOPE in path",
    }
    for command, needle in cases.items():
        outcome, _ = await run_op(agent, command, tmp_path)
        assert not outcome.ok and needle in outcome.reason, (command, outcome.reason)
        assert "\n" not in outcome.reason


async def test_infer_writes_csv_with_the_label_type(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(
        agent, "train model=mlp data=blobs classes=3 dims=2 n=300 epochs=5 seed=1 save=b", tmp_path
    )
    outcome, _ = await run_op(
        agent, "infer model=b data=blobs classes=3 dims=2 n=50 data_seed=0 out=p.csv", tmp_path
    )
    assert outcome.ok and outcome.metrics["rows"] == 50
    pred = pl.read_csv(tmp_path / "p.csv")
    assert pred.columns == ["x0", "x1", "prediction", "prob_0", "prob_1", "prob_2"]
    assert pred["prediction"].dtype == pl.Int64
    assert set(pred["prediction"].to_list()) <= {0, 1, 2}


async def test_a_diverging_model_fails_and_is_not_saved(agent: MlAgent, tmp_path: Path) -> None:
    command = (
        "train model=mlp data=regression n=200 optimizer=sgd lr=100 momentum=0.99 "
        "epochs=5 seed=1 save=nanm"
    )
    outcome, attempt = await run_op(agent, command, tmp_path)
    assert not outcome.ok
    assert re.fullmatch(
        r"train: the (validation )?loss became (nan|inf|-inf) at epoch \d "
        r"\(the model diverged; try a lower lr\)",
        outcome.reason,
    ), outcome.reason
    assert registry.versions("nanm") == []
    assert "Traceback" not in "\n".join(attempt.lines)


async def test_a_missing_device_is_one_clean_line(agent: MlAgent, tmp_path: Path) -> None:
    # cuda:99 is missing with or without CUDA; mps is missing off Apple hardware.
    for device in ("cuda:99", "cuda"):
        outcome, attempt = await run_op(
            agent, f"train model=logistic data=moons n=50 epochs=1 device={device}", tmp_path
        )
        if outcome.ok:  # device=cuda on a machine with CUDA
            continue
        assert outcome.reason.startswith(f"device={device}") or "CUDA device 99" in outcome.reason
        assert "DeviceError" not in outcome.reason
        assert not any("Traceback" in line for line in attempt.lines), attempt.lines


async def test_each_run_uses_its_own_versions_of_a_name(agent: MlAgent, tmp_path: Path) -> None:
    train = "train model=logistic data=moons n=100 epochs=1 seed={} save=shared"
    a, _ = await run_op(agent, train.format(1), tmp_path, run_id="run-a", attempt=2)
    b, _ = await run_op(agent, train.format(2), tmp_path, run_id="run-b")
    assert (a.metrics["version"], b.metrics["version"]) == (1, 2)
    assert registry.resolve("shared@1").meta["attempt"] == 2  # resumed runs tell versions apart
    for run_id, version in (("run-a", 1), ("run-b", 2), ("run-c", 2)):
        outcome, attempt = await run_op(
            agent, "evaluate model=shared data=moons n=50", tmp_path, run_id=run_id, task_id="ev"
        )
        assert outcome.ok, outcome.reason
        assert any(line.startswith(f"evaluate shared@{version} ") for line in attempt.lines)
        evaluations = registry.resolve(f"shared@{version}").meta["evaluations"]
        assert evaluations[-1]["run_id"] == run_id and evaluations[-1]["attempt"] == 1
    select = "select candidates=shared metric=eval_accuracy save=pick"
    outcome, _ = await run_op(agent, select, tmp_path, run_id="run-a")
    assert outcome.ok and registry.resolve("pick").meta["parent"] == "shared@1"


def test_blobs_centres_do_not_depend_on_the_data_seed() -> None:
    from core.ml import data

    draws = [data.synthetic("blobs", {"n": 3000, "data_seed": seed}) for seed in (0, 1)]
    assert not draws[0].x[:10].equal(draws[1].x[:10])  # other samples...
    for label in range(3):  # ...around the same centres
        means = [ds.x[ds.y == label].mean(0) for ds in draws if ds.y is not None]
        assert (means[0] - means[1]).abs().max() < 0.3
    assert draws[0].x.shape[1] == 4  # dims defaults to 4, as documented


async def test_blobs_held_out_draw_is_the_same_problem(agent: MlAgent, tmp_path: Path) -> None:
    outcome, _ = await run_op(
        agent, "train model=logistic data=blobs n=300 epochs=5 lr=0.1 seed=1 save=bl", tmp_path
    )
    assert outcome.ok, outcome.reason
    outcome, _ = await run_op(agent, "evaluate model=bl data=blobs n=300 data_seed=7", tmp_path)
    assert outcome.ok and outcome.metrics["eval_accuracy"] > 0.9


async def test_meta_and_log_record_real_paths(agent: MlAgent, tmp_path: Path) -> None:
    await run_op(agent, "dataset kind=moons n=100 out=$TEK_RUN_DIR/d.csv", tmp_path)
    real = str(models_dir().parent / "runs/run-test/d.csv")
    train = "train model=logistic data=${TEK_RUN_DIR}/d.csv target=label epochs=1 save=paths"
    outcome, first = await run_op(agent, train, tmp_path)
    assert outcome.ok, outcome.reason
    outcome, second = await run_op(agent, "evaluate model=paths data=$TEK_RUN_DIR/d.csv", tmp_path)
    assert outcome.ok, outcome.reason
    meta = registry.resolve("paths").meta
    assert meta["config"]["data"] == real and meta["evaluations"][0]["data"] == real
    lines = first.lines + second.lines
    assert any(real in line for line in lines)
    assert not any("TEK_RUN_DIR" in line for line in lines), lines
