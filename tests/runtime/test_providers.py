"""The provider/precision table, the CPU probe (fake /proc/cpuinfo texts) and portable configs."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from edgeslim.errors import InputError
from edgeslim.runtime import portable, providers
from edgeslim.runtime.providers import precision_candidates

# Trimmed /proc/cpuinfo texts of real CPU families (flags abbreviated to the relevant ones).
ZEN4 = "model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n"
SKYLAKE = "model name\t: Intel Xeon Gold 6148\nflags\t\t: fpu avx2 avx512f avx512bw\n"
SAPPHIRE = "model name\t: Intel Xeon 8480+\nflags\t: avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm asimddp sve\n"
ALL_AVAILABLE = {"onnxruntime": None, "openvino": None}


@pytest.mark.parametrize("text, native, words", [
    (ZEN4, True, "avx512_bf16"),
    (SAPPHIRE, True, "amx_bf16"),
    (SKYLAKE, False, "no native BF16"),
    (GRAVITON3, False, "no native BF16"),
    ("", False, "unknown"),
])
def test_bf16_native_only_with_avx512_bf16_or_amx(text, native, words):
    got, why = portable.bf16_support(portable.cpu_features(text))
    assert got is native and words in why


def test_cpu_features_parse_flags_and_arm_features():
    f = portable.cpu_features(SAPPHIRE)
    assert f["model"] == "Intel Xeon 8480+" and f["amx_int8"] and f["avx512_vnni"] and not f["avx_vnni"]
    assert f["arm"] is None
    arm = portable.cpu_features(GRAVITON3)
    assert arm["arm"] == {"bf16": True, "i8mm": True, "asimddp": True} and not arm["avx2"]
    assert portable.int8_support(portable.cpu_features(SKYLAKE))[0] is False


def test_bf16_candidate_only_where_native_with_the_reason():
    skl = {(c.backend, c.precision): c for c in precision_candidates(cpuinfo=SKYLAKE, available=ALL_AVAILABLE)}
    assert "avx512_bf16" in skl["openvino", "bf16"].skipped
    assert skl["onnxruntime", "bf16"].skipped == "onnxruntime does not run bf16 on cpu"
    assert skl["openvino", "int8"].skipped is None and skl["onnxruntime", "int8_dynamic"].skipped is None
    zen = {(c.backend, c.precision): c for c in precision_candidates(cpuinfo=ZEN4, available=ALL_AVAILABLE)}
    assert zen["openvino", "bf16"].skipped is None
    assert zen["openvino", "bf16"].options == {"inference_precision": "bf16"}
    json.dumps([c.to_json() for c in zen.values()])  # recorded in run.json as is


def test_an_unavailable_backend_skips_its_candidates_with_its_reason():
    gone = {"onnxruntime": None, "openvino": "openvino is not installed (pip install 'edgeslim[openvino]')"}
    cands = precision_candidates(cpuinfo=ZEN4, available=gone)
    ov = [c for c in cands if c.backend == "openvino" and c.precision in ("fp32", "int8")]
    assert ov and all("openvino is not installed" in c.skipped for c in ov)
    assert all(c.skipped is None for c in cands if c.backend == "onnxruntime" and c.precision == "fp32")


def test_ort_presets_with_options():
    assert providers.ort_providers("cpu") == ["CPUExecutionProvider"]
    trt = providers.ort_providers("tensorrt", fp16=True, cache_dir="/tmp/c")
    assert trt[0][0] == "TensorrtExecutionProvider" and trt[0][1]["trt_fp16_enable"] is True
    assert trt[0][1]["trt_engine_cache_path"] == "/tmp/c" and trt[-1] == "CPUExecutionProvider"
    precise = providers.ort_providers("cuda", precise=True)
    assert precise[0] == ("CUDAExecutionProvider", {"use_tf32": 0})  # no TF32 in a reference run
    assert providers.preset_of(trt) == "tensorrt" and providers.provider_names(precise)[0] == "CUDAExecutionProvider"
    with pytest.raises(InputError, match="did you mean 'cuda'"):
        providers.ort_providers("cudaa")


def test_runner_config_is_resolved_json_and_portable_applies_it():
    cfg = providers.runner_config("onnxruntime", "cpu", "int8", threads=2)
    assert json.loads(json.dumps(cfg)) == cfg
    so = portable.ort_session_options(ort, cfg)
    assert so.intra_op_num_threads == 2
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == str(int(providers.DEFAULT_ALLOW_SPINNING))
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    precise = portable.ort_session_options(ort, {**cfg, "precise": True})
    assert precise.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ov = portable.ov_compile_config(providers.runner_config("openvino", "cpu", "bf16", threads=2))
    assert ov == {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_PRECISION_HINT": "bf16",
                  "ENABLE_CPU_PINNING": "YES", "INFERENCE_NUM_THREADS": "2"}
    with pytest.raises(InputError, match=r"unknown precision for onnxruntime on cpu 'bf16'"):
        providers.runner_config("onnxruntime", "cpu", "bf16")
    with pytest.raises(InputError, match="did you mean 'openvino'"):
        providers.runner_config("openvin")


def test_portable_imports_only_stdlib_and_numpy():
    """It is shipped to devices without edgeslim: anything else would fail to import there."""
    tree = ast.parse(Path(portable.__file__).read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert mods - set(sys.stdlib_module_names) - {"__future__"} == {"numpy"}
