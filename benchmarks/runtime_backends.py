"""Runtime backends side by side: which runtime x precision is fastest on this CPU.

In one process, batch 1, N threads (default 2), interleaved rounds (the order rotates every
round, so machine noise falls on every variant alike): eager PyTorch FP32, onnxruntime FP32,
onnxruntime FP32 again (a second session of the same file: the self-compare, whose ratio must
be ~1.00 or the figures are noise), onnxruntime INT8 (QDQ), OpenVINO FP32, OpenVINO INT8 (the
same QDQ ONNX), OpenVINO BF16 (native-BF16 CPUs only; else the reason) and, when ``nncf`` is
installed, OpenVINO INT8 quantized by NNCF from the FP32 ONNX. Each pass runs with
onnxruntime's thread spinning off (edgeslim's default) and on, which is the measurement behind
``providers.DEFAULT_ALLOW_SPINNING``. Also recorded: the CPU flags (VNNI, BF16, AMX), versions,
OpenVINO f32 vs onnxruntime (precise) parity, and each INT8 file's error against FP32.

Random weights (latency does not depend on them; accuracy does, so no accuracy is claimed).

    .venv/bin/python benchmarks/runtime_backends.py                 # quiet machine: the figures
    .venv/bin/python benchmarks/runtime_backends.py --quick --models resnet18   # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {"resnet18": "torchvision:resnet18", "mobilenet_v3_large": "torchvision:mobilenet_v3_large"}
SELF_A, SELF_B = "ort_fp32", "ort_fp32_self"


def build_files(name: str, size: int, work: Path, calib: np.ndarray) -> dict[str, Any]:
    """Random-weight model, its static batch-1 FP32 ONNX and a U8S8 QDQ INT8 ONNX."""
    from edgeslim.compress import quantize as Q
    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx

    model = create_model(MODELS[name], 1000).eval()
    fp32 = export_onnx(model, (3, size, size), work / f"{name}.onnx", dynamic_batch=False).path
    prep = Q.preprocess(fp32, work / f"{name}_prep.onnx")
    int8 = Q.quantize_static_qdq(prep, work / f"{name}_int8.onnx", calib, Q.PtqSettings())
    return {"model": model, "fp32": fp32, "int8": int8, "nncf": nncf_int8(fp32, calib, work / f"{name}_nncf.xml")}


def nncf_int8(fp32: Path, calib: np.ndarray, out: Path) -> Path | str:
    """OpenVINO IR quantized by NNCF (default preset) from the FP32 ONNX, or why not."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        return f"nncf not installed ({exc}); pip install nncf to measure it"
    model = ov.Core().read_model(str(fp32))
    ds = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    ov.save_model(nncf.quantize(model, ds, subset_size=len(calib)), str(out))
    return out


def open_variants(files: dict[str, Any], size: int, threads: int, spinning: bool) -> tuple[dict, dict]:
    """name -> backend for every variant that runs here; name -> reason for those that do not."""
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.providers import cpu_precision_support

    shape = (1, 3, size, size)
    ort = {"threads": threads, "allow_spinning": spinning}
    ov = {"threads": threads, "input_shape": shape}
    out = {
        "eager_fp32": open_backend(files["model"], "torch", input_shape=shape[1:], threads=threads),
        SELF_A: open_backend(files["fp32"], "onnxruntime", **ort),
        SELF_B: open_backend(files["fp32"], "onnxruntime", **ort),
        "ort_int8": open_backend(files["int8"], "onnxruntime", **ort),
        "ov_fp32": open_backend(files["fp32"], "openvino", **ov),
        "ov_int8": open_backend(files["int8"], "openvino", **ov),
    }
    skipped = {}
    cpu = cpu_precision_support()
    if cpu["bf16_native"]:
        out["ov_bf16"] = open_backend(files["fp32"], "openvino", precision="bf16", **ov)
    else:
        skipped["ov_bf16"] = cpu["bf16_reason"]
    if isinstance(files["nncf"], Path):
        out["ov_int8_nncf"] = open_backend(files["nncf"], "openvino", **ov)
    else:
        skipped["ov_int8_nncf"] = files["nncf"]
    return out, skipped


