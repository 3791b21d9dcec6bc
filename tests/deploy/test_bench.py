"""edgeslim bench: statistics, JSON schema, batch sweep, threads, artifact kinds, errors, stage."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
NO_OPENVINO = "openvino is not installed (pip install 'edgeslim[openvino]')"

sys.path.insert(0, str(Path(__file__).parent))
from bench_helpers import conv_net, export  # noqa: E402

QUICK = ("--min-iters", "5", "--min-time", "0", "--warmup", "1", "--threads", "1")


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    return {
        "dyn": export(conv_net(1), d / "dyn.onnx"),
        "fixed": export(conv_net(1), d / "fixed.onnx", dynamic_batch=False),
    }


def test_bench_onnx_json_sweep_and_table(cli, onnx_models, tmp_path):
    out = tmp_path / "r.json"
    code, stdout, err = cli("bench", onnx_models["dyn"], "--batch", "1,3", "--json", out, *QUICK)
    assert code == 0, err
    r = json.loads(out.read_text())
    assert r["schema"] == "edgeslim.bench/1"
    for key in (
        "median_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "mean_ms",
        "std_ms",
        "min_ms",
        "throughput",
        "peak_rss_mb",
    ):
        assert r[key] > 0, key
    assert r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"]
    assert len(r["samples_ms"]) == r["iters"] >= 5
    assert [s["batch"] for s in r["sweep"]] == [1, 3]
    assert r["sweep"][1]["throughput"] == pytest.approx(3e3 / r["sweep"][1]["median_ms"])
    assert r["settings"]["intra_op_threads"] == 1 and r["settings"]["input_shape"] == [3, 16, 16]
    assert r["host"]["cores"] >= 1 and r["host"]["cpu"] and r["host"]["runtimes"]["onnxruntime"]
    assert (
        r["artifact"]["macs"] > 0
        and r["artifact"]["params"] > 0
        and r["artifact"]["size_bytes"] > 0
    )
    assert "median" in stdout and "items/s" in stdout and "MACs" in stdout


def test_min_time_and_min_iters_both_hold(onnx_models):
    from edgeslim.deploy.gate.bench import BenchOptions, run_benchmark

    t0 = time.perf_counter()
    r = run_benchmark(
        onnx_models["dyn"], BenchOptions(min_iters=3, min_time_s=0.3, warmup=0, threads=1)
    )
    assert time.perf_counter() - t0 >= 0.3 and r["iters"] > 3
    r = run_benchmark(
        onnx_models["dyn"], BenchOptions(min_iters=40, min_time_s=0.0, warmup=0, threads=1)
    )
    assert r["iters"] == 40


def test_onnx_macs_match_torch_count():
    import tempfile

    from edgeslim.measure import count_macs
    from edgeslim.onnxio.info import count_macs as onnx_macs

    model = conv_net(3)
    with tempfile.TemporaryDirectory() as d:
        path = export(model, Path(d) / "m.onnx")
        got = onnx_macs(path, (1, 3, 16, 16))
    assert got == pytest.approx(count_macs(model, (3, 16, 16)), rel=0.01)


def test_bench_torch_model_pt_and_registry_name(cli, tmp_path):
    from edgeslim.models.serialize import build_from_spec, save_model

    spec = {
        "source": "tinycnn",
        "kwargs": {"width": 8, "depth": 2},
        "in_chans": 3,
        "base_num_classes": 3,
    }
    pt = save_model(build_from_spec(spec), tmp_path / "model.pt")
    out = tmp_path / "pt.json"
    code, _, err = cli("bench", pt, "--image-size", "16", "--json", out, *QUICK)
    assert code == 0, err
    r = json.loads(out.read_text())
    assert r["artifact"]["kind"] == "torch" and r["settings"]["input_shape"] == [3, 16, 16]
    assert r["settings"]["intra_op_threads"] == 1 and r["artifact"]["macs"] > 0
    code, stdout, err = cli("bench", "tinycnn", "--image-size", "16", "-q", *QUICK)
    assert code == 0, err
    assert float(stdout.strip()) > 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (("missing.onnx",), "does not exist"),
        (("tinycnnn",), "did you mean 'tinycnn'"),
        (("@fixed", "--batch", "4"), "fixed batch size of 1"),
        (("@dyn", "--provider", "cdua"), "did you mean 'cuda'"),
        (("@dyn", "--threads", "0"), "--threads 0 is not valid"),
        (("@dyn", "--backend", "openvno"), "did you mean 'openvino'"),
        (("@dyn", "--backend", "tensorrt"), "--backend tensorrt cannot run 'dyn.onnx': it opens .engine, .plan"),
        (("@dyn", "--backend", "torch"), "--backend torch cannot run 'dyn.onnx'"),
        (("tinycnn", "--backend", "openvino"), "export it first"),
        (("@dyn", "--precision", "fp16"), "onnxruntime runs the precision the ONNX holds (fp32)"),
        (("@dyn", "--backend", "openvino", "--provider", "cuda"), "is an onnxruntime option"),
    ],
)
def test_bench_bad_input_exits_2(cli, onnx_models, args, needle):
    args = [str(onnx_models[a[1:]]) if a.startswith("@") else a for a in args]
    code, _, err = cli("bench", *args, *QUICK[:6])
    assert code == 2 and needle in err and err.count("\n") == 1


def test_bench_stage_writes_full_result(write_recipe, cli, tmp_path):
    recipe = write_recipe(
        stages=[
            {"stage": "finetune", "train": {"epochs": 1}},
            {"stage": "export", "exporter": "torchscript"},
            {"stage": "bench", "iters": 5, "min_time_s": 0, "warmup": 1, "sweep": [2]},
        ]
    )
    code, _, err = cli("run", recipe, "-q")
    assert code == 0, err
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    bench = [s for s in run["stages"] if s["name"] == "bench"][0]
    m = bench["metrics"]
    assert m["latency_ms"] > 0 and m["p99_ms"] >= m["latency_ms"] and set(m["sweep"]) == {"1", "2"}
    r = json.loads((tmp_path / "runs" / "t" / bench["dir"] / "bench.json").read_text())
    assert (
        r["median_ms"] == pytest.approx(m["latency_ms"], abs=1e-4)
        and r["artifact"]["kind"] == "onnx"
    )


@pytest.mark.cuda
def test_bench_torch_on_cuda_records_gpu(cli, tmp_path):
    out = tmp_path / "cuda.json"
    code, _, err = cli(
        "bench", "tinycnn", "--image-size", "16", "--device", "cuda", "--json", out, *QUICK
    )
    assert code == 0, err
    r = json.loads(out.read_text())
    assert r["settings"]["device"] == "cuda" and r["gpu_memory_mb"] > 0 and r["host"]["gpu"]


def test_backend_defaults_by_file_type():
    from edgeslim.deploy.gate.artifact import choose_backend

    assert choose_backend(Path("m.onnx"), None) == "onnxruntime"
    assert choose_backend(Path("m.xml"), None) == "openvino"
    assert choose_backend(Path("m.engine"), None) == "tensorrt"
    assert choose_backend(Path("model.pt"), None) == "torch" and choose_backend(Path("m.pt2"), None) == "torch"
    assert choose_backend(Path("m.onnx"), "openvino") == "openvino" and choose_backend("tinycnn", None) == "torch"




@pytest.mark.skipif(not HAS_OPENVINO, reason=NO_OPENVINO)
def test_bench_onnx_in_openvino_and_its_ir(cli, onnx_models, tmp_path):
    out = tmp_path / "ov.json"
    code, stdout, err = cli("bench", onnx_models["dyn"], "--backend", "openvino", "--json", out, *QUICK)
    assert code == 0, err
    r = json.loads(out.read_text())
    rt = r["settings"]["runtime"]
    assert r["settings"]["backend"] == "openvino" and r["artifact"]["kind"] == "onnx"
    assert rt["name"] == "openvino" and rt["options"]["inference_precision_used"] == "f32"  # never a silent bf16
    assert rt["options"]["compile_config"]["INFERENCE_NUM_THREADS"] == "1" and r["host"]["runtimes"]["openvino"]
    assert r["artifact"]["macs"] > 0 and "openvino" in stdout
    import openvino as ov  # an OpenVINO IR (.xml + .bin) opens in openvino by default

    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(onnx_models["fixed"])), str(xml))
    code, _, err = cli("bench", xml, "--json", out, *QUICK)
    r = json.loads(out.read_text())
    assert code == 0 and r["settings"]["backend"] == "openvino" and r["artifact"]["kind"] == "openvino-ir"
    assert r["settings"]["input_shape"] == [3, 16, 16]


@pytest.mark.skipif(not HAS_OPENVINO, reason=NO_OPENVINO)
def test_bench_openvino_bf16_only_on_native_bf16(cli, onnx_models, tmp_path):
    from edgeslim.runtime.portable import bf16_support, cpu_features

    native, why = bf16_support(cpu_features())
    out = tmp_path / "bf16.json"
    code, _, err = cli("bench", onnx_models["dyn"], "--backend", "openvino", "--precision", "bf16",
                       "--json", out, *QUICK)
    if native:
        assert code == 0, err
        opts = json.loads(out.read_text())["settings"]["runtime"]["options"]
        assert opts["inference_precision_used"] == "bf16"
    else:  # emulated BF16 is slower than FP32 and less accurate: refused with the reason
        assert code == 2 and why in err and err.count("\n") == 1
