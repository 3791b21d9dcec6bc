"""onnxruntime, torch and OpenVINO backends on a trained tiny CNN, with parity between them.

Thresholds and why they are safe on any x86 CPU kernel:
* FP32 runtimes against onnxruntime's precise mode: relative error <= 1e-5 (the observed error
  is ~1e-7, float32 rounding of a 5-layer net; 100x margin) and top-1 agreement 1.0 over all
  160 images of a *trained* model, whose top-2 logit gaps are orders of magnitude above 1e-5.
* INT8 across runtimes (different integer kernels, rounding): agreement >= 0.9.
* BF16 (8-bit mantissa): relative error <= 5e-2 and agreement >= 0.95.
"""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch

from edgeslim.errors import InputError
from edgeslim.runtime import open_backend
from edgeslim.runtime.base import Backend, RuntimeOptions
from edgeslim.runtime.compare import compare_backends, relative_error, top1_agreement
from edgeslim.runtime.portable import bf16_support, cpu_features

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="pip install 'edgeslim[openvino]' (make test installs it)")

SHAPE = (3, 16, 16)
NATIVE_BF16, BF16_WHY = bf16_support(cpu_features())


@pytest.fixture(scope="module")
def reference(exported):
    return open_backend(exported.fp32, "onnxruntime", precise=True, threads=2)


def _min_margin(logits):
    top2 = -np.partition(-logits, 1, axis=1)[:, :2]  # the two largest logits per row
    return float((top2[:, 0] - top2[:, 1]).min())


def test_trained_model_margins_dwarf_the_fp32_tolerance(exported, reference):
    logits = reference.run(exported.x)
    scale = float(abs(logits).max())
    assert _min_margin(logits) > 1e-3 * scale  # >= 100x the 1e-5 relative tolerance below


def test_onnxruntime_session_is_configured_explicitly(exported, reference):
    be = open_backend(exported.fp32, "onnxruntime", threads=2)
    assert isinstance(be, Backend)
    so = be.session.get_session_options()
    assert so.intra_op_num_threads == 2
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    ref_so = reference.session.get_session_options()
    assert ref_so.graph_optimization_level.name == "ORT_ENABLE_BASIC"
    d = be.describe()
    assert (d["name"], d["device"], d["precision"], d["threads"]) == ("onnxruntime", "cpu", "fp32", 2)
    assert d["providers"] == ["CPUExecutionProvider"] and d["version"]
    spin = open_backend(exported.fp32, "onnxruntime", allow_spinning=True).session.get_session_options()
    assert spin.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert set(be.run_all(exported.x[:2])) == {"logits"}


def test_onnxruntime_refuses_a_precision_the_file_does_not_hold(exported):
    with pytest.raises(InputError, match=r"holds \(fp32\); got precision 'bf16'.*openvino"):
        open_backend(exported.fp32, "onnxruntime", precision="bf16")
    assert open_backend(exported.int8, "onnxruntime").describe()["precision"] == "int8"


def test_torch_matches_onnxruntime_precise(exported, reference):
    be = open_backend(exported.model, "torch", input_shape=SHAPE)
    r = compare_backends(reference, be, exported.x)
    assert r["rel_err"] <= 1e-5 and r["top1_agreement"] == 1.0
    assert be.describe()["name"] == "torch" and be.input_shape() == SHAPE


def test_torch_opens_an_edgeslim_model_pt(exported, tmp_path):
    from edgeslim.models.edits import set_spec
    from edgeslim.models.serialize import save_model

    spec = {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}, "in_chans": 3, "edits": [],
            "base_num_classes": 4}
    path = save_model(set_spec(copy.deepcopy(exported.model), spec), tmp_path / "model.pt")
    be = open_backend(path, input_shape=SHAPE)  # backend chosen from the suffix
    with torch.no_grad():
        want = exported.model(torch.from_numpy(exported.x[:8])).numpy()
    assert be.name == "torch" and relative_error(want, be.run(exported.x[:8])) == 0.0