def self_compare(per_round: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Median(B)/median(A) of two sessions of the same file: overall and per round."""
    a, b = per_round[SELF_A], per_round[SELF_B]
    per = [float(np.median(rb) / np.median(ra)) for ra, rb in zip(a, b, strict=True)]
    overall = float(np.median([s for r in b for s in r]) / np.median([s for r in a for s in r]))
    return {"ratio": round(overall, 4), "round_ratio_min": round(min(per), 4),
            "round_ratio_max": round(max(per), 4), "rounds": len(per)}


def measure(backends: dict[str, Any], x: np.ndarray, rounds: int, calls: int) -> dict[str, Any]:
    from edgeslim.runtime.timing import interleaved_rounds, interleaved_summary

    fns = {n: (lambda b=b: b.run(x)) for n, b in backends.items()}
    rounds = -(-rounds // len(fns)) * len(fns)  # a whole number of rotations: every variant in every slot
    per_round = interleaved_rounds(fns, rounds=rounds, calls=calls, warmup=5)
    summ = interleaved_summary(per_round)
    lat = {n: {k: round(s[k], 4) for k in ("median_ms", "p90_ms", "min_ms", "iters")} | {
        "round_medians_ms": s["round_medians_ms"]} for n, s in summ.items()}
    eager, ort = lat["eager_fp32"]["median_ms"], lat[SELF_A]["median_ms"]
    fastest = min((n for n in lat if n not in ("eager_fp32", SELF_B)), key=lambda n: lat[n]["median_ms"])
    return {
        "latency": lat,
        "speedup_vs_eager": {n: round(eager / v["median_ms"], 2) for n, v in lat.items()},
        "speedup_vs_ort_fp32": {n: round(ort / v["median_ms"], 2) for n, v in lat.items()},
        "fastest": fastest,
        "self_compare": self_compare(per_round),
    }


def fidelity(files: dict[str, Any], backends: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    """OpenVINO f32 vs onnxruntime precise (the parity gate) and each variant vs that reference."""
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.compare import relative_error, top1_agreement

    ref_be = open_backend(files["fp32"], "onnxruntime", precise=True, threads=2)
    ref = np.concatenate([ref_be.run(x[i:i + 1]) for i in range(len(x))])
    out = {}
    for n, b in backends.items():
        got = np.concatenate([b.run(x[i:i + 1]) for i in range(len(x))])
        out[n] = {"rel_err": float(relative_error(ref, got)), "top1_agreement": top1_agreement(ref, got)}
    return {"reference": "onnxruntime precise fp32", "n": len(x), "per_variant": out,
            "note": "random weights: INT8/BF16 agreement here is not an accuracy claim"}


def run_model(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from edgeslim.onnxio.info import count_macs, onnx_info
    from edgeslim.runtime.timing import make_input

    rng = np.random.default_rng(0)
    calib = rng.standard_normal((args.calib, 3, args.size, args.size)).astype(np.float32)
    t0 = time.perf_counter()
    files = build_files(name, args.size, work, calib)
    res: dict[str, Any] = {"source": MODELS[name], "build_s": round(time.perf_counter() - t0, 1), "files": {}}
    for k in ("fp32", "int8"):
        info = onnx_info(files[k])
        res["files"][k] = {"size_bytes": files[k].stat().st_size, "params": info.params,
                           "macs": count_macs(files[k], (1, 3, args.size, args.size)), "precision": info.precision}
    x = make_input((3, args.size, args.size), 1)
    for spin in args.spinning:
        backends, skipped = open_variants(files, args.size, args.threads, spin == "on")
        res[f"spinning_{spin}"] = measure(backends, x, args.rounds, args.calls)
        res["skipped"] = skipped
        res["backends"] = {n: b.describe() for n, b in backends.items()}
        if spin == args.spinning[0]:
            res["fidelity"] = fidelity(files, backends, make_input((3, args.size, args.size), args.fidelity_n, 1))
        del backends
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=10, help="calls of each variant per round")
    ap.add_argument("--calib", type=int, default=32, help="calibration images (random) for INT8")
    ap.add_argument("--fidelity-n", type=int, default=16)
    ap.add_argument("--spinning", default="off,on", help="onnxruntime spinning passes: off,on")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 rounds x 3 calls, 8 calib images")
    ap.add_argument("--out", default=None, help="JSON path (default results/runtime_backends[_smoke].json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.calib, args.fidelity_n = 3, 3, 8, 4
    args.spinning = args.spinning.split(",")
    import torch

    from edgeslim.runtime.providers import cpu_precision_support

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {
        "benchmark": "runtime_backends",
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"batch": 1, "weights": "random"},
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
        "cpu": cpu_precision_support(),
        "models": {},
    }
    if args.quick:
        out["note"] = "smoke test (few calls): checks the script runs; its figures are not results"
    with tempfile.TemporaryDirectory(prefix="es-runtime-bench-") as tmp:
        for name in args.models.split(","):
            out["models"][name] = run_model(name, args, Path(tmp))
    from edgeslim.fsutil import atomic_write_json

    path = Path(args.out) if args.out else RESULTS / ("runtime_backends_smoke.json" if args.quick
                                                      else "runtime_backends.json")
    atomic_write_json(path, out)
    print(json.dumps({n: {s: {"fastest": m[s]["fastest"], "self": m[s]["self_compare"]["ratio"],
                              "median_ms": {k: v["median_ms"] for k, v in m[s]["latency"].items()}}
                          for s in (f"spinning_{x}" for x in args.spinning)} for n, m in out["models"].items()},
                     indent=1))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
