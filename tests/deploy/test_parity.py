"""Parity gates: scale-relative FP32 errors, quantized agreement, failing export kept as .failed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgeslim.deploy.export.parity import ParityConfig, compare_outputs, fp32_parity, gate, quant_parity
from edgeslim.deploy.export.stage import newer_onnx
from edgeslim.errors import GateError
from edgeslim.stages.context import StageRecord


class _Fixed:
    """A backend returning precomputed outputs (the gate logic under test is the comparison)."""

    def __init__(self, out):
        self.out, self.i = out, 0

    def run(self, x):
        o = self.out[self.i : self.i + len(x)]
        self.i += len(x)
        return o


def test_error_is_judged_against_the_output_scale():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((8, 10)) * 1e8  # deep nets with random weights: logits ~1e8
    got = ref + 100.0  # absolute error 100, relative 1e-6: a sound export
    cfg = ParityConfig()
    (rep,) = compare_outputs([ref], [got], ["logits"], cfg)
    assert rep.passed and rep.max_abs_err == pytest.approx(100, rel=1e-6) and rep.rel_err < 1e-5
    assert rep.top1_agreement == 1.0
    small = rng.standard_normal((8, 10)) * 10  # the same absolute error on small logits is a bug
    (bad,) = compare_outputs([small], [small + 100.0], ["logits"], cfg)
    assert not bad.passed and bad.rel_err > 1


def test_fp32_report_names_output_place_and_inputs():
    ref = np.zeros((6, 4), np.float32)
    ref[:, 0] = 5.0
    got = ref.copy()
    got[3, 2] = 0.5  # one drifting element in input 3
    rep = fp32_parity(
        _Fixed(ref),
        _Fixed(got),
        np.zeros((6, 1), np.float32),
        ParityConfig(batch_size=4),
        output_names=["logits"],
    )
    assert not rep.passed
    o = rep.outputs[0]
    assert o.where == [3, 2] and o.worst_inputs[0] == 3 and o.max_abs_err == pytest.approx(0.5)
    with pytest.raises(
        GateError, match=r"output 'logits': max abs err 0.5 at \[3, 2\].*worst inputs \[3"
    ):
        gate(rep)


def test_non_finite_and_shape_mismatch_fail_with_reason():
    ref = np.ones((2, 3))
    (nan,) = compare_outputs([ref], [np.array([[1, np.nan, 1], [1, 1, 1]])], ["y"], ParityConfig())
    assert not nan.passed and "non-finite" in nan.problem and nan.where == [0, 1]
    (shp,) = compare_outputs([ref], [np.ones((2, 4))], ["y"], ParityConfig())
    assert not shp.passed and "shape [2, 4]" in shp.problem


def test_quantized_gate_uses_agreement_and_accuracy_drop(tmp_path):
    y = np.array([0, 1, 2, 3] * 5)
    parent = np.eye(4)[y] * 3.0
    artifact = parent.copy()
    artifact[:3] = np.eye(4)[(y[:3] + 1) % 4] * 3  # 3 of 20 flipped: agreement 0.85, drop 0.15
    x = np.zeros((20, 1), np.float32)
    rep = quant_parity(_Fixed(parent), _Fixed(artifact), x, y, ParityConfig())
    assert rep.metrics["top1_agreement"] == pytest.approx(0.85)
    assert rep.metrics["accuracy_drop"] == pytest.approx(0.15) and rep.metrics[
        "disagreeing_inputs"
    ] == [0, 1, 2]
    with pytest.raises(GateError, match="top-1 agreement 0.8500"):
        gate(rep, tmp_path / "parity.json", "somewhere.failed")
    assert json.loads((tmp_path / "parity.json").read_text())["passed"] is False
    loose = ParityConfig(quant_min_agreement=0.8, quant_max_accuracy_drop=0.2)
    ok = quant_parity(_Fixed(parent), _Fixed(artifact), x, y, loose)
    assert ok.passed


def test_newer_onnx_contract_with_quantize():
    def rec(i, name, model=None, onnx=None):
        return StageRecord(i, name, None, "completed", model_file=model, onnx_file=onnx)  # type: ignore[arg-type]

    ft, q = (
        rec(0, "finetune", model="model.pt"),
        rec(1, "quantize", model="model.pt", onnx="model.onnx"),
    )
    assert newer_onnx([ft, q]) is q  # quantize saved both: its ONNX is the deployable one
    assert newer_onnx([ft]) is None
    ex = rec(1, "export", onnx="model.onnx")
    assert (
        newer_onnx([ft, ex, rec(2, "finetune", model="model.pt")]) is None
    )  # model newer: re-export


class DataDependent(nn.Module):
    """Takes a branch on the input's values: tracing with zeros bakes in the wrong branch."""

    def __init__(self, num_classes: int = 4, in_chans: int = 3, **_):
        super().__init__()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(in_chans, num_classes)

    def forward(self, x):
        z = self.fc(self.pool(x).flatten(1))
        if (
            x.abs().sum() > 0
        ):  # dynamo refuses this; the TorchScript fallback silently specialises it
            return z
        return -z


