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


# The QAT test's task: 4 synthetic shapes at 32 px, 200 per class, so the test split holds 200
# images and the export gate judges every one of them. On 40 images of a near-chance model (the
# old set-up) one kernel's rounding flipped the gate on an AMD EPYC. QAT fine-tunes an already
# trained model, so it uses a tenth of the training learning rate.
QAT_DATA = {"source": "synthetic", "image_size": 32, "channels": 3, "synthetic_classes": 4,
            "synthetic_per_class": 200, "val_fraction": 0.2, "test_fraction": 0.25}
QAT_MODEL = {"source": "tinycnn", "kwargs": {"width": 16, "depth": 2}}
QAT_STAGES = [
    {"stage": "finetune",
     "train": {"epochs": 8, "batch_size": 16, "optimizer": {"lr": 0.003}, "tensorboard": False}},
    {"stage": "quantize", "method": "qat", "calibration": {"samples": 64}, "latency_iters": 10,
     "qat": {"train": {"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.0003},
                       "tensorboard": False},
             "kd": {"temperature": 2.0}}},
    {"stage": "export", "parity": {"samples": 200}},
]


def test_qat_exports_qdq_and_export_stage_finalizes_it(write_recipe, cli, tmp_path):
    # Why the product's default gate (quant_min_agreement 0.95, quant_max_accuracy_drop 0.02) is
    # safe here: on AMD EPYC Zen 4, and with the kernels of other CPUs simulated
    # (ATEN_CPU_CAPABILITY=default/avx2, ONEDNN_MAX_CPU_ISA=AVX2/SSE41, onnxruntime graph
    # optimizations off), the float parent scored 0.995-1.00, the QAT INT8 model 1.00, agreement
    # 0.995-1.00 and accuracy drop <= 0.00 on the 200 gated images. The gate allows 10
    # disagreements and a net 4 lost images: a 9-disagreement, 4-image margin.
    code, _, err = cli("run", write_recipe(QAT_STAGES, model=QAT_MODEL, data=QAT_DATA), "--quiet")
    assert code == 0, err
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    ft, q, ex = (s["metrics"] for s in run["stages"])
    assert ft["test_accuracy"] >= 0.9, "the parent must be trained for the gate to mean anything"
    assert q["precision"] == "int8" and "qat" in q and q["evaluated_on"] == "onnxruntime"
    assert q["test_accuracy"] >= 0.9
    ops = {
        n.op_type
        for n in onnx.load(str(tmp_path / "runs" / "t" / "01-quantize" / "model.onnx")).graph.node
    }
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert run["stages"][2]["status"] == "completed" and ex["exporter"] == "reused:01-quantize"
    assert ex["parity"] == "passed" and ex["parity_inputs"] == 200
    assert ex["parity_top1_agreement"] >= 0.95 and ex["parity_accuracy_drop"] <= 0.02
