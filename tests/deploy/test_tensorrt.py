"""TensorRT engines and onnxruntime GPU providers.

Planning runs everywhere. Engine builds need the ``tensorrt`` module and a CUDA GPU (marker
``tensorrt``); the onnxruntime CUDA provider needs ``onnxruntime-gpu`` and a GPU (marker ``cuda``).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgeslim.deploy.tensorrt import plan_build
from edgeslim.errors import InputError

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
NO_TRT = (
    "the tensorrt Python module is not installed (pip install 'edgeslim[tensorrt]'); its CUDA "
    "wheels "
    "(~1-2 GB) are not carried to the GPU test machine, so engine builds are only tested where "
    "TensorRT is preinstalled (JetPack, NGC containers)"
)


def _ort_gpu_reason() -> str | None:
    import onnxruntime as ort

    provs = ort.get_available_providers()
    if "CUDAExecutionProvider" not in provs:
        return (
            f"onnxruntime {ort.__version__} here is the CPU build (providers: {', '.join(provs)}); "
            "the CUDA execution provider needs onnxruntime-gpu"
        )
    return None


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """An FP32 model and a static-QDQ INT8 version of it (onnxruntime's real quantizer)."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    from edgeslim.data import build_data
    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.recipe import DataSpec
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.engine import fit

    d = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    # A trained model on real images (digits 0-3), so INT8/FP16 agreement is judged on confident
    # predictions: an untrained net on noise has near-tied logits that any kernel can flip.
    data = build_data(DataSpec(source="digits", image_size=16, classes=["0", "1", "2", "3"]), 0)
    model = create_model("tinycnn", num_classes=4, width=8, depth=2)
    fit(model, data, TrainConfig(epochs=3, batch_size=16, optimizer={"lr": 0.01}, tensorboard=False,
                                 eval_test=False))
    model.eval()
    fp32 = export_onnx(model, (3, 16, 16), d / "fp32.onnx", 17, exporter="torchscript").path
    calib = data.dataset("train").tensors()[0][:32].numpy()
    x = data.dataset("test").tensors()[0][:64].numpy()  # 64 test images

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(fp32), str(d / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ)
    return model, fp32, d / "int8.onnx", x


def test_plan_fp16_profile_and_int8_routes(onnx_files, tmp_path):
    _, fp32, int8, _ = onnx_files
    p = plan_build(fp32, "fp16", opt_batch=4, max_batch=16)
    assert p.dynamic_batch and p.input_name == "input" and p.int8_mode is None
    assert p.shapes == {"min": [1, 3, 16, 16], "opt": [4, 3, 16, 16], "max": [16, 3, 16, 16]}
    assert plan_build(int8, "int8").int8_mode == "explicit"
    with pytest.raises(InputError, match="QDQ .*use precision int8"):
        plan_build(int8, "fp16")
    with pytest.raises(InputError, match="needs calibration"):
        plan_build(fp32, "int8")
    cache = tmp_path / "calibration.cache"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\n")
    q = plan_build(fp32, "int8", calibration_cache=cache)
    assert q.int8_mode == "calibration" and q.calibration_cache == str(cache)
    with pytest.raises(InputError, match="min 1 <= opt 9 <= max 8"):
        plan_build(fp32, "fp16", opt_batch=9)
    with pytest.raises(InputError, match="precision 'int4'"):
        plan_build(fp32, "int4")


@pytest.mark.skipif(
    HAS_TRT, reason="tensorrt is installed here; the missing-dependency path cannot be shown"
)
def test_missing_tensorrt_names_the_install_line(onnx_files, tmp_path):
    from edgeslim.errors import MissingDependencyError
    from edgeslim.runtime import open_backend

    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgeslim\[tensorrt\]'"):
        open_backend(tmp_path / "m.engine")


def test_ort_provider_presets():
    from edgeslim.runtime.providers import ort_providers

    trt = ort_providers("tensorrt", fp16=True, cache_dir="/c")
    assert trt[0][0] == "TensorrtExecutionProvider" and trt[0][1]["trt_fp16_enable"] is True
    assert trt[0][1]["trt_engine_cache_path"] == "/c" and trt[-1] == "CPUExecutionProvider"
    assert ort_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(InputError, match="did you mean 'cuda'"):
        ort_providers("cudaa")


@pytest.mark.cuda
def test_ort_cuda_provider_matches_cpu(onnx_files):
    why = _ort_gpu_reason()
    if why:
        pytest.skip(why)
    from edgeslim.runtime import open_backend

    _, fp32, _, x = onnx_files
    cpu = open_backend(fp32).run(x)
    gpu = open_backend(fp32, "onnxruntime", device="cuda")
    assert "CUDAExecutionProvider" in gpu.providers
    # relative to the logit scale (as the product's parity gate judges): GPU convolutions may
    # run in TF32, whose error grows with the trained model's logits
    np.testing.assert_allclose(gpu.run(x), cpu, rtol=1e-3, atol=1e-3 * float(np.abs(cpu).max()))


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason=NO_TRT)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_build_run_and_parity(onnx_files, tmp_path, precision):
    import torch

    from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, quant_parity
    from edgeslim.deploy.tensorrt import build_engine
    from edgeslim.runtime import open_backend

    model, fp32, int8, x = onnx_files
    src = int8 if precision == "int8" else fp32
    plan = build_engine(
        plan_build(src, precision, opt_batch=4, max_batch=8),
        tmp_path / "m.engine",
        timing_cache=tmp_path / "timing.cache",
    )
    assert (
        plan["tensorrt"]
        and plan["gpu"] == torch.cuda.get_device_name(0)
        and "." in plan["compute_capability"]
    )
    assert (tmp_path / "m.engine.json").is_file() and (tmp_path / "timing.cache").stat().st_size > 0
    eng = open_backend(tmp_path / "m.engine")
    assert eng.run(x[:3]).shape == (3, 4) and eng.run(x[:8]).shape == (
        8,
        4,
    )  # dynamic batch within the profile
    ref = open_backend(model, "torch", input_shape=(3, 16, 16))
    if precision == "fp32":
        assert fp32_parity(ref, eng, x, ParityConfig(rtol=1e-3, atol=1e-3, batch_size=8)).passed
    else:
        y = ref.run(x).argmax(1)  # agreement with the float parent, as the gate measures it
        # The same INT8 model in onnxruntime on the CPU agrees on 64/64 images with the trained
        # parent (FP16 error is ~1e-4 of the logits); 0.9 allows 6 images to flip.
        rep = quant_parity(
            ref, eng, x, y,
            ParityConfig(quant_min_agreement=0.9, quant_max_accuracy_drop=0.1, batch_size=8),
        )
        assert rep.metrics["top1_agreement"] >= 0.9, rep.summary()


