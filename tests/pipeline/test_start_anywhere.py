"""A recipe may start at any stage; ``validate`` checks that every stage gets what it needs; frozen
graphs are refused by editing stages before anything is written; normalisation matches the model;
a model at chance level warns in the table, run.json and report.md."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml

DATA = {"source": "synthetic", "image_size": 16, "channels": 3, "synthetic_classes": 4,
        "synthetic_per_class": 40, "val_fraction": 0.2, "test_fraction": 0.25}
NORM_WARNING = "normalising with statistics of the train split"


def _recipe(tmp_path: Path, model: dict, stages: list[dict], name: str = "t", data: dict | None = None) -> Path:
    recipe = {"run": {"name": name, "output_dir": str(tmp_path / "runs"), "seed": 0, "threads": 1,
                      "latency_iters": 5},
              "model": model, "data": data or DATA, "stages": stages}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    """A user's frozen graph: 4 classes, 3x16x16, dynamic batch."""
    from edgeslim.models.registry import create_model

    model = create_model("tinycnn", 4, width=8, depth=2).eval()
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(2, 3, 16, 16),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}})
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    from edgeslim.models.registry import create_model

    path = tmp_path / "tiny.pt"
    torch.save(create_model("tinycnn", 4, width=8, depth=2).state_dict(), path)
    return path


TINY = {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}}


@pytest.mark.parametrize("stages, expected", [
    ([{"stage": "prune"}], "stages[0]: stage 'prune' needs an editable nn.Module but model.source"),
    ([{"stage": "finetune"}], "stages[0]: stage 'finetune' needs an editable nn.Module"),
    ([{"stage": "distill"}], "stages[0]: stage 'distill' needs an editable nn.Module"),
    ([{"stage": "quantize", "method": "qat"}], "stages[0]: stage 'quantize' with these settings needs an editable"),
    ([{"stage": "evaluate", "artifact": "torch"}], "stages[0] (evaluate): needs a model torch can run"),
])
def test_validate_refuses_editing_a_frozen_graph_before_anything_is_written(tiny_onnx, tmp_path, cli, stages,
                                                                           expected):
    path = _recipe(tmp_path, {"source": str(tiny_onnx)}, stages)
    code, _, err = cli("validate", path)
    assert code == 2 and expected in err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1  # one problem, one line, naming the stages that can run
    if "editable" in expected:
        assert "stages that can run on it: quantize, export, evaluate, deploy, bench" in err
    code, _, err = cli("run", path, "--quiet")
    assert code == 2 and expected in err
    assert not (tmp_path / "runs").exists()  # refused before the run folder was made


@pytest.mark.parametrize("stages, expected", [
    ([{"stage": "deploy"}], "stages[0] (deploy): needs an ONNX model and no earlier stage writes one; put an export"),
    ([{"stage": "bench", "artifact": "torch"}], "stages[0] (bench): needs a model.pt saved by an earlier stage"),
    ([{"stage": "bench"}], "stages[0] (bench): needs an artifact (model.pt or ONNX)"),
    ([{"stage": "evaluate", "artifact": "onnx", "label": "ev"}], "stages[0] (ev): needs an ONNX model"),
])
def test_validate_names_a_stage_that_nothing_feeds(tmp_path, cli, stages, expected):
    code, _, err = cli("validate", _recipe(tmp_path, TINY, stages))
    assert code == 2 and expected in err


@pytest.mark.parametrize("stages", [
    [{"stage": "export"}],
    [{"stage": "evaluate"}, {"stage": "prune"}],
    [{"stage": "quantize"}, {"stage": "deploy"}],
    [{"stage": "finetune"}, {"stage": "bench", "artifact": "torch"}],
    [{"stage": "export"}, {"stage": "bench"}, {"stage": "evaluate", "artifact": "onnx"}],
])
def test_validate_accepts_a_checkpoint_starting_at_any_stage(tmp_path, cli, checkpoint, stages):
    code, out, err = cli("validate", _recipe(tmp_path, {**TINY, "checkpoint": str(checkpoint)}, stages))
    assert code == 0 and out.startswith("ok:"), err


