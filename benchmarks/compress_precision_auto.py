"""precision: auto on depthwise-heavy nets: FP32 vs INT8 vs dynamic INT8 measured, fastest kept.

MobileNetV3-Large (and EfficientNet-B0) at 224, random weights, pruned to ~50% MACs, batch 1,
2 threads, onnxruntime CPU. Accuracy is meaningless with random weights, so the budget is
opened wide here; tests/compress/test_quantize.py covers the accuracy side of the choice.
Run: .venv/bin/python benchmarks/compress_precision_auto.py [--quick]
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from compress_common import write_result  # noqa: E402

THREADS = 2


def one(arch: str, size: int, tmp: Path) -> dict:
    from edgeslim.compress import prune as P
    from edgeslim.compress import quantize as Q
    from edgeslim.data import build_data
    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.recipe import DataSpec

    torch.manual_seed(0)
    model = create_model(f"torchvision:{arch}", 1000).eval()
    ex = torch.zeros(1, 3, size, size)
    base = P.measure(model, ex, "macs")
    pruned = copy.deepcopy(model)
    ratio = P.search_ratio(pruned, ex, "l2", int(base * 0.5), "macs", iters=6)
    P.prune_once(pruned, ex, "l2", ratio)
    f32 = export_onnx(pruned, (3, size, size), tmp / f"{arch}.onnx").path
    data = build_data(
        DataSpec(
            source="synthetic",
            image_size=size,
            synthetic_classes=2,
            synthetic_per_class=20,
            val_fraction=0.25,
            test_fraction=0.25,
        ),
        seed=0,
    )
    calib = data.dataset("train").tensors()[0][:16].numpy()
    prep = Q.preprocess(f32, tmp / f"{arch}_prep.onnx")
    cands = {
        "fp32": f32,
        "int8": Q.quantize_static_qdq(prep, tmp / f"{arch}_int8.onnx", calib, Q.PtqSettings()),
        "int8_dynamic": Q.quantize_dynamic_int8(f32, tmp / f"{arch}_dyn.onnx"),
    }
    auto = Q.choose_precision(cands, f32, data, (3, size, size), 100.0, THREADS, 60)
    forced = Q.choose_precision(
        cands, f32, data, (3, size, size), 100.0, THREADS, 60, forced="int8"
    )
    return {
        "arch": arch,
        "image_size": size,
        "macs_fraction": round(P.measure(pruned, ex, "macs") / base, 4),
        "auto": auto,
        "forced_int8": {k: forced.get(k) for k in ("chosen", "reason", "warning")},
    }


def main() -> None:
    torch.set_num_threads(THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="es-prec-"))
    archs = (
        ["mobilenet_v3_large"]
        if "--quick" in sys.argv
        else ["mobilenet_v3_large", "efficientnet_b0"]
    )
    rows = [one(a, 224, tmp) for a in archs]
    write_result(
        "compress_precision_auto",
        {
            "settings": {
                "threads": THREADS,
                "batch": 1,
                "weights": "random",
                "provider": "CPUExecutionProvider",
            },
            "models": rows,
        },
    )


if __name__ == "__main__":
    main()
