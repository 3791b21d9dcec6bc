"""The steps of one zoo model. Each takes the shared ``ctx`` and returns metrics for the row.

A returned ``_gate`` key (a one-line reason) marks the step ``gate_failed``: the artifact was
made, but a check on it did not pass. Every model runs through the runtime layer
(``open_backend``), the ONNX exporter of ``edgeslim.onnxio`` and compress' quantizers: the
zoo measures exactly what ``edgeslim export`` / the quantize stage would produce.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
FP32, INT8 = "fp32.onnx", "int8.onnx"


def _default_size(source: str) -> int | None:
    """torchvision: the crop size of the model's default weights (inception_v3: 299); else None."""
    if source.startswith("torchvision:"):
        from torchvision import models as tvm

        try:
            w = tvm.get_model_weights(source.split(":", 1)[1]).DEFAULT  # metadata only, no download
            return int(w.transforms.keywords.get("crop_size", 224))
        except (KeyError, ValueError, AttributeError):
            return None
    return None


def _randomize_zero_weights(model: Any) -> int:
    """Random-init zero heads (torchvision ViT) would make parity compare 0 with 0."""
    import torch

    n = 0
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0, 0.02)
                n += 1
    return n


def build(ctx: dict[str, Any]) -> dict[str, Any]:
    """Open the source (any form) in eval mode; synthetic images at its size for parity."""
    import torch

    from edgeslim.models.inspect import open_model

    s, source = ctx["s"], ctx["task"]["source"]
    torch.manual_seed(int(s["seed"]))
    size = s["input_size"] or _default_size(source)
    opened = open_model(source, s["checkpoint"], s["num_classes"], s["channels"], size, dict(s["kwargs"]))
    ctx.update(model=opened.model, shape=tuple(opened.input_shape), frozen=opened.frozen, kind=opened.kind)
    out: dict[str, Any] = {"kind": opened.kind, "input_shape": "x".join(map(str, opened.input_shape))}
    if opened.frozen is not None:
        out["weights"] = f"frozen {opened.kind} graph"
    elif s["checkpoint"]:
        out["weights"] = "checkpoint"
    elif opened.kind == "edgeslim":
        out["weights"] = "saved model"
    else:
        out["weights"] = "random init"
        if s["randomize_zero_weights"]:
            out["randomized_zero_tensors"] = _randomize_zero_weights(opened.model)
    _make_inputs(ctx)
    return out


def _make_inputs(ctx: dict[str, Any]) -> None:
    """Parity inputs (test split) and fallback calibration images (train split), seeded."""
    from edgeslim.data import build_data
    from edgeslim.models.source_registry import source_normalization
    from edgeslim.recipe import DataSpec

    s, (c, h, _) = ctx["s"], ctx["shape"]
    norm = None
    try:
        norm = source_normalization(ctx["task"]["source"])
    except Exception:  # a user's source knows no normalisation: ImageNet's is the usual guess
        norm = None
    mean, std = norm or (IMAGENET if c == 3 else ([0.5], [0.5]))
    per_class = math.ceil((s["calibration_samples"] + s["parity_samples"]) / 4 * 2.5) + 4
    spec = DataSpec(source="synthetic", image_size=h, channels=c, synthetic_classes=4,
                    synthetic_per_class=per_class, test_fraction=0.4, val_fraction=0.1,
                    mean=list(mean), std=list(std))
    data = build_data(spec, seed=int(s["seed"]))
    x, y = data.dataset("test").tensors()
    ctx.update(data=data, x=x[: s["parity_samples"]].numpy(), y=y[: s["parity_samples"]].numpy())


def _fixed_batch(ctx: dict[str, Any]) -> int | None:
    fm = ctx.get("frozen")
    return getattr(fm, "fixed_batch", None) if fm is not None else None


def export(ctx: dict[str, Any]) -> dict[str, Any]:
    """FP32 ONNX (dynamo, TorchScript fallback recorded; frozen graphs through ``to_onnx``)."""
    from edgeslim.onnxio.export import export_onnx

    s, out = ctx["s"], ctx["dir"] / FP32
    meta = {"edgeslim.source": ctx["task"]["source"], "edgeslim.precision": "fp32",
            "edgeslim.mean": ctx["data"].mean, "edgeslim.std": ctx["data"].std}
    fm = ctx.get("frozen")
    if fm is not None:
        res = fm.to_onnx(out, ctx["shape"], s["opset"], _fixed_batch(ctx) is None, meta)
    else:
        res = export_onnx(ctx["model"], ctx["shape"], out, s["opset"], True, meta, s["exporter"])
    ctx["fp32"] = res.path
    return {"exporter": res.exporter, "opset": res.opset, "nodes": res.nodes_after,
            "export_notes": "; ".join(res.warnings)[:500]}