def test_frozen_graph_takes_quantize_export_deploy_and_a_missing_file_is_caught(tiny_onnx, tmp_path, cli):
    ok = [{"stage": "quantize"}, {"stage": "export"}, {"stage": "deploy"}, {"stage": "evaluate", "artifact": "onnx"}]
    assert cli("validate", _recipe(tmp_path, {"source": str(tiny_onnx)}, ok))[0] == 0
    code, _, err = cli("validate", _recipe(tmp_path, {"source": "nowhere/mynet.py:Net"}, [{"stage": "prune"}]))
    assert code == 2 and "file 'nowhere/mynet.py' does not exist" in err


def test_frozen_graph_that_does_not_fit_the_data_fails_before_writing(tiny_onnx, tmp_path, cli):
    path = _recipe(tmp_path, {"source": str(tiny_onnx)}, [{"stage": "export"}], data={**DATA, "image_size": 24})
    code, _, err = cli("run", path, "--quiet")
    assert code == 2 and "takes 3x16x16 inputs but the data gives 3x24x24; set data.image_size: 16" in err
    path = _recipe(tmp_path, {"source": str(tiny_onnx)}, [{"stage": "export"}], data={**DATA, "synthetic_classes": 5})
    code, _, err = cli("run", path, "--quiet")
    assert code == 2 and "predicts 4 classes but the data has 5" in err
    assert not (tmp_path / "runs").exists()


