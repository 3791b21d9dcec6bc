"""The export stage: ONNX (``edgeslim.onnxio.export``) plus the parity gate against PyTorch.

Contract with the compression stages: when the newest ONNX in the chain was produced after
the newest torch model (a ``quantize`` stage wrote a QDQ model.onnx), the export stage does
not re-export the float model. It finalizes that ONNX instead (simplify, checker, shape
inference, metadata) and gates it against its float parent: top-1 agreement and accuracy
delta for INT8/FP16, per-output error for FP32.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from edgeslim.deploy.export.parity import ParityConfig
from edgeslim.stages.context import StageContext, StageOutput, StageRecord
from edgeslim.stages.registry import StageConfig, register_stage

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle


class ExportConfig(StageConfig):
    stage: Literal["export"] = "export"
    opset: int = Field(18, ge=13, le=23, description="ONNX opset")
    dynamic_batch: bool = Field(True, description="symbolic batch axis on input and output")
    exporter: Literal["auto", "dynamo", "torchscript"] = Field(
        "auto", description="auto: dynamo, then TorchScript with a recorded warning"
    )
    simplify: bool = Field(True, description="simplify the graph with onnxslim")
    reuse_onnx: Literal["auto", "never"] = Field(
        "auto",
        description="auto: finalize a newer ONNX from an earlier stage (e.g. quantize) "
        "instead of re-exporting the torch model",
    )
    parity: ParityConfig = Field(default_factory=ParityConfig)

    def makes(self) -> tuple[str, ...]:
        return ("onnx",)


def newer_onnx(history: list[StageRecord]) -> StageRecord | None:
    """The chain's newest ONNX record when it is at least as new as its newest torch model."""
    done = [r for r in history if r.status == "completed"]
    onnx_rec = next((r for r in reversed(done) if r.onnx_file), None)
    model_rec = next((r for r in reversed(done) if r.model_file), None)
    if onnx_rec is None:
        return None
    if model_rec is None or onnx_rec.index >= model_rec.index:
        return onnx_rec
    return None


def onnx_metadata(ctx: StageContext, data: DataBundle, precision: str) -> dict[str, Any]:
    from edgeslim.fsutil import sha256_json

    return {
        "edgeslim.class_names": ctx.class_names or data.class_names,
        "edgeslim.mean": data.mean,
        "edgeslim.std": data.std,
        "edgeslim.input_shape": list(data.input_shape),
        "edgeslim.layout": "NCHW",
        "edgeslim.precision": precision,
        "edgeslim.recipe_hash": sha256_json(ctx.recipe.resolved())[:16],
        "edgeslim.run_name": ctx.recipe.run.name,
    }


def _failed_dir(ctx: StageContext, cfg: StageConfig) -> str:
    return str(ctx.run_dir / f"{ctx.index:02d}-{cfg.label or cfg.stage}.failed")


@register_stage("export", ExportConfig)
def run_export(cfg: ExportConfig, ctx: StageContext) -> StageOutput:
    """Export to ONNX (or finalize a quantized ONNX) and gate it on parity with PyTorch."""
    from edgeslim.onnxio.export import export_onnx, finalize_onnx
    from edgeslim.onnxio.info import detect_precision, precision_family

    data = ctx.data()
    out = ctx.workdir / "model.onnx"
    src = newer_onnx(ctx.history) if cfg.reuse_onnx == "auto" else None
    metrics: dict[str, Any] = {"opset": cfg.opset}
    if src is not None:
        path = src.dir / src.onnx_file
        precision = precision_family(detect_precision(path))
        ctx.log(f"finalizing {src.dir.name}/{src.onnx_file} ({precision}) instead of re-exporting")
        _copy_sidecar(path, out)
        res = finalize_onnx(
            path,
            out,
            onnx_metadata(ctx, data, precision),
            simplify=cfg.simplify,
            input_shape=tuple(data.input_shape),
        )
        metrics.update(exporter=f"reused:{src.dir.name}", opset=res.opset)
    elif not hasattr(model := ctx.require_model("export"), "state_dict"):  # a frozen source, first
        res = model.to_onnx(out, tuple(data.input_shape), cfg.opset, cfg.dynamic_batch,
                            onnx_metadata(ctx, data, "fp32"))
        precision = precision_family(detect_precision(out))
        metrics.update(exporter=f"{res.exporter} ({model.kind} source)", opset=res.opset)
    else:
        precision = "fp32"
        res = export_onnx(
            model,
            data.input_shape,
            out,
            cfg.opset,
            cfg.dynamic_batch,
            onnx_metadata(ctx, data, precision),
            cfg.exporter,
            simplify=cfg.simplify,
        )
        metrics.update(exporter=res.exporter, opset=res.opset)
    for note in res.warnings:
        ctx.log(f"[yellow]export: {note}[/yellow]")
    metrics.update(
        precision=precision,
        simplified=res.simplified,
        external_data=res.external_data,
        export_warnings=res.warnings,
    )
    if cfg.parity.enabled:
        metrics.update(parity_gate(cfg, ctx, data, out, precision))
    return StageOutput(onnx=out, metrics=metrics)


def _copy_sidecar(src: Path, out: Path) -> None:
    side = src.parent / (src.name + ".data")
    if side.is_file():
        shutil.copy2(side, out.parent / side.name)


def parity_gate(
    cfg: ExportConfig, ctx: StageContext, data: DataBundle, onnx_path: Path, precision: str
) -> dict[str, Any]:
    """Run the FP32 or quantized gate; GateError (folder kept as .failed) outside tolerance."""
    from edgeslim.deploy.export.parity import fp32_parity, gate, quant_parity, split_inputs
    from edgeslim.runtime import open_backend

    model = ctx.model
    if model is None:
        ctx.log("[yellow]parity gate skipped: no torch parent model in the chain[/yellow]")
        return {"parity": "skipped: no torch model"}
    x, y = split_inputs(data, cfg.parity.samples)
    if getattr(model, "kind", None) == "onnx":  # an ONNX source: the finalized file vs the given one
        parent = open_backend(model.path, "onnxruntime", threads=ctx.recipe.run.threads)
    else:  # a torch model, or a TorchScript / ExportedProgram source's module
        module = model if hasattr(model, "state_dict") else model.module
        parent = open_backend(module, "torch", input_shape=tuple(data.input_shape))
    art = open_backend(onnx_path, "onnxruntime", threads=ctx.recipe.run.threads)
    if precision == "fp32":
        rep = fp32_parity(parent, art, x, cfg.parity, onnx_path.name, "pytorch", art.output_names)
        o = rep.outputs[0]
        m = {
            "parity_max_abs_err": o.max_abs_err,
            "parity_rel_err": o.rel_err,
            "parity_top1_agreement": o.top1_agreement,
        }
    else:
        rep = quant_parity(
            parent, art, x, y, cfg.parity, f"{onnx_path.name} ({precision})", "float parent"
        )
        m = {
            "parity_top1_agreement": rep.metrics["top1_agreement"],
            "parity_accuracy_drop": rep.metrics["accuracy_drop"],
        }
    if hasattr(model, "cpu"):
        model.cpu()
    gate(rep, ctx.workdir / "parity.json", _failed_dir(ctx, cfg))
    ctx.log(f"parity: {rep.summary()}")
    return {"parity": "passed", "parity_inputs": rep.n_inputs, **m}
