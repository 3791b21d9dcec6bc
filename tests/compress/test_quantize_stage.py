"""The quantize stage in a pipeline: measured on the ONNX it ships, calibration hashed."""

from __future__ import annotations

import hashlib
import json

import onnx


def _run(write_recipe, cli, tmp_path, quant: dict, extra: list | None = None) -> dict:
    stages = [
        {"stage": "finetune", "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.003}}},
        {"stage": "quantize", "calibration": {"samples": 32}, "latency_iters": 10, **quant},
    ] + (extra or [])
    path = write_recipe(stages, model={"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}})
    code, _, err = cli("run", path, "--quiet")
    assert code == 0, err
    return json.loads((tmp_path / "runs" / "t" / "run.json").read_text())


def test_auto_precision_is_measured_and_explained(write_recipe, cli, tmp_path):
    run = _run(write_recipe, cli, tmp_path, {"precision": "auto", "candidates": ["fp32", "int8"]})
    m = run["stages"][1]["metrics"]
    choice = m["precision_choice"]
    assert m["evaluated_on"] == "onnxruntime" and m["precision"] == choice["chosen"]
    assert {r["precision"] for r in choice["candidates"]} == {"fp32", "int8"}
    assert choice["chosen"] in choice["reason"] and "fastest" in choice["reason"]
    stage_dir = tmp_path / "runs" / "t" / "01-quantize"
    cal = json.loads((stage_dir / "calib.json").read_text())
    assert cal["count"] == 32
    assert cal["sha256"] == hashlib.sha256((stage_dir / "calib.npy").read_bytes()).hexdigest()
    assert (stage_dir / "float.onnx").is_file() and not (stage_dir / "candidates").exists()


def test_qat_exports_qdq_and_export_stage_finalizes_it(write_recipe, cli, tmp_path):
    run = _run(
        write_recipe,
        cli,
        tmp_path,
        {
            "method": "qat",
            "qat": {"train": {"epochs": 1, "batch_size": 16}, "kd": {"temperature": 2.0}},
        },
        extra=[{"stage": "export"}],
    )
    m = run["stages"][1]["metrics"]
    assert m["precision"] == "int8" and "qat" in m
    ops = {
        n.op_type
        for n in onnx.load(str(tmp_path / "runs" / "t" / "01-quantize" / "model.onnx")).graph.node
    }
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert run["stages"][2]["status"] == "completed"
