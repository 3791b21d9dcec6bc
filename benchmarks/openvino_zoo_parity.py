"""OpenVINO f32 against onnxruntime (precise) on a fixed 10-model sample of torchvision's zoo.

The gate a second runtime has to pass before edgeslim measures or ships it: the same ONNX file
(edgeslim's exporter, 224 px, random weights -- nothing is downloaded) run in OpenVINO as a
bundle runs it (CPU plugin, latency hint, one stream, pinned threads, explicit f32 inference
precision) and in onnxruntime's precise reference mode (basic graph optimizations,
deterministic compute). Pass: relative error (max |ort - ov| / max |ort|) <= 1e-5 and top-1
agreement 1.0 on N inputs. The sample spans the families of the zoo: ResNet, MobileNetV3,
EfficientNet, ConvNeXt, RegNet, DenseNet, ShuffleNet, SqueezeNet, ViT and MNASNet. torchvision
zero-initialises some heads (ViT): such weights are randomised, or every logit would be 0 and
the comparison vacuous. Parity does not depend on machine load, so the figures are results on
any machine.

    .venv/bin/python benchmarks/openvino_zoo_parity.py              # the 10 models, N=16
    .venv/bin/python benchmarks/openvino_zoo_parity.py --quick      # 2 models, N=4 (smoke test)
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
SAMPLE = ("resnet18", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf",
          "densenet121", "shufflenet_v2_x1_0", "squeezenet1_1", "vit_b_16", "mnasnet1_0")
MAX_REL_ERR, MIN_AGREEMENT = 1e-5, 1.0


def randomize_zero_weights(model: Any) -> list[str]:
    """Give zero-initialised weight matrices (ViT's head) small random values; return their names."""
    import torch

    names = []
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0, 0.02)
                names.append(n)
    return names


def one(name: str, args: argparse.Namespace, work: Path, x: np.ndarray) -> dict[str, Any]:
    import torch

    from edgeslim.models.registry import create_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.compare import compare_backends

    torch.manual_seed(0)
    model = create_model(f"torchvision:{name}", 1000).eval()
    randomized = randomize_zero_weights(model)
    t0 = time.perf_counter()
    res = export_onnx(model, (3, args.size, args.size), work / f"{name}.onnx", 17, True)
    export_s = time.perf_counter() - t0
    ref = open_backend(res.path, "onnxruntime", precise=True, threads=args.threads)
    ov = open_backend(res.path, "openvino", threads=args.threads)
    cmp = compare_backends(ref, ov, x, batch=args.batch)
    out = {
        "params": int(sum(p.numel() for p in model.parameters())), "exporter": res.exporter,
        "export_s": round(export_s, 1), "randomized_zero_weights": randomized,
        "n": cmp["n"], "rel_err": cmp["rel_err"], "max_abs_err": cmp["max_abs_err"],
        "top1_agreement": cmp["top1_agreement"],
        "openvino_inference_precision": ov.describe()["options"]["inference_precision_used"],
        "pass": cmp["rel_err"] <= MAX_REL_ERR and cmp["top1_agreement"] >= MIN_AGREEMENT,
    }
    res.path.unlink(missing_ok=True)
    for extra in work.glob(f"{name}.onnx*"):
        extra.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(SAMPLE))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=16, help="inputs compared per model")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke test: resnet18 and squeezenet1_1, N=4")
    ap.add_argument("--out", default=None, help="JSON path (default results/openvino_zoo_parity[_smoke].json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.n = "resnet18,squeezenet1_1", 4
    from importlib import metadata

    import torch

    from edgeslim.fsutil import atomic_write_json
    from edgeslim.runtime.providers import cpu_precision_support
    from edgeslim.runtime.timing import make_input

    torch.set_num_threads(args.threads)
    cpu = cpu_precision_support()
    out: dict[str, Any] = {
        "benchmark": "openvino_zoo_parity",
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {
            "weights": "random (zero-initialised weight matrices randomised)", "inputs": "standard normal, seed 0",
            "reference": "onnxruntime precise (basic graph optimizations, deterministic compute), CPU",
            "candidate": "openvino CPU: latency hint, 1 stream, pinned threads, INFERENCE_PRECISION_HINT f32",
            "rel_err": "max |ort - ov| / max |ort| over all N logits", "max_rel_err": MAX_REL_ERR,
            "min_top1_agreement": MIN_AGREEMENT},
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpu": cpu["features"]["model"], "bf16_native": cpu["bf16_native"],
                        "versions": {p: metadata.version(p) for p in ("torch", "onnxruntime", "openvino")}},
        "models": {},
    }
    if args.quick:
        out["note"] = "smoke test: 2 models, 4 inputs"
    path = Path(args.out) if args.out else RESULTS / ("openvino_zoo_parity_smoke.json" if args.quick
                                                      else "openvino_zoo_parity.json")
    x = make_input((3, args.size, args.size), args.n)
    with tempfile.TemporaryDirectory(prefix="es-ov-parity-") as tmp:
        for name in args.models.split(","):
            out["models"][name] = one(name, args, Path(tmp), x)
            print(name, json.dumps({k: out["models"][name][k] for k in ("rel_err", "top1_agreement", "pass")}),
                  flush=True)
            rows = out["models"].values()
            out["summary"] = {"models": len(out["models"]), "passed": sum(r["pass"] for r in rows),
                              "max_rel_err": max(r["rel_err"] for r in rows),
                              "min_top1_agreement": min(r["top1_agreement"] for r in rows)}
            atomic_write_json(path, out)  # after every model: a long run keeps what it measured
    print(json.dumps(out["summary"]), f"wrote {path}", file=sys.stderr)
    return 0 if out["summary"]["passed"] == out["summary"]["models"] else 1


if __name__ == "__main__":
    sys.exit(main())
