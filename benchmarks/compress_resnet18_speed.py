"""ResNet-18 at 224x224: pruned to <= 40% of its MACs + static INT8 vs the original, side by side.

Random weights (speed only). Batch 1, 2 threads, PyTorch eager / ORT FP32 / pruned ORT FP32 /
pruned ORT INT8 (QDQ) measured in alternating rounds in one process, with onnxruntime's default
thread spinning and with spinning off.
Run: .venv/bin/python benchmarks/compress_resnet18_speed.py
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from compress_common import interleaved_latency_ms, write_result  # noqa: E402

THREADS, SIZE, TARGET = 2, 224, 0.40


def main() -> None:
    import onnxruntime as ort

    from edgeslim.compress import prune as P
    from edgeslim.compress import quantize as Q
    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx

    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="es-r18-"))
    model = create_model("torchvision:resnet18", 1000).eval()
    ex = torch.zeros(1, 3, SIZE, SIZE)
    base = P.measure(model, ex, "macs")
    t0 = time.perf_counter()
    pruned = copy.deepcopy(model)
    ratio = P.search_ratio(pruned, ex, "l2", int(base * TARGET), "macs", iters=7)
    P.prune_once(pruned, ex, "l2", ratio)
    prune_s = time.perf_counter() - t0
    frac = P.measure(pruned, ex, "macs") / base
    f_orig = export_onnx(model, (3, SIZE, SIZE), tmp / "orig.onnx").path
    f_pruned = export_onnx(pruned, (3, SIZE, SIZE), tmp / "pruned.onnx").path
    calib = np.random.default_rng(0).standard_normal((16, 3, SIZE, SIZE)).astype(np.float32)
    prep = Q.preprocess(f_pruned, tmp / "pruned_prep.onnx")
    int8 = Q.quantize_static_qdq(prep, tmp / "pruned_int8.onnx", calib, Q.PtqSettings())
    def sess(p: Path, spinning: bool):
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        s = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})

    def eager(x: np.ndarray):
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    x = np.random.default_rng(1).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    # Two onnxruntime configurations: its default (idle worker threads spin, best latency for
    # one session) and spinning off (no spinning pool can steal cores from the next runner in
    # the round). Both are reported; the headline is onnxruntime's default.
    modes = {}
    for mode, spin in (("ort_default_spinning", True), ("ort_spinning_off", False)):
        lat = interleaved_latency_ms(
            {"torch_eager_fp32": eager, "ort_fp32": sess(f_orig, spin),
             "ort_pruned_fp32": sess(f_pruned, spin), "ort_pruned_int8": sess(int8, spin)},
            x,
        )
        best = lat["ort_pruned_int8"]["median_ms"]
        modes[mode] = {"latency": lat,
                       "speedup_vs_torch_eager": round(lat["torch_eager_fp32"]["median_ms"] / best, 2),
                       "speedup_vs_ort_fp32": round(lat["ort_fp32"]["median_ms"] / best, 2)}
    write_result(
        "compress_resnet18_speed",
        {
            "settings": {
                "image_size": SIZE,
                "batch": 1,
                "threads": THREADS,
                "weights": "random",
                "importance": "l2",
                "round_to": 8,
                "macs_target": TARGET,
            },
            "pruning": {
                "ratio": round(ratio, 4),
                "macs_before": base,
                "macs_fraction": round(frac, 4),
                "prune_search_s": round(prune_s, 1),
            },
            **modes["ort_default_spinning"],
            "modes": modes,
            "sizes_bytes": {p.name: p.stat().st_size for p in (f_orig, f_pruned, int8)},
        },
    )


if __name__ == "__main__":
    main()
