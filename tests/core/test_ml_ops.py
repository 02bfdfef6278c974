"""The torch-free half of the ML side: op parsing, device choice, registry, CLI, imports."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.agents.ml import MlAgent
from core.errors import RegistryError
from core.ml import registry
from core.ml.device import DeviceError, choose_device
from core.ml.op_values import onnx_opsets
from core.ml.ops import CommandError, parse_command, validate_command
from core.ml.selection import select_best
from core.paths import models_dir
from core.plan import Task
from tek_tui.cli import main


class TestOps:
    def test_defaults_and_types(self) -> None:
        cmd = parse_command("train model=mlp data=moons hidden=32;16 lr=0.1 epochs=3 save=m")
        assert cmd.op == "train"
        assert cmd.args["hidden"] == [32, 16]
        assert cmd.args["lr"] == 0.1 and cmd.args["epochs"] == 3
        assert cmd.args["batch_size"] == 64 and cmd.args["device"] == "auto"
        assert cmd.args["seed"] is None

    def test_default_lists_are_not_shared(self) -> None:
        a = parse_command("train model=mlp data=moons")
        a.args["hidden"].append(1)
        assert parse_command("train model=mlp data=moons").args["hidden"] == [64, 64]

    @pytest.mark.parametrize(
        ("command", "needle"),
        [
            ("", "empty command"),
            ("fit model=mlp", "unknown op 'fit'"),
            ("train model=mlp data=moons colour=red", "unknown key 'colour'"),
            ("train model=mlp data=moons epochs=-2", "epochs: must be at least 1 (got '-2')"),
            ("train model=mlp data=moons lr=fast", "lr: expected a number (got 'fast')"),
            ("train model=transformer data=moons", "model: expected one of"),
            ("train data=moons", "missing required key model="),
            ("train model=mlp data=x.txt", "data: expected one of moons"),
            ("train model=mlp data=t.csv", "target: a data file needs target=COLUMN"),
            ("train model=cnn data=moons", "cnn trains on image data"),
            ("train model=mlp data=moons device=gpu", "device: expected auto, cpu, cuda"),
            ("train model=mlp data=moons save=../evil", "model names are"),
            ("evaluate model=a@0 data=moons", "version must be a positive"),
            ("infer model=a data=moons", "missing required key out="),
            ("convert model=a to=onnx", "out: required when exporting"),
            ("convert model=a src=b.pt", "either model="),
            ("select candidates=a;b metric=acc", "missing required key save="),
            ("train model=mlp data=moons epochs", "is not key=value"),
            ('train model=mlp data="moons', "cannot split command"),
            (
                "train model=mlp data=t.csv target=label features=label;x0",
                "features: the target column 'label' cannot also be a feature",
            ),
            (
                "infer model=a data=t.csv target=y features=x;y out=p.csv",
                "features: the target column 'y' cannot also be a feature",
            ),
            ("train model=mlp data=moons features=x0", "features: data=moons is a built-in set"),
            ("evaluate model=a data=blobs features=x0", "features: data=blobs is a built-in set"),
            (f"train model=mlp data=moons seed={10**20}", f"seed: must be at most {2**63 - 1}"),
            (f"train model=mlp data=moons seed={2**63}", "seed: must be at most"),
            (f"dataset kind=moons out=a.csv data_seed={10**20}", "data_seed: must be at most"),
            ("convert model=a to=onnx out=m.onnx opset=3", "opset: the installed torch exports"),
            ("convert model=a to=onnx out=m.onnx opset=99", "opset: the installed torch exports"),
        ],
    )
    def test_bad_commands_name_the_problem(self, command: str, needle: str) -> None:
        problems = validate_command(command)
        assert any(needle in p for p in problems), problems

    def test_edge_values_that_torch_accepts_pass(self) -> None:
        assert (
            parse_command(f"train model=mlp data=moons seed={2**63 - 1}").args["seed"] == 2**63 - 1
        )
        assert validate_command("train model=mlp data=t.csv target=y features=a;b") == []

    def test_opset_range_is_the_installed_exporters(self) -> None:
        constants = pytest.importorskip("torch.onnx._constants")
        low, high = constants.ONNX_MIN_OPSET, constants.ONNX_MAX_OPSET
        assert onnx_opsets() == (low, high)
        for opset in (low, 17, high):
            assert validate_command(f"convert model=a to=onnx out=m.onnx opset={opset}") == []
        assert validate_command(f"convert model=a to=onnx out=m.onnx opset={high + 1}")

    def test_every_problem_is_reported(self) -> None:
        with pytest.raises(CommandError) as info:
            parse_command("train model=mlp data=moons epochs=0 lr=x foo=1")
        assert len(info.value.problems) == 3

    def test_agent_validate_is_the_op_check(self, tmp_path: Path) -> None:
        agent = MlAgent()
        assert (
            agent.validate(Task(id="a", agent="ml", command="train model=mlp data=moons"), tmp_path)
            == []
        )
        bad = agent.validate(Task(id="a", agent="ml", command="train model=mlp"), tmp_path)
        assert bad == ["train: missing required key data="]


class TestDevices:
    def test_cpu_and_auto_without_gpus(self) -> None:
        assert choose_device("cpu", (), 0, False) == ("cpu", "")
        device, note = choose_device("auto", (), 0, False)
        assert device == "cpu" and "no GPU assigned" in note

    def test_auto_uses_the_assigned_gpu(self) -> None:
        assert choose_device("auto", (2, 3), 4, False) == ("cuda:2", "")
        device, note = choose_device("auto", (1,), 0, False)
        assert device == "cpu" and "CUDA is not available" in note

    def test_cuda_without_cuda_fails_clearly(self) -> None:
        with pytest.raises(DeviceError, match="CUDA is not available"):
            choose_device("cuda", (0,), 0, False)
        with pytest.raises(DeviceError, match="CUDA is not available"):
            choose_device("cuda:1", (), 0, False)

    def test_cuda_index_maps_through_the_assignment(self) -> None:
        assert choose_device("cuda:1", (4, 6), 8, False) == ("cuda:6", "")
        assert choose_device("cuda:3", (), 4, False) == ("cuda:3", "")
        with pytest.raises(DeviceError, match="holds only 1"):
            choose_device("cuda:1", (0,), 2, False)
        with pytest.raises(DeviceError, match="does not exist"):
            choose_device("cuda:5", (), 2, False)

    def test_mps(self) -> None:
        assert choose_device("mps", (), 0, True) == ("mps", "")
        with pytest.raises(DeviceError, match="MPS"):
            choose_device("mps", (), 0, False)


def _fake_version(
    name: str, metrics: dict[str, float], payload: bytes = b"weights", **meta: Any
) -> registry.ModelVersion:
    with registry.open_staging() as staging:
        (staging / registry.WEIGHTS_FILE).write_bytes(payload)
        return registry.publish(
            name, staging, registry.new_meta(metrics=metrics, architecture={"kind": "mlp"}, **meta)
        )


def _raw_metrics(mv: registry.ModelVersion, metrics_json: str) -> None:
    """Overwrite a version's metrics with raw JSON text (NaN as older tek wrote it)."""
    path = mv.path / registry.META_FILE
    text = path.read_text()
    start = text.index('"metrics": {')
    end = text.index("}", start) + 1
    path.write_text(text[:start] + f'"metrics": {metrics_json}' + text[end:])


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


