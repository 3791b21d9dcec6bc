"""Parity gates: is an exported or converted artifact still the model it came from?

Two checks, both on real inputs from the test split:

* FP32 parity (``fp32_parity``): an FP32 ONNX/engine against the PyTorch model, output by
  output. The error is judged against the output's scale, not only in absolute terms: with
  random weights a deep network's logits reach 1e8 or more, and an absolute error of 100 is
  then a relative error of 1e-6 (a sound export). An output passes when
  ``max_abs_err <= atol + rtol * scale`` where ``scale = max |reference|``.
* Quantized / FP16 parity (``quant_parity``): top-1 agreement with the float parent and the
  accuracy delta on the test split (an INT8 model is not expected to match logits closely).

The reference and the artifact are any two runtime backends (``edgeslim.runtime.open_backend``):
eager torch against onnxruntime for an export, onnxruntime in its precise mode against OpenVINO
for a second runtime. Outside tolerance the gate raises :class:`edgeslim.errors.GateError` with a per-output
report (max error, where, which inputs); the stage folder is kept as ``<dir>.failed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from edgeslim.config import Config
from edgeslim.errors import GateError


class ParityConfig(Config):
    """``parity:`` tolerances of the gates run after export (recipe keys of the export stage)."""

    enabled: bool = Field(True, description="run the parity gate after export/conversion")
    samples: int = Field(64, ge=1, description="test-split images used (the first N)")
    batch_size: int = Field(16, ge=1)
    atol: float = Field(1e-4, ge=0, description="absolute error allowed on top of rtol * scale")
    rtol: float = Field(
        1e-4, ge=0, description="error allowed relative to the output scale max|ref|"
    )
    min_top1_agreement: float = Field(0.99, ge=0, le=1, description="FP32: argmax agreement")
    quant_min_agreement: float = Field(0.95, ge=0, le=1, description="INT8/FP16 vs float parent")
    quant_max_accuracy_drop: float = Field(
        0.02, ge=0, le=1, description="INT8/FP16: allowed top-1 drop"
    )


@dataclass
class OutputReport:
    """Errors of one output tensor over all compared inputs."""

    name: str
    shape: list[int]
    max_abs_err: float
    mean_abs_err: float
    scale: float
    rel_err: float  # max_abs_err / scale
    limit: float  # atol + rtol * scale
    where: list[int]  # index of the worst element (sample first)
    worst_inputs: list[int]  # test-split indices of the inputs with the largest error
    top1_agreement: float | None
    passed: bool
    problem: str = ""


@dataclass
class ParityReport:
    kind: str  # "fp32" or "quantized"
    artifact: str
    reference: str
    n_inputs: int
    passed: bool
    outputs: list[OutputReport] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line naming every failing output (or the passing figures)."""
        if self.kind == "quantized":
            m = self.metrics
            return (
                f"{self.artifact} vs {self.reference}: top-1 agreement {m['top1_agreement']:.4f} "
                f"(min {m['min_agreement']}), accuracy {m['accuracy']:.4f} vs parent "
                f"{m['parent_accuracy']:.4f} (drop {m['accuracy_drop']:+.4f}, max "
                f"{m['max_accuracy_drop']}) on {self.n_inputs} test images"
            )
        parts = []
        for o in self.outputs:
            if o.problem:
                parts.append(f"output '{o.name}': {o.problem}")
                continue
            agree = (
                f", top-1 agreement {o.top1_agreement:.4f}" if o.top1_agreement is not None else ""
            )
            parts.append(
                f"output '{o.name}': max abs err {o.max_abs_err:.3g} at {o.where} "
                f"(scale {o.scale:.3g}, rel {o.rel_err:.2e}, limit {o.limit:.3g}){agree}, "
                f"worst inputs {o.worst_inputs}" + ("" if o.passed else " FAIL")
            )
        return f"{self.artifact} vs {self.reference} on {self.n_inputs} test images: " + "; ".join(
            parts
        )


