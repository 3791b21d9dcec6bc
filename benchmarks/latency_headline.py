"""Headline latency, side by side in one process: PyTorch eager FP32 vs onnxruntime FP32 vs
onnxruntime INT8 (static QDQ) vs pruned (30% channels, torch-pruning) + INT8, at 224 px.

Weights are random (no download here): latency does not depend on weight values. Variants are
timed in rotating order over several passes so machine load spreads over all of them.

    .venv/bin/python benchmarks/latency_headline.py [--models resnet18,mobilenet_v3_large]
        [--threads N] [--passes 5] [--pass-time 0.6]
Writes benchmarks/results/latency_headline.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_common import write_result  # noqa: E402


def _variants(name: str, work: Path, threads: int | None) -> tuple[dict, dict]:
    import torch

    from edgeslim.compress.prune import prune_once
    from edgeslim.compress.quantize import PtqSettings, preprocess, quantize_static_qdq
    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.runtime import open_backend

    if threads:
        torch.set_num_threads(threads)
    shape = (3, 224, 224)
    calib = np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32)
    model = create_model(f"torchvision:{name}").eval()
    out, info = {"torch eager fp32": open_backend(model, "torch", input_shape=shape)}, {}

    def onnx_pair(m, tag: str) -> None:
        fp32 = export_onnx(m, shape, work / f"{tag}.onnx", dynamic_batch=False).path
        pre = preprocess(fp32, work / f"{tag}-pre.onnx")
        int8 = quantize_static_qdq(pre, work / f"{tag}-int8.onnx", calib, PtqSettings())
        info[tag] = {"fp32_bytes": fp32.stat().st_size, "int8_bytes": int8.stat().st_size}
        if tag == "base":
            out["onnxruntime fp32"] = open_backend(fp32, "onnxruntime", threads=threads)
            out["onnxruntime int8"] = open_backend(int8, "onnxruntime", threads=threads)
        else:
            out["pruned 30% + int8"] = open_backend(int8, "onnxruntime", threads=threads)

    onnx_pair(model, "base")
    try:
        pruned = prune_once(
            create_model(f"torchvision:{name}").eval(), torch.zeros(1, *shape), "l1", 0.3
        )
        onnx_pair(pruned, "pruned")
    except Exception as exc:  # report, don't hide: the other variants are still worth having
        info["pruned_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out, info


def _time(backends: dict, passes: int, pass_time: float) -> dict:
    from edgeslim.runtime.timing import summarize, time_calls

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    names = list(backends)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        time_calls(lambda n=n: backends[n].run(x), warmup=3, min_iters=1, min_time_s=0)
    for p in range(passes):
        for n in names[p % len(names) :] + names[: p % len(names)]:
            samples[n] += time_calls(
                lambda n=n: backends[n].run(x), warmup=1, min_iters=3, min_time_s=pass_time
            )
    res = {n: {k: v for k, v in summarize(s).items() if k != "max_ms"} for n, s in samples.items()}
    base = res[names[0]]["median_ms"]
    for n in names:
        res[n]["speedup_vs_torch"] = base / res[n]["median_ms"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet18,mobilenet_v3_large")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--pass-time", type=float, default=0.6)
    args = ap.parse_args()
    from edgeslim.deploy.gate.bench import host_fingerprint

    results = {}
    for name in args.models.split(","):
        t0 = time.time()
        with tempfile.TemporaryDirectory() as d:
            backends, info = _variants(name, Path(d), args.threads)
            results[name] = {"latency": _time(backends, args.passes, args.pass_time), "files": info}
        results[name]["wall_s"] = round(time.time() - t0, 1)
        for n, r in results[name]["latency"].items():
            print(
                f"{name:>20} {n:>20} {r['median_ms']:8.2f} ms  x{r['speedup_vs_torch']:.2f}",
                flush=True,
            )
    write_result(
        "latency_headline",
        {
            "benchmark": "latency_headline",
            "image_size": 224,
            "batch": 1,
            "threads": args.threads or "runtime default",
            "weights": "random (latency only)",
            "host": host_fingerprint(),
            "models": results,
        },
    )


if __name__ == "__main__":
    main()
