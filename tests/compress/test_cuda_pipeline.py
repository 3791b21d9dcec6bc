"""The compression chain on a CUDA device: training stages on the GPU, KD teacher following."""

import json

import pytest


@pytest.mark.cuda
def test_finetune_distill_prune_quantize_on_cuda(write_recipe, cli, tmp_path):
    stages = [
        {"stage": "finetune", "train": {"epochs": 2, "batch_size": 16}},
        {"stage": "distill", "student": {"width": 0.5}, "train": {"epochs": 1, "batch_size": 16}},
        {"stage": "prune", "target": {"ratio": 0.5}, "steps": 1,
         "recovery": {"train": {"epochs": 1, "batch_size": 16}, "kd": {"teacher": "finetune"}}},
        {"stage": "quantize", "precision": "int8", "calibration": {"samples": 16}},
        {"stage": "export"},
    ]
    code, _, err = cli("run", write_recipe(stages, run={"device": "cuda"}), "-q")
    assert code == 0, err
    rec = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    assert [s["status"] for s in rec["stages"]] == ["completed"] * 5
    assert 0 <= rec["final"]["test_accuracy"] <= 1 and rec["stages"][-1]["metrics"]["evaluated_on"] == "onnxruntime"
    assert rec["host"]["gpu"], "run.json must name the GPU the run trained on"