def split_inputs(data: Any, samples: int, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` images of a split, preprocessed exactly as evaluation does."""
    x, y = data.dataset(split).tensors()
    return x[:samples].numpy(), y[:samples].numpy()


def _run_all(backend: Any, x: np.ndarray, batch: int) -> list[np.ndarray]:
    """Run in batches; a backend may return one array or a list of outputs."""
    outs: list[list[np.ndarray]] = []
    for i in range(0, len(x), batch):
        r = backend.run(x[i : i + batch])
        outs.append(list(r) if isinstance(r, (list, tuple)) else [r])
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def compare_outputs(
    ref: list[np.ndarray],
    got: list[np.ndarray],
    names: list[str],
    cfg: ParityConfig,
    indices: np.ndarray | None = None,
) -> list[OutputReport]:
    """Per-output error report; ``indices`` maps rows back to test-split positions."""
    idx = np.arange(len(ref[0])) if indices is None else indices
    return [_compare_one(n, r, g, cfg, idx) for n, r, g in zip(names, ref, got, strict=False)]


def _broken(
    name: str, shape: list[int], where: list[int], inputs: list[int], why: str
) -> OutputReport:
    inf = float("inf")
    return OutputReport(name, shape, inf, inf, 0.0, inf, 0.0, where, inputs, None, False, why)


def _compare_one(
    name: str, r: np.ndarray, g: np.ndarray, cfg: ParityConfig, idx: np.ndarray
) -> OutputReport:
    r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
    shape = list(r64.shape)
    if r64.shape != g64.shape:
        return _broken(name, shape, [], [], f"shape {list(g64.shape)} != reference {shape}")
    if not np.all(np.isfinite(g64)) and np.all(np.isfinite(r64)):
        bad = np.argwhere(~np.isfinite(g64))
        rows = idx[np.unique(bad[:, 0])][:5].tolist()
        return _broken(
            name, shape, bad[0].tolist(), rows, f"non-finite values (first at {bad[0].tolist()})"
        )
    err = np.abs(r64 - g64)
    scale = float(np.max(np.abs(r64))) if r64.size else 0.0
    mx = float(err.max()) if err.size else 0.0
    where = [int(v) for v in np.unravel_index(int(err.argmax()), err.shape)] if err.size else []
    per_input = err.reshape(len(err), -1).max(1) if err.ndim else err.reshape(1)
    worst = idx[np.argsort(-per_input)[:3]].tolist()
    if where:
        where[0] = int(idx[where[0]])
    agree = None
    if r64.ndim == 2 and r64.shape[1] > 1:
        agree = float((r64.argmax(1) == g64.argmax(1)).mean())
    limit = cfg.atol + cfg.rtol * scale
    ok = mx <= limit and (agree is None or agree >= cfg.min_top1_agreement)
    rel = mx / scale if scale > 0 else (0.0 if mx == 0 else float("inf"))
    return OutputReport(
        name, shape, mx, float(err.mean()), scale, rel, limit, where, worst, agree, bool(ok)
    )


def fp32_parity(
    reference: Any,
    artifact: Any,
    x: np.ndarray,
    cfg: ParityConfig,
    artifact_name: str = "model.onnx",
    reference_name: str = "pytorch",
    output_names: list[str] | None = None,
) -> ParityReport:
    """Compare an FP32 artifact's outputs with the reference backend's on inputs ``x``."""
    ref = _run_all(reference, x, cfg.batch_size)
    got = _run_all(artifact, x, cfg.batch_size)
    names = (
        output_names
        or getattr(artifact, "output_names", None)
        or [f"output{i}" for i in range(len(got))]
    )
    outs = compare_outputs(ref, got, list(names), cfg)
    if len(ref) != len(got):
        outs.append(
            OutputReport(
                "(count)",
                [],
                float("inf"),
                float("inf"),
                0.0,
                float("inf"),
                0.0,
                [],
                [],
                None,
                False,
                f"{len(got)} outputs, reference has {len(ref)}",
            )
        )
    return ParityReport(
        "fp32", artifact_name, reference_name, int(len(x)), all(o.passed for o in outs), outs
    )


def quant_parity(
    parent: Any,
    artifact: Any,
    x: np.ndarray,
    y: np.ndarray,
    cfg: ParityConfig,
    artifact_name: str = "model.onnx",
    parent_name: str = "float parent",
) -> ParityReport:
    """Top-1 agreement and accuracy delta of a quantized/FP16 artifact against its float parent."""
    ref = _run_all(parent, x, cfg.batch_size)[0]
    got = _run_all(artifact, x, cfg.batch_size)[0]
    agree = float((ref.argmax(1) == got.argmax(1)).mean())
    acc_p, acc_a = float((ref.argmax(1) == y).mean()), float((got.argmax(1) == y).mean())
    drop = acc_p - acc_a
    disagree = np.flatnonzero(ref.argmax(1) != got.argmax(1))[:10].tolist()
    m = {
        "top1_agreement": agree,
        "min_agreement": cfg.quant_min_agreement,
        "accuracy": acc_a,
        "parent_accuracy": acc_p,
        "accuracy_drop": drop,
        "max_accuracy_drop": cfg.quant_max_accuracy_drop,
        "disagreeing_inputs": disagree,
    }
    ok = agree >= cfg.quant_min_agreement and drop <= cfg.quant_max_accuracy_drop + 1e-12
    return ParityReport("quantized", artifact_name, parent_name, int(len(x)), bool(ok), [], m)


def gate(
    report: ParityReport, report_path: Path | None = None, where_kept: str | None = None
) -> None:
    """Write the report (when a path is given) and raise GateError when it did not pass."""
    if report_path is not None:
        from edgeslim.fsutil import atomic_write_json

        atomic_write_json(report_path, report.to_json())
    if report.passed:
        return
    kept = f"; artifact kept in {where_kept}" if where_kept else ""
    fix = (
        (
            "; loosen export.parity tolerances only if the error is expected (e.g. fp16), or try "
            "exporter: torchscript"
        )
        if report.kind == "fp32"
        else "; recalibrate, or raise export.parity.quant_*"
    )
    raise GateError(f"parity gate failed: {report.summary()}{kept}{fix}")