def checker(ctx: dict[str, Any]) -> dict[str, Any]:
    """``onnx.checker`` with the full check (type and shape inference on every node)."""
    import onnx

    onnx.checker.check_model(str(ctx["fp32"]), full_check=True)
    return {}


def _batch(ctx: dict[str, Any]) -> int:
    return _fixed_batch(ctx) or min(16, len(ctx["x"]))


def fp32_parity(ctx: dict[str, Any]) -> dict[str, Any]:
    """The FP32 export against its source on the parity images: relative error, top-1 agreement."""
    from edgeslim.deploy.export.parity import ParityConfig
    from edgeslim.deploy.export.parity import fp32_parity as compare
    from edgeslim.fsutil import atomic_write_json
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.compare import run_batches

    s, x = ctx["s"], ctx["x"]
    x = x[: len(x) - len(x) % _batch(ctx)] if _fixed_batch(ctx) else x
    cfg = ParityConfig(samples=len(x), batch_size=_batch(ctx), atol=s["atol"], rtol=s["rtol"],
                       min_top1_agreement=s["min_agreement"])
    if ctx["model"] is not None:
        ref = open_backend(ctx["model"], "torch", input_shape=ctx["shape"], threads=s["threads"])
        ref_name = "pytorch"
    else:  # an ONNX source: the file as given, in onnxruntime's precise mode
        ref = open_backend(ctx["frozen"].path, "onnxruntime", precise=True, threads=s["threads"])
        ref_name = "source onnx"
    art = open_backend(ctx["fp32"], "onnxruntime", threads=s["threads"])
    rep = compare(ref, art, x, cfg, artifact_name=FP32, reference_name=ref_name)
    atomic_write_json(ctx["dir"] / "parity.json", rep.to_json())
    worst = max(rep.outputs, key=lambda o: o.rel_err)
    logits = run_batches(ref, x, _batch(ctx))
    # how many classes the reference predicts on these images: 1 means agreement is trivially 1.0
    classes = int(len(np.unique(logits.reshape(len(logits), -1).argmax(1))))
    out = {"max_rel_err": worst.rel_err, "max_abs_err": worst.max_abs_err,
           "agreement": rep.outputs[0].top1_agreement, "parity_inputs": rep.n_inputs, "top1_classes": classes}
    if not rep.passed:
        out["_gate"] = rep.summary()[:400]
    return out


def int8(ctx: dict[str, Any]) -> dict[str, Any]:
    """Static QDQ INT8 (calibration folder, or synthetic shape images) or dynamic INT8."""
    from edgeslim.compress.quantize import PtqSettings, preprocess, quantize_dynamic_int8, quantize_static_qdq
    from edgeslim.errors import StageError

    s, src, dst = ctx["s"], ctx["fp32"], ctx["dir"] / INT8
    if s["int8"] == "dynamic":
        quantize_dynamic_int8(src, dst)
        ctx["int8"] = dst
        return {"int8_mode": "dynamic", "int8_calibration": "none (dynamic: activations at run time)"}
    calib, label = _calibration(ctx)
    notes = []
    pre = ctx["dir"] / ".int8-pre.onnx"
    try:
        src = preprocess(src, pre)
    except StageError as exc:  # onnxruntime's optimizer gave up: quantize the graph as exported
        notes.append(f"pre-processing skipped: {str(exc)[:160]}")
    mode, why, only = int8_plan(src, s["int8"])
    if why:
        notes.append(why)
    try:
        quantize_static_qdq(src, dst, calib, PtqSettings(), only=only)
    finally:
        pre.unlink(missing_ok=True)
    ctx["int8"] = dst
    return {"int8_mode": mode, "int8_calibration": label, "int8_notes": "; ".join(notes)}


# What static_matmul quantizes: the weight layers (compress.quantize.weight_layers: Conv, MatMul,
# Gemm with a constant input), which hold the MACs. Attention's activation x activation MatMuls,
# Softmax, LayerNorm, GELU and the residual Adds stay float: MinMax ranges on them (outliers of a
# few channels) cost ViTs their output scale. deit_tiny at 224, same calibration: every op
# quantized 1.02 of max|FP32|; every Conv/MatMul/Gemm 0.25; the weight layers only 0.06.
def int8_plan(path: Path, setting: str) -> tuple[str, str, list[str] | None]:
    """(static | static_matmul, why, the nodes to quantize or None for every op) for the zoo's
    ``int8`` setting on this graph, read once: ``auto`` picks static_matmul where the graph has
    attention (a Softmax node), static elsewhere."""
    if setting == "static":
        return "static", "", None
    import onnx

    from edgeslim.compress.quantize import weight_layers

    g = onnx.load(str(path), load_external_data=False).graph
    if setting == "auto" and "Softmax" not in {n.op_type for n in g.node}:
        return "static", "", None
    why = "auto: attention (Softmax) in the graph: only its weight layers quantized" if setting == "auto" else ""
    return "static_matmul", why, weight_layers(g)


