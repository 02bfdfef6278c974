"""The torch-free half of the ML side: op parsing, device choice, registry, CLI, imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.agents.ml import MlAgent
from core.errors import RegistryError
from core.ml import registry
from core.ml.device import DeviceError, choose_device
from core.ml.ops import CommandError, parse_command, validate_command
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
        ],
    )
    def test_bad_commands_name_the_problem(self, command: str, needle: str) -> None:
        problems = validate_command(command)
        assert any(needle in p for p in problems), problems

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
    name: str, metrics: dict[str, float], payload: bytes = b"weights"
) -> registry.ModelVersion:
    with registry.open_staging() as staging:
        (staging / registry.WEIGHTS_FILE).write_bytes(payload)
        return registry.publish(
            name, staging, registry.new_meta(metrics=metrics, architecture={"kind": "mlp"})
        )


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
        winner, best = registry.select_best(
            ["small", "big"], "eval_accuracy", "auto", "best", {"run_id": "r", "task_id": "sel"}
        )
        assert winner.ref == "big@1" and best.ref == "best@1"
        assert best.meta["parent"] == "big@1" and best.meta["task_id"] == "sel"
        assert best.weights_path.read_bytes() == b"b"
        assert best.meta["selection"]["candidates"] == {"small@1": 0.8, "big@1": 0.9}
        winner, _ = registry.select_best(["small", "big"], "eval_loss", "auto", "best", {})
        assert winner.ref == "small@1"  # losses are minimised
        with pytest.raises(RegistryError, match="has no metric 'f1'"):
            registry.select_best(["small"], "f1", "max", "best", {})

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
        "core.agents.ml, core.ml.ops, core.ml.registry, core.ml.pool, core.ml.worker",
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