@pytest.mark.filterwarnings("ignore:dynamo exporter failed")
def test_drifting_export_fails_the_stage_and_is_kept(write_recipe, cli, tmp_path):
    from edgeslim.models.registry import _BUILDERS, register_model

    if "drift_test_net" not in _BUILDERS:
        register_model("drift_test_net")(DataDependent)
    recipe = write_recipe(
        [{"stage": "finetune", "train": {"epochs": 1}}, {"stage": "export"}],
        model={"source": "drift_test_net", "kwargs": {}},
    )
    code, _, err = cli("run", recipe, "--quiet")
    assert code == 1 and "parity gate failed" in err and "output 'logits'" in err, err
    run = tmp_path / "runs" / "t"
    failed = run / "01-export.failed"
    assert (failed / "model.onnx").is_file() and not (run / "01-export").exists()
    rep = json.loads((failed / "parity.json").read_text())
    assert rep["passed"] is False and rep["outputs"][0]["top1_agreement"] < 0.5
    assert str(failed) in err
    assert json.loads((run / "run.json").read_text())["stages"][1]["status"] == "failed"
    torch.manual_seed(0)


def test_export_stage_finalizes_a_newer_qdq_model(digits_data_spec, tmp_path):
    """Contract with quantize: its QDQ model.onnx is finalized and gated, not re-exported."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from edgeslim.data import build_data
    from edgeslim.deploy.export.stage import ExportConfig, run_export
    from edgeslim.models.serialize import build_from_spec, save_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.onnxio.info import read_metadata
    from edgeslim.progress import NULL
    from edgeslim.recipe import parse_recipe
    from edgeslim.stages.context import StageContext

    recipe = parse_recipe(
        {"run": {"name": "q", "output_dir": str(tmp_path), "threads": 1}, "data": digits_data_spec,
         "stages": [{"stage": "quantize"}, {"stage": "export"}]}
    )
    data = build_data(recipe.data, 0)
    ft, q = tmp_path / "00-finetune", tmp_path / "01-quantize"
    q.mkdir(parents=True)
    model = build_from_spec(
        {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}, "base_num_classes": 10}
    )
    # A trained parent, so the gate compares confident predictions (an untrained net's argmax
    # agreement with its INT8 copy is a coin toss that another CPU's kernels can flip).
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.engine import fit

    fit(model, data, TrainConfig(epochs=3, batch_size=16, optimizer={"lr": 0.01}, tensorboard=False))
    model.eval()
    save_model(model, ft / "model.pt")
    fp32 = export_onnx(model, data.input_shape, q / "float.onnx", 17, exporter="torchscript").path
    x = data.dataset("train").tensors()[0][:64].numpy()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[i : i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(fp32), str(q / "model.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    hist = [
        StageRecord(0, "finetune", ft, "completed", model_file="model.pt"),
        StageRecord(1, "quantize", q, "completed", onnx_file="model.onnx"),
    ]
    work = tmp_path / "w"
    work.mkdir()
    ctx = StageContext(
        recipe,
        2,
        work,
        tmp_path,
        0,
        torch.device("cpu"),
        NULL,
        hist,
        ft / "model.pt",
        q / "model.onnx",
        data.class_names,
    )
    # The product's default gate (agreement >= 0.95, accuracy drop <= 0.02) on all 450 test
    # images. Measured (ATEN_CPU_CAPABILITY default/avx512, ONEDNN_MAX_CPU_ISA=AVX2): agreement
    # 0.993-0.998, drop <= 0.002: a margin of 19 disagreements and 8 lost images.
    cfg = ExportConfig(parity={"samples": 450})
    out = run_export(cfg, ctx)
    assert out.metrics["exporter"] == "reused:01-quantize" and out.metrics["precision"] == "int8"
    assert out.metrics["parity"] == "passed" and out.metrics["parity_inputs"] == 450
    assert out.metrics["parity_top1_agreement"] >= 0.95
    meta = read_metadata(out.onnx)
    assert meta["edgeslim.precision"] == "int8" and meta["edgeslim.class_names"] == data.class_names
    assert json.loads((work / "parity.json").read_text())["kind"] == "quantized"


@pytest.mark.filterwarnings("ignore:dynamo exporter failed")
def test_cli_export_gate_failure_keeps_the_file_as_failed(cli, tmp_path):
    from edgeslim.models.registry import _BUILDERS, register_model

    if "drift_test_net" not in _BUILDERS:
        register_model("drift_test_net")(DataDependent)
    out = tmp_path / "d.onnx"
    code, _, err = cli(
        "export", "drift_test_net", "--input-size", "16", "--out", out, "--samples", "8"
    )
    assert code == 1 and "parity gate failed" in err and "d.failed.onnx" in err
    assert not out.exists() and (tmp_path / "d.failed.onnx").is_file()
    assert json.loads((tmp_path / "d.failed.onnx.parity.json").read_text())["passed"] is False