@needs_openvino
def test_openvino_fp32_matches_onnxruntime_precise(exported, reference):
    ov = open_backend(exported.fp32, "openvino", threads=2)
    r = compare_backends(reference, ov, exported.x)
    assert r["n"] == 160 and r["rel_err"] <= 1e-5 and r["top1_agreement"] == 1.0
    d = ov.describe()
    assert d["precision"] == "fp32" and d["options"]["inference_precision_used"] == "f32"
    cc = d["options"]["compile_config"]
    assert cc["PERFORMANCE_HINT"] == "LATENCY" and cc["NUM_STREAMS"] == "1" and cc["INFERENCE_NUM_THREADS"] == "2"
    assert ov.output_names == ["logits"] and set(ov.run_all(exported.x[:3])) == {"logits"}


@needs_openvino
def test_openvino_runs_any_batch_and_a_fixed_shape(exported, reference):
    ov = open_backend(exported.fp32, "openvino")
    assert ov.run(exported.x[:7]).shape == (7, 4) and ov.run(exported.x[:1]).shape == (1, 4)
    fixed = open_backend(exported.fp32, "openvino", input_shape=(1, *SHAPE))
    assert fixed.input_shape() == SHAPE
    assert relative_error(reference.run(exported.x[:1]), fixed.run(exported.x[:1])) <= 1e-5


@needs_openvino
def test_openvino_runs_the_qdq_int8_onnx(exported):
    ort_int8 = open_backend(exported.int8, "onnxruntime", threads=2)
    ov_int8 = open_backend(exported.int8, "openvino", threads=2)
    assert ov_int8.describe()["precision"] == "int8"
    assert top1_agreement(ort_int8.run(exported.x), ov_int8.run(exported.x)) >= 0.9
    with pytest.raises(InputError, match="needs a QDQ INT8 ONNX"):
        open_backend(exported.fp32, "openvino", precision="int8")


def test_bf16_decision_follows_the_cpu_flags(exported):
    from edgeslim.runtime.openvino import compile_config

    skylake = "flags\t: avx2 avx512f avx512bw\n"
    zen4 = "flags\t: avx2 avx512f avx512_vnni avx512_bf16\n"
    with pytest.raises(InputError, match=r"precision bf16 on openvino: no native BF16.*avx512_bf16"):
        compile_config(RuntimeOptions(precision="bf16"), "fp32", cpuinfo=skylake)
    assert compile_config(RuntimeOptions(precision="bf16"), "fp32", cpuinfo=zen4)["inference_precision"] == "bf16"
    assert compile_config(RuntimeOptions(), "fp32", cpuinfo=zen4)["inference_precision"] == "f32"
    with pytest.raises(InputError, match="precise=True is an FP32 reference run"):
        compile_config(RuntimeOptions(precision="bf16", precise=True), "fp32", cpuinfo=zen4)


@needs_openvino
@pytest.mark.skipif(not NATIVE_BF16, reason=f"this CPU: {BF16_WHY}")
def test_openvino_bf16_really_runs_bf16_on_a_native_cpu(exported, reference):
    bf = open_backend(exported.fp32, "openvino", threads=2, precision="bf16")
    assert bf.describe()["options"]["inference_precision_used"] == "bf16"
    r = compare_backends(reference, bf, exported.x)
    # a true BF16 run differs from FP32 far beyond float32 rounding, yet stays close
    assert 1e-5 < r["rel_err"] <= 5e-2 and r["top1_agreement"] >= 0.95


@needs_openvino
def test_openvino_bad_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_backend(tmp_path / "none.onnx", "openvino")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + b"garbage" * 20)
    with pytest.raises(InputError):
        open_backend(bad, "openvino")


@needs_openvino
def test_openvino_ir_keeps_int8_precision(exported, tmp_path):
    import openvino as ov

    xml = tmp_path / "int8.xml"
    ov.save_model(ov.Core().read_model(str(exported.int8)), str(xml))
    be = open_backend(xml, "openvino", threads=2)
    assert be.describe()["precision"] == "int8"  # FakeQuantize ops in the IR
    assert be.run(exported.x[:5]).shape == (5, 4)
