"""The evaluate stage: full metrics of the current artifact on a split."""

from __future__ import annotations

from typing import Literal

from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage


class EvaluateConfig(StageConfig):
    stage: Literal["evaluate"] = "evaluate"
    split: Literal["train", "val", "test"] = "test"
    artifact: Literal["auto", "torch", "onnx"] = "auto"


@register_stage("evaluate", EvaluateConfig)
def run_evaluate(cfg: EvaluateConfig, ctx: StageContext) -> StageOutput:
    """Evaluate the current artifact (ONNX in onnxruntime when there is one)."""
    from edgeslim.measure import evaluate
    from edgeslim.runtime import open_backend

    data = ctx.data()
    use_onnx = cfg.artifact == "onnx" or (cfg.artifact == "auto" and ctx.onnx_path is not None)
    if use_onnx and ctx.onnx_path is not None:
        backend = open_backend(ctx.onnx_path, "onnxruntime")
    else:
        backend = open_backend(ctx.require_model("evaluate"), "torch", input_shape=tuple(data.input_shape),
                               device=ctx.device.type)
    ev = evaluate(backend, data, cfg.split)
    ctx.log(f"  {cfg.split} top-1 {ev['top1']:.4f} on {backend.name}")
    return StageOutput(metrics={f"{cfg.split}_{k}": v for k, v in ev.items()} | {"evaluated_on": backend.name},
                       measure=False)
