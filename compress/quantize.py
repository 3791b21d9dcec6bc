"""onnxruntime quantization: static QDQ INT8, dynamic INT8, FP16 and the sensitivity scan.

The scan decides on measurements of the artifact in onnxruntime (accuracy on the validation
split). Which precision and runtime ship is ``precision_auto``'s measurement across backends;
``choose_precision`` is its onnxruntime-only form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.errors import StageError

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle

QUANT_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")  # layers the sensitivity scan ranks
EVAL_BATCH = 64


@dataclass
class PtqSettings:
    method: str = "minmax"  # minmax | entropy | percentile
    percentile: float = 99.999
    per_channel: bool = True
    symmetric_activations: bool = False
    reduce_range: bool = False
    preprocess: bool = True
    exclude: list[str] = field(default_factory=list)


def preprocess(src: Path, dst: Path) -> Path:
    """onnxruntime's pre-processing (shape inference + graph optimization) before calibration."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    except (
        Exception
    ) as exc:  # onnxruntime's optimizer raises its own types; fall back to the raw graph
        raise StageError(
            f"onnxruntime quantization pre-processing failed on '{src.name}': "
            f"{str(exc).splitlines()[0][:200]}; set quantize.preprocess: false"
        ) from exc
    return dst


def quantize_static_qdq(
    src: Path, dst: Path, calib: np.ndarray, s: PtqSettings, only: list[str] | None = None
) -> Path:
    """Static INT8 in QDQ format (runs in onnxruntime and TensorRT). ``only`` restricts it to
    those node names (None: every op onnxruntime quantizes).

    Activations are uint8 (asymmetric) by default: onnxruntime's CPU kernels fuse U8S8 QDQ into
    QLinearConv/QLinearAdd, while S8S8 leaves many convs in float (measured on ResNet-18: 4.6 ms vs
    29 ms). ``symmetric_activations`` gives int8 with zero point 0, which TensorRT requires.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgeslim.calibration.readers import ort_reader
    from edgeslim.onnxio.info import input_name as onnx_input_name

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    extra: dict[str, Any] = {
        "ActivationSymmetric": s.symmetric_activations,
        "WeightSymmetric": True,
    }
    if s.method == "percentile":
        extra["CalibPercentile"] = s.percentile
    reader = ort_reader(calib, onnx_input_name(src), batch_size=1)
    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=s.per_channel,
        reduce_range=s.reduce_range,
        activation_type=QuantType.QInt8 if s.symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=only,
        nodes_to_exclude=list(s.exclude) or None,
        calibrate_method=methods[s.method],
        extra_options=extra,
    )
    return dst


def quantize_dynamic_int8(src: Path, dst: Path) -> Path:
    """Dynamic INT8: weights quantized offline, activations at run time (Linear-heavy models)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )
    return dst


def to_fp16(src: Path, dst: Path) -> Path:
    """FP16 weights and compute, float32 inputs/outputs kept (for GPU targets)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(m, str(dst))
    return dst


def quantizable_nodes(path: Path) -> list[str]:
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in g.node if n.op_type in QUANT_OPS]


def weight_layers(g: Any) -> list[str]:
    """Names of the QUANT_OPS nodes of ONNX graph ``g`` with a constant input (an initializer or
    a Constant): the layers that hold the weights, not attention's activation x activation MatMuls."""
    consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in g.node if n.op_type in QUANT_OPS and n.name and any(i in consts for i in n.input)]


def ort_logits(
    path: Path,
    data: DataBundle,
    split: str,
    threads: int | None,
    providers: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    from edgeslim.measure import predict
    from edgeslim.runtime import open_backend

    return predict(open_backend(path, "onnxruntime", providers=providers, threads=threads), data, split, EVAL_BATCH)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean())


def sensitivity_scan(
    float_path: Path,
    work: Path,
    calib: np.ndarray,
    s: PtqSettings,
    data: DataBundle,
    budget_points: float,
    max_float_layers: int,
    threads: int | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Quantize all; while accuracy drops more than the budget, keep the worst layers in float.

    A layer's sensitivity is the logit error when it alone is quantized (others float), measured on
    the validation split against the float model. Layers are returned to float worst first until the
    INT8 model is back within ``budget_points`` (percentage points of validation top-1).
    """
    ref, labels = ort_logits(float_path, data, "val", threads)
    ref_acc = top1(ref, labels)
    full = quantize_static_qdq(float_path, work / "scan_all.onnx", calib, s)
    acc = top1(ort_logits(full, data, "val", threads)[0], labels)
    out: dict[str, Any] = {
        "float_val_top1": ref_acc,
        "int8_val_top1_before": acc,
        "kept_float": [],
        "layers": [],
    }
    if (ref_acc - acc) * 100 <= budget_points:
        out.update(int8_val_top1=acc, within_budget=True, path=full)
        return out
    scores = rank_layers(float_path, work, calib, s, data, ref, labels, threads)
    out["layers"] = scores
    kept: list[str] = []
    path = full
    for row in scores[:max_float_layers]:
        kept.append(row["layer"])
        trial = PtqSettings(**{**s.__dict__, "exclude": list(s.exclude) + kept})
        path = quantize_static_qdq(float_path, work / f"scan_keep{len(kept)}.onnx", calib, trial)
        acc = top1(ort_logits(path, data, "val", threads)[0], labels)
        if log:
            log(
                f"sensitivity scan: {len(kept)} layer(s) kept in float -> val top-1 {acc:.4f} "
                f"(float {ref_acc:.4f})"
            )
        if (ref_acc - acc) * 100 <= budget_points:
            break
    out.update(
        kept_float=kept,
        int8_val_top1=acc,
        within_budget=(ref_acc - acc) * 100 <= budget_points,
        path=path,
    )
    return out


def rank_layers(
    float_path: Path,
    work: Path,
    calib: np.ndarray,
    s: PtqSettings,
    data: DataBundle,
    ref: np.ndarray,
    labels: np.ndarray,
    threads: int | None,
) -> list[dict[str, Any]]:
    """Quantizable layers, most sensitive first: logit MSE vs float when quantized alone."""
    scores = []
    for i, node in enumerate(n for n in quantizable_nodes(float_path) if n not in s.exclude):
        one = quantize_static_qdq(float_path, work / f"scan_{i}.onnx", calib, s, only=[node])
        logits = ort_logits(one, data, "val", threads)[0]
        mse = float(np.mean((logits - ref) ** 2))
        scores.append({"layer": node, "logit_mse": mse, "val_top1_alone": top1(logits, labels)})
        one.unlink(missing_ok=True)
    return sorted(scores, key=lambda r: -r["logit_mse"])


def choose_precision(
    cands: dict[str, Path],
    float_path: Path,
    data: DataBundle,
    shape: tuple[int, ...],
    budget_points: float,
    threads: int | None,
    iters: int,
    forced: str | None = None,
    providers: list[str] | None = None,
) -> dict[str, Any]:
    """onnxruntime only: measure every precision's artifact, keep the fastest within budget.

    The quantize stage measures across backends (``precision_auto.select``); this keeps the
    single-runtime call for scripts that compare onnxruntime precisions. ``shape`` is the input
    shape (the data's, kept for callers).
    """
    from edgeslim.compress.precision_auto import select
    from edgeslim.runtime.providers import Candidate, preset_of

    device = preset_of(providers) if providers else "cpu"
    files = {**cands, "fp32": cands.get("fp32", float_path)}
    order = [Candidate("onnxruntime", p, device) for p in files]
    return select(order, files, data, budget_points, threads=threads, iters=iters, forced=forced,
                  providers=providers)
