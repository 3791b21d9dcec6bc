"""The compression chain on a CUDA device: training stages on the GPU, KD teacher following.

The CUDA test only runs where a GPU is; its recipe is also checked on the CPU
(test_cuda_recipe_validates_and_distills_a_narrower_student), so a key that silently does
nothing (``student: {width: 0.5}`` without ``kind: width`` once left the student as wide as its
teacher) is caught on every machine.
"""

import json

import pytest
import torch

from edgeslim.recipe import load_recipe

MODEL = {"source": "tinycnn", "kwargs": {"width": 32, "depth": 2}}
STAGES = [
    {"stage": "finetune", "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.01}}},
    {"stage": "distill", "student": {"kind": "width", "width": 0.5},
     "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.01}}},
    {"stage": "prune", "target": {"ratio": 0.25}, "steps": 1,
     "recovery": {"train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.003}},
                  "kd": {"teacher": "finetune"}}},
    {"stage": "quantize", "precision": "int8", "calibration": {"samples": 32}},
    {"stage": "export"},
]


def test_cuda_recipe_validates_and_distills_a_narrower_student(write_recipe, cli, tmp_path, digits_data_spec):
    recipe = load_recipe(write_recipe(STAGES, model=MODEL, data=digits_data_spec))
    student = recipe.stages[1].student
    assert student.kind == "width" and student.width == 0.5
    # The first two stages on the CPU: the distilled student really is half as wide.
    code, _, err = cli("run", write_recipe(STAGES[:2], model=MODEL, data=digits_data_spec), "-q")
    assert code == 0, err
    run = tmp_path / "runs" / "t"
    m = json.loads((run / "run.json").read_text())["stages"][1]["metrics"]
    assert m["macs_fraction_of_teacher"] < 0.5  # measured 0.27: half the channels of every conv
    from edgeslim.models.serialize import load_model

    convs = [c for c in load_model(run / "01-distill" / "model.pt").modules() if isinstance(c, torch.nn.Conv2d)]
    assert convs[0].out_channels == 16  # the teacher's first conv has 32


@pytest.mark.cuda
def test_finetune_distill_prune_quantize_on_cuda(write_recipe, cli, tmp_path, digits_data_spec):
    recipe = write_recipe(STAGES, model=MODEL, data=digits_data_spec, run={"device": "cuda"})
    code, _, err = cli("run", recipe, "-q")
    assert code == 0, err
    rec = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    assert [s["status"] for s in rec["stages"]] == ["completed"] * 5
    assert rec["stages"][1]["metrics"]["macs_fraction_of_teacher"] < 0.5
    # 10 digit classes (chance 0.10). The same recipe on the CPU (seeds 0-1, two kernel sets)
    # ends at 0.96-0.98 test top-1, with every accuracy guard passing by >= 0.7 points; 0.8 is
    # far from both chance and what the GPU's kernels could move.
    assert rec["final"]["test_accuracy"] >= 0.8
    assert rec["stages"][-1]["metrics"]["evaluated_on"] == "onnxruntime"
    assert rec["host"]["gpu"], "run.json must name the GPU the run trained on"