def _calibration(ctx: dict[str, Any]) -> tuple[np.ndarray, str]:
    s, data = ctx["s"], ctx["data"]
    n = s["calibration_samples"]
    if s["calibration"]:
        from edgeslim.calibration.select import from_folder

        batch = from_folder(s["calibration"], data, n, int(s["seed"]))
        return batch, f"folder {s['calibration']} ({len(batch)} inputs)"
    x = data.dataset("train").tensors()[0][:n].numpy().astype(np.float32)
    return x, f"synthetic shapes ({len(x)} images; no calibration folder given)"


def int8_agreement(ctx: dict[str, Any]) -> dict[str, Any]:
    """INT8 against the FP32 export, both in onnxruntime: relative error, and top-1 agreement on
    the images where FP32's top-1 is decisive (a near-tie flips under any rounding: random-weight
    zoo models are near-tied on almost every image). Too few decisive images: the agreement is
    inconclusive, said so in the row, and the error gate alone decides."""
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.compare import decisive_rows, relative_error, run_batches

    s, b = ctx["s"], _batch(ctx)
    ref = run_batches(open_backend(ctx["fp32"], "onnxruntime", threads=s["threads"]), ctx["x"], b)
    got = run_batches(open_backend(ctx["int8"], "onnxruntime", threads=s["threads"]), ctx["x"], b)
    ref, got = ref.reshape(len(ref), -1), got.reshape(len(got), -1)
    rel = relative_error(ref, got)
    same = ref.argmax(1) == got.argmax(1)
    keep = decisive_rows(ref, s["int8_min_margin"])
    need = min(s["int8_min_decisive"], len(ref))
    agree = float(same[keep].mean()) if keep.sum() >= need else None
    out = {"int8_agreement": agree, "int8_agreement_all": float(same.mean()), "int8_decisive": int(keep.sum()),
           "int8_rel_err": rel,
           "int8_verdict": "agreement" if agree is not None else
           f"agreement inconclusive: {int(keep.sum())}/{len(ref)} images with a decisive FP32 top-1 "
           f"(< {need}); error gate only"}
    problems = []
    if rel > s["int8_max_rel_err"]:
        problems.append(f"INT8 error {rel:.3f} of max|FP32| > {s['int8_max_rel_err']}")
    if agree is not None and agree < s["int8_min_agreement"]:
        problems.append(f"INT8 top-1 agreement with FP32 {agree:.3f} < {s['int8_min_agreement']} "
                        f"on the {int(keep.sum())} of {len(ref)} images where FP32 is decisive")
    if problems:
        out["_gate"] = "; ".join(problems)
    return out


def latency(ctx: dict[str, Any], backend: str, precision: str) -> dict[str, Any]:
    """Batch-1 latency p50/p90 of one artifact on one backend (the shared timing core)."""
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.timing import make_input, summarize, time_calls

    s = ctx["s"]
    path = ctx["fp32"] if precision == "fp32" else ctx["int8"]
    batch = _fixed_batch(ctx) or 1
    kw: dict[str, Any] = {"threads": s["threads"]}
    if backend == "openvino":
        kw["input_shape"] = (batch, *ctx["shape"])  # a static shape compiles faster in OpenVINO
    bk = open_backend(path, backend, **kw)
    x = make_input(ctx["shape"], batch)
    samples = time_calls(lambda: bk.run(x), warmup=s["latency_warmup"], min_iters=s["latency_iters"],
                         min_time_s=0.0, max_iters=s["latency_iters"])
    st = summarize(samples, batch)
    key = f"{backend}_{precision}"
    return {f"{key}_p50_ms": round(st["median_ms"], 4), f"{key}_p90_ms": round(st["p90_ms"], 4)}


def _file_bytes(path: Path | None) -> int | None:
    if path is None or not Path(path).is_file():
        return None
    extra = Path(str(path) + ".data")
    return Path(path).stat().st_size + (extra.stat().st_size if extra.is_file() else 0)


def sizes(ctx: dict[str, Any]) -> dict[str, Any]:
    """File sizes (with external data) and the parameter count of the FP32 graph."""
    from edgeslim.onnxio.info import count_params

    return {"params": count_params(ctx["fp32"]), "fp32_bytes": _file_bytes(ctx["fp32"]),
            "int8_bytes": _file_bytes(ctx.get("int8"))}