def test_run_calibration_set_is_found_and_hash_checked(tmp_path):
    from edgeslim.calibration.select import store
    from edgeslim.deploy.tensorrt import run_calibration_data

    assert run_calibration_data(tmp_path) is None
    arr = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    (tmp_path / "03-quantize").mkdir()
    store(arr, tmp_path / "03-quantize", "train")
    assert np.array_equal(run_calibration_data(tmp_path), arr)
    np.save(tmp_path / "03-quantize" / "calib.npy", arr * 2)
    with pytest.raises(InputError, match="changed since it was stored"):
        run_calibration_data(tmp_path)


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason=NO_TRT)
def test_int8_calibration_route_writes_a_cache(onnx_files, tmp_path):
    import json

    from edgeslim.calibration.select import store
    from edgeslim.deploy.tensorrt import build_engine_for_run

    _, fp32, _, x = onnx_files
    stage = tmp_path / "01-export"
    stage.mkdir()
    (stage / "model.onnx").write_bytes(fp32.read_bytes())
    store(x, stage, "train")
    (tmp_path / "run.json").write_text(
        json.dumps(
            {"stages": [{"dir": "01-export", "status": "completed", "onnx_file": "model.onnx"}]}
        )
    )
    meta = build_engine_for_run(tmp_path, tmp_path / "e" / "m.engine", "int8", opt_batch=2)
    assert meta["plan"]["int8_mode"] == "calibration"
    assert (tmp_path / "e" / "calibration.cache").stat().st_size > 0