class TestRegistry:
    def test_versions_count_up_and_resolve(self) -> None:
        a1 = _fake_version("a", {"acc": 0.5})
        a2 = _fake_version("a", {"acc": 0.7})
        assert (a1.version, a2.version) == (1, 2)
        assert registry.resolve("a").version == 2
        assert registry.resolve("a@1").meta["metrics"] == {"acc": 0.5}
        assert registry.resolve("a@latest").version == 2
        assert [mv.ref for mv in registry.list_models()] == ["a@1", "a@2"]
        assert not list((models_dir() / registry.STAGING).iterdir())

    def test_sha256_is_recorded_and_checked(self) -> None:
        mv = _fake_version("a", {})
        registry.verify_weights(mv)
        mv.weights_path.write_bytes(b"weigh")  # truncated
        with pytest.raises(RegistryError, match="corrupt or truncated"):
            registry.verify_weights(mv)
        mv.weights_path.unlink()
        with pytest.raises(RegistryError, match="missing"):
            registry.verify_weights(mv)

    @pytest.mark.parametrize("ref", ["../etc", "a/b", ".hidden", "a@x", "", "a@-1", "x" * 101])
    def test_bad_names_never_touch_the_disk(self, ref: str) -> None:
        with pytest.raises(RegistryError, match="bad model"):
            registry.resolve(ref)

    def test_unknown_model_and_version(self) -> None:
        _fake_version("a", {})
        with pytest.raises(RegistryError, match="no model named 'b'"):
            registry.resolve("b")
        with pytest.raises(RegistryError, match="has no version 7"):
            registry.resolve("a@7")

    def test_remove_one_version_then_all(self) -> None:
        for _ in range(3):
            _fake_version("a", {})
        assert registry.remove("a@2") == ["a@2"]
        assert registry.versions("a") == [1, 3]
        assert registry.remove("a") == ["a@1", "a@3"]
        assert not (models_dir() / "a").exists()
        with pytest.raises(RegistryError):
            registry.remove("a")

    def test_select_best_copies_the_winner_with_lineage(self) -> None:
        _fake_version("small", {"eval_accuracy": 0.8, "eval_loss": 0.3}, b"s")
        _fake_version("big", {"eval_accuracy": 0.9, "eval_loss": 0.4}, b"b")
        winner, best = select_best(
            ["small", "big"], "eval_accuracy", "auto", "best", {"run_id": "r", "task_id": "sel"}
        )
        assert winner.ref == "big@1" and best.ref == "best@1"
        assert best.meta["parent"] == "big@1" and best.meta["task_id"] == "sel"
        assert best.weights_path.read_bytes() == b"b"
        assert best.meta["selection"]["candidates"] == {"small@1": 0.8, "big@1": 0.9}
        winner, _ = select_best(["small", "big"], "eval_loss", "auto", "best", {})
        assert winner.ref == "small@1"  # losses are minimised
        with pytest.raises(RegistryError, match="no candidate has a finite 'f1'.*no metric 'f1'"):
            select_best(["small"], "f1", "max", "best", {})

    @pytest.mark.parametrize("order", [0, 1, 2, 3])
    def test_select_skips_missing_and_non_finite_metrics(self, order: int) -> None:
        _raw_metrics(_fake_version("nan", {}), '{"eval_accuracy": NaN}')
        _raw_metrics(_fake_version("inf", {}), '{"eval_accuracy": Infinity}')
        _fake_version("null", {"eval_accuracy": float("nan")})  # written as null now
        _fake_version("none", {"eval_loss": 0.1})
        _fake_version("good", {"eval_accuracy": 0.5}, b"g")
        names = ["nan", "inf", "null", "none"]
        candidates = names[:order] + ["good"] + names[order:]  # the winner at every place
        said: list[str] = []
        for mode in ("auto", "min"):
            winner, best = select_best(
                candidates, "eval_accuracy", mode, "best", {}, log=said.append
            )
            assert winner.ref == "good@1" and best.weights_path.read_bytes() == b"g"
        assert {line.split()[2].rstrip(":") for line in said} == {f"{n}@1" for n in names}
        assert "select: skipping nan@1: eval_accuracy is nan" in said
        assert "select: skipping none@1: no metric 'eval_accuracy' (has: eval_loss)" in said
        assert set(best.meta["selection"]["skipped"]) == {f"{n}@1" for n in names}
        with pytest.raises(RegistryError, match="no candidate has a finite 'eval_accuracy'"):
            select_best(names, "eval_accuracy", "auto", "best", {})

    def test_bare_name_means_this_runs_latest_version(self) -> None:
        _fake_version("m", {"eval_accuracy": 0.9}, b"a", run_id="run-a")
        _fake_version("m", {"eval_accuracy": 0.1}, b"b", run_id="run-b")
        _fake_version("other", {}, run_id="run-a")
        assert registry.resolve("m", run_id="run-a").version == 1
        assert registry.resolve("m", run_id="run-b").version == 2
        assert registry.resolve("m", run_id="run-c").version == 2  # saved none: the latest
        assert registry.resolve("m").version == 2
        assert registry.resolve("m@latest", run_id="run-a").version == 2
        assert registry.resolve("m@2", run_id="run-a").version == 2
        _fake_version("m", {"eval_accuracy": 0.5}, b"c", run_id="run-b")  # run b saves again
        assert registry.resolve("m", run_id="run-a").version == 1
        assert registry.resolve("m", run_id="run-b").version == 3
        winner, _ = select_best(["m", "other"], "eval_accuracy", "max", "best", {"run_id": "run-b"})
        assert winner.ref == "m@3"

    @pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC])
    def test_publish_fails_clearly_when_the_rename_cannot_work(
        self, monkeypatch: pytest.MonkeyPatch, code: int
    ) -> None:
        calls: list[str] = []

        def rename(src: object, dst: object) -> None:
            calls.append(str(dst))
            if len(calls) > 3:  # the old code retried forever: stop it here
                raise RuntimeError("publish retried a rename that can never work")
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "rename", rename)
        with pytest.raises(RegistryError) as info:
            _fake_version("locked", {})
        assert str(info.value) == f"cannot save model locked: {os.strerror(code)}"
        assert len(calls) == 1
        assert not list((models_dir() / registry.STAGING).iterdir())  # staging removed
        assert registry.versions("locked") == []

    def test_publish_takes_the_next_number_when_one_is_taken(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = os.rename
        taken = [errno.ENOTEMPTY, errno.EEXIST]

        def rename(src: str, dst: str) -> None:
            if taken:  # another writer won this number
                code = taken.pop(0)
                raise OSError(code, os.strerror(code))
            real(src, dst)

        monkeypatch.setattr(os, "rename", rename)
        assert _fake_version("race", {}).version == 3

    def test_update_meta_merges(self) -> None:
        mv = _fake_version("a", {"x": 1.0})
        registry.update_meta(mv, {"metrics": {"y": 2.0}, "evaluations": [{"n": 1}]})
        meta = registry.resolve("a").meta
        assert meta["metrics"] == {"x": 1.0, "y": 2.0} and meta["evaluations"] == [{"n": 1}]


class TestModelsCommand:
    def test_list_show_rm_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        _fake_version("a", {"eval_accuracy": 0.9})
        _fake_version("a", {"eval_accuracy": 0.95})
        assert main(["models", "list", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [(r["name"], r["version"]) for r in rows] == [("a", 1), ("a", 2)]
        assert main(["models", "list"]) == 0
        assert "eval_accuracy=0.9500" in capsys.readouterr().out
        assert main(["models", "show", "a@1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["metrics"] == {"eval_accuracy": 0.9}
        assert main(["models", "rm", "a@1", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == ["a@1"]

    def test_json_output_has_no_nan(self, capsys: pytest.CaptureFixture[str]) -> None:
        _raw_metrics(_fake_version("d", {}), '{"val_loss": NaN, "train_loss": -Infinity}')
        _fake_version("d", {"val_loss": float("inf")})
        assert main(["models", "list", "--json"]) == 0
        rows = _strict_json(capsys.readouterr().out)
        assert [r["metrics"] for r in rows] == [
            {"val_loss": None, "train_loss": None},
            {"val_loss": None},
        ]
        assert main(["models", "show", "d@1", "--json"]) == 0
        assert _strict_json(capsys.readouterr().out)["metrics"]["val_loss"] is None
        assert "NaN" not in (models_dir() / "d/2/meta.json").read_text()  # written as null
        assert main(["models", "list"]) == 0 and "d@1" in capsys.readouterr().out

    def test_list_names_an_unknown_model_and_shows_damaged_versions(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _fake_version("a", {})
        bad = _fake_version("a", {})
        (bad.path / registry.META_FILE).write_text("{not json")
        assert main(["models", "list", "nosuch"]) == 0
        assert capsys.readouterr().out.strip() == "no model named nosuch"
        assert main(["models", "list"]) == 0
        out, err = capsys.readouterr()
        assert "a@1" in out and "a@2" in out and "damaged" in out
        assert err.startswith("tek: model a@2: unreadable meta.json") and "damaged" in err
        assert main(["models", "list", "a", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["version"] for r in rows] == [1, 2]
        assert "unreadable meta.json" in rows[1]["damaged"] and "damaged" not in rows[0]

    def test_show_and_list_name_the_attempt(self, capsys: pytest.CaptureFixture[str]) -> None:
        _fake_version("dup", {}, run_id="r1", task_id="train", attempt=1)
        _fake_version("dup", {}, run_id="r1", task_id="train", attempt=2)
        assert main(["models", "show", "dup@2"]) == 0
        assert "made by       run r1 task train attempt 2 " in capsys.readouterr().out
        assert main(["models", "list", "dup", "--json"]) == 0
        assert [r["attempt"] for r in json.loads(capsys.readouterr().out)] == [1, 2]
        assert main(["models", "list", "dup"]) == 0
        assert "r1/train #2" in capsys.readouterr().out

    @pytest.mark.parametrize(
        "argv", [["show", "../x"], ["show", "nope"], ["rm", "a@9"], ["export", "nope"]]
    )
    def test_bad_input_is_one_line_and_exit_2(
        self, argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        _fake_version("a", {})
        assert main(["models", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tek: ")


@pytest.mark.parametrize(
    "modules",
    [
        "core.agents.ml, core.ml.ops, core.ml.registry, core.ml.pool, core.ml.worker, "
        "core.ml.selection, core.ml.op_values, core.ml.context",
        "tek_tui.commands.models",
    ],
)
def test_engine_side_modules_do_not_import_torch(modules: str) -> None:
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_no_accepted_name_leaves_the_registry(text: str) -> None:
    try:
        name, _ = registry.split_ref(text)
    except RegistryError:
        return
    root = Path("/registry")
    folder = (root / name).resolve()
    assert folder.parent == root and folder.name == name
