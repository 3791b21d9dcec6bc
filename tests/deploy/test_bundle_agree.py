"""A bundle verifies, on the run's test split, that every INT8 runtime it may run scores what the
run measured in onnxruntime; one that scores lower is dropped from the runner's order, said why.

Real onnxruntime and OpenVINO sessions on a real quantized run. Whether the two runtimes differ on
this tiny model is up to their kernels, so the tests check the recorded rule (kept exactly when
within the budget) and exercise the drop path with a budget no runtime can meet.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from edgeslim.deploy.bundle.agree import needs_check, verify_runtimes

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory) -> Path:
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import NULL
    from edgeslim.recipe import parse_recipe

    out = tmp_path_factory.mktemp("runs")
    recipe = parse_recipe({
        "run": {"name": "q", "output_dir": str(out), "threads": 1, "latency_iters": 5},
        "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
        "data": {"source": "digits", "image_size": 16, "classes": ["0", "1", "2", "3"], "val_fraction": 0.2,
                 "test_fraction": 0.25},
        "stages": [{"stage": "finetune", "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.01}}},
                   {"stage": "quantize", "precision": "int8", "calibration": {"samples": 32}},
                   {"stage": "export"}],
    })
    return run_pipeline(recipe, NULL).run_dir


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed: nothing to verify beside onnxruntime")
def test_the_manifest_records_each_int8_runtime_checked_against_onnxruntime(int8_run, tmp_path):
    from edgeslim.deploy.bundle.build import build_bundle

    man = build_bundle(int8_run, tmp_path / "b", "x86-cpu", tarball=False)
    rt = man["runtime"]
    rec = rt["verified"]["openvino"]
    assert rec["reference"] == "onnxruntime" and rec["images"] > 100 and 0 <= rec["agreement"] <= 1
    assert rec["kept"] == ((rec["reference_top1"] - rec["top1"]) * 100 <= rec["budget_points"])
    assert ("openvino" in rt["order"]) == rec["kept"] and rt["order"][-1] == "onnxruntime"
    written = json.loads((tmp_path / "b" / "manifest.json").read_text())["runtime"]
    assert written["verified"] == rt["verified"]


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed: nothing to verify beside onnxruntime")
def test_a_runtime_below_the_budget_is_dropped_with_its_figures(int8_run):
    from edgeslim.deploy.bundle.build import data_of, load_run
    from edgeslim.deploy.bundle.runtimes import runtime_section

    onnx_path = int8_run / "02-export" / "model.onnx"
    sec = runtime_section(("openvino", "onnxruntime"), "int8", "int8", 1)
    out = verify_runtimes(onnx_path, sec, data_of(load_run(int8_run)), 1, budget=-101.0)  # no runtime meets it
    assert out["order"] == ["onnxruntime"] and "openvino" not in out["backends"]
    why = out["skipped"]["openvino"]
    assert "openvino scored" in why and "the runner uses onnxruntime" in why
    assert out["verified"]["openvino"]["kept"] is False
    assert sec["order"] == ["openvino", "onnxruntime"]  # the input section is not changed


def test_only_int8_runtimes_beside_onnxruntime_are_checked_and_the_rest_is_said():
    from edgeslim.deploy.bundle.runtimes import runtime_section

    assert needs_check(runtime_section(("openvino", "onnxruntime"), "fp32", "fp32", 1)) == []
    assert needs_check(runtime_section(("openvino",), "int8", "int8", 1)) == []  # nothing to fall back to
    sec = runtime_section(("openvino", "onnxruntime"), "int8", "int8", 1)
    assert needs_check(sec) == ["openvino"]
    out = verify_runtimes(Path("unused.onnx"), sec, None, 1)
    assert out["order"] == sec["order"] and "cannot be read here" in out["unverified"]["openvino"]