def test_a_checkpoint_starts_at_evaluate_and_export_and_the_normalisation_warning_is_shown_once(
        tmp_path, cli, checkpoint):
    stages = [{"stage": "evaluate"}, {"stage": "export"}, {"stage": "evaluate", "artifact": "onnx"}]
    code, _, err = cli("run", _recipe(tmp_path, {**TINY, "checkpoint": str(checkpoint)}, stages), "--quiet")
    assert code == 0, err
    assert err.count(NORM_WARNING) == 1  # once per run, also with --quiet
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    assert run["normalization"]["from"] == "train split statistics"
    assert NORM_WARNING in run["warnings"][0]
    torch_eval, export, onnx_eval = (s["metrics"] for s in run["stages"])
    assert torch_eval["evaluated_on"] == "torch" and onnx_eval["evaluated_on"] == "onnxruntime"
    assert export["parity"] == "passed" and export["precision"] == "fp32"
    # The same checkpoint, exported: torch and onnxruntime agree on the test split (FP32 parity).
    assert abs(torch_eval["test_top1"] - onnx_eval["test_top1"]) <= 1 / 40

    # Given data.mean/std, nothing is guessed and nothing is said.
    data = {**DATA, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    path = _recipe(tmp_path, {**TINY, "checkpoint": str(checkpoint)}, stages[:1], name="n", data=data)
    code, _, err = cli("run", path, "--quiet")
    assert code == 0 and NORM_WARNING not in err
    run = json.loads((tmp_path / "runs" / "n" / "run.json").read_text())
    assert run["normalization"] == {"mean": [0.5] * 3, "std": [0.25] * 3, "from": "recipe data.mean/std"}


def test_a_model_at_chance_level_warns_in_the_table_run_json_and_report(tmp_path, cli):
    from edgeslim.models.registry import create_model

    # All weights zero: every logit is 0, so the model predicts class 0 for every image -- exactly
    # chance (0.25) on the balanced 4-class test split, on any CPU.
    model = create_model("tinycnn", 4, width=8, depth=2)
    torch.save({k: torch.zeros_like(v) for k, v in model.state_dict().items()}, tmp_path / "dead.pt")
    data = {**DATA, "mean": [0.5] * 3, "std": [0.25] * 3}
    path = _recipe(tmp_path, {**TINY, "checkpoint": str(tmp_path / "dead.pt")}, [{"stage": "export"}], data=data)
    code, out, err = cli("run", path)
    assert code == 0, err
    assert "0.2500 CHANCE" in out and "is at chance level for 4 classes" in out  # the printed table
    assert "00-export: test accuracy 0.250 is at chance level" in err  # said when the stage ends
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    m = run["stages"][0]["metrics"]
    assert m["test_accuracy"] == 0.25 and m["chance_level"] and "chance level" in m["warnings"][0]
    assert run["warnings"] == [f"00-export: {m['warnings'][0]}"]
    report = (tmp_path / "runs" / "t" / "report.md").read_text()
    assert "0.2500 CHANCE" in report and "## Warnings" in report and "at chance level" in report


def test_normalisation_comes_from_the_models_weights_unless_the_recipe_gives_it(tmp_path):
    pytest.importorskip("timm")
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec, ModelSpec
    from edgeslim.stages.context import model_norm

    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    tv = model_norm(ModelSpec(source="torchvision:resnet18", weights="DEFAULT"))
    assert list(tv.mean + tv.std) == pytest.approx(imagenet[0] + imagenet[1]) and tv.trained
    assert "IMAGENET1K" in tv.source or "DEFAULT" in tv.source
    # A timm architecture brings its pretrained config's statistics (not ImageNet's for every arch).
    import timm

    cfg = timm.models.get_pretrained_cfg("vit_tiny_patch16_224")
    tm = model_norm(ModelSpec(source="timm:vit_tiny_patch16_224"))
    assert list(tm.mean + tm.std) == pytest.approx(list(cfg.mean) + list(cfg.std))
    assert not model_norm(ModelSpec(source="tinycnn")).trained  # trained here, from scratch: no warning
    assert model_norm(ModelSpec(source="tinycnn", checkpoint="w.pt")).trained

    spec = DataSpec(**DATA)
    data = build_data(spec, 0, tv)
    assert data.mean == pytest.approx(imagenet[0]) and data.extra["normalization"]["from"] == tv.source
    given = build_data(DataSpec(**DATA, mean=[0.1] * 3, std=[0.2] * 3), 0, tv)
    assert given.mean == [0.1] * 3 and given.extra["normalization"]["from"] == "recipe data.mean/std"
    assert build_data(spec, 0).mean != data.mean  # the train split's own statistics otherwise


def test_run_with_a_module_validates_the_recipe_against_that_module(tmp_path):
    import edgeslim
    from edgeslim.errors import RecipeError
    from edgeslim.models.registry import create_model

    recipe = {"run": {"name": "m", "output_dir": str(tmp_path / "runs"), "threads": 1, "latency_iters": 5},
              "model": {"source": "gone.onnx"}, "data": DATA,
              "stages": [{"stage": "prune", "target": {"ratio": 0.3}, "round_to": 2, "on_budget": "warn"}]}
    with pytest.raises(RecipeError, match="file 'gone.onnx' does not exist"):
        edgeslim.run(recipe)
    # The module replaces model.source before validation: prune gets an editable module.
    result = edgeslim.run(recipe, model=create_model("tinycnn", 4, width=8, depth=2))
    assert result.record["status"] == "completed"
    assert result.record["recipe"]["model"]["source"].startswith("object:TinyCNN-")
    assert result.stages[0].metrics["macs_fraction"] < 1


@pytest.mark.parametrize("name, expected", [
    ("bad.onnx", "bad.onnx' is not a readable ONNX model"),
    ("bad.pt2", "bad.pt2' could not be opened as a torch.export ExportedProgram (.pt2)"),
    ("bad.pt", "is corrupt or not a PyTorch file"),
])
def test_a_damaged_model_file_fails_in_one_line_before_anything_is_written(tmp_path, cli, name, expected):
    (tmp_path / name).write_text("junk\n")
    code, _, err = cli("run", _recipe(tmp_path, {"source": str(tmp_path / name)}, [{"stage": "quantize"}]), "--quiet")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()
